"""Spec -> the ordered steps of an onboarding, with what runs in parallel.

No I/O here: the preview page, the CLI equivalent and the worker share it.
"""

import json
import shlex
from dataclasses import dataclass, field

from provisioning import documents
from provisioning.spec import Spec, TeamMember

BRANCHES = {
    "preflight": "Preflight",
    "account": "Account",
    "iam": "App user and access",
    "team": "Team members",
    "s3": "S3 bucket",
    "ecr": "ECR repository",
    "finalize": "Finish",
}


def step_kind(key: str) -> str:
    """The step function's name in provisioning.steps: the key without its per-member suffix."""
    return key.split(":", 1)[0]


@dataclass(frozen=True)
class PlannedStep:
    key: str
    title: str
    branch: str
    depends_on: tuple[str, ...]
    documents: dict = field(default_factory=dict)
    cli: tuple[str, ...] = ()


def _cli(*args: str, document: dict | None = None, document_flag: str = "") -> str:
    words = ["aws", *args]
    if document is not None:
        words += [document_flag, json.dumps(document, separators=(",", ":"))]
    return " ".join(shlex.quote(w) for w in words)


def _member_step(member: TeamMember, spec: Spec) -> PlannedStep:
    cli = [_cli("iam", "create-user", "--user-name", member.email)]
    for policy in member.policies:
        cli.append(
            _cli(
                "iam",
                "attach-user-policy",
                "--user-name",
                member.email,
                "--policy-arn",
                f"arn:aws:iam::aws:policy/{policy}",
            )
        )
    if member.console:
        cli.append(
            _cli(
                "iam",
                "create-login-profile",
                "--user-name",
                member.email,
                "--password",
                "<generated>",
                "--password-reset-required",
            )
        )
    role = "tech lead" if member.role == "tech_lead" else "member"
    return PlannedStep(
        key=f"team.member:{member.email}",
        title=f"Team {role} {member.email}" + (f" ({', '.join(member.policies)})" if member.policies else ""),
        branch="team",
        depends_on=("preflight",),
        cli=tuple(cli),
    )


def plan_build(spec: Spec) -> list[PlannedStep]:
    """Every step in order. Each branch is a chain; branches run in parallel after preflight."""
    region = spec.region
    policy_name = documents.media_policy_name(scope=spec.media_scope, bucket=spec.bucket)
    policy_doc = documents.media_policy_document(scope=spec.media_scope, bucket=spec.bucket)
    pab = documents.public_access_block_document()
    cors = documents.cors_document(app_origin=spec.app_origin)
    lifecycle = documents.lifecycle_policy_document()
    create_bucket = ["s3api", "create-bucket", "--bucket", spec.bucket, "--region", region, "--acl", "private"]
    if region != "us-east-1":
        create_bucket += ["--create-bucket-configuration", f"LocationConstraint={region}"]

    steps = [
        PlannedStep(
            "preflight",
            "Reach the account and check who Onramp is there",
            "preflight",
            (),
            cli=(_cli("sts", "get-caller-identity"),),
        ),
    ]
    if spec.account_alias:
        steps.append(
            PlannedStep(
                "account.alias",
                f"Set the sign-in alias {spec.account_alias}",
                "account",
                ("preflight",),
                cli=(_cli("iam", "create-account-alias", "--account-alias", spec.account_alias),),
            )
        )
    steps += [
        PlannedStep(
            "iam.group",
            f"Group {spec.group_name}",
            "iam",
            ("preflight",),
            cli=(_cli("iam", "create-group", "--group-name", spec.group_name),),
        ),
        PlannedStep(
            "iam.app_user",
            f"App user {spec.app_name} in {spec.group_name}",
            "iam",
            ("iam.group",),
            cli=(
                _cli("iam", "create-user", "--user-name", spec.app_name),
                _cli("iam", "add-user-to-group", "--user-name", spec.app_name, "--group-name", spec.group_name),
            ),
        ),
        PlannedStep(
            "iam.media_policy",
            f"Policy {policy_name}, attached to {spec.app_name}",
            "iam",
            ("iam.app_user",),
            documents={"policy": policy_doc},
            cli=(
                _cli(
                    "iam",
                    "create-policy",
                    "--policy-name",
                    policy_name,
                    "--description",
                    "Grants access to S3 buckets and objects",
                    document=policy_doc,
                    document_flag="--policy-document",
                ),
                _cli(
                    "iam",
                    "attach-user-policy",
                    "--user-name",
                    spec.app_name,
                    "--policy-arn",
                    f"arn:aws:iam::{spec.account_id}:policy/{policy_name}",
                ),
            ),
        ),
        PlannedStep(
            "iam.access_key",
            f"Access key for {spec.app_name}",
            "iam",
            ("iam.media_policy",),
            cli=(_cli("iam", "create-access-key", "--user-name", spec.app_name),),
        ),
    ]
    steps += [_member_step(member, spec) for member in spec.team]
    steps += [
        PlannedStep(
            "s3.bucket", f"Private bucket {spec.bucket} in {region}", "s3", ("preflight",), cli=(_cli(*create_bucket),)
        ),
        PlannedStep(
            "s3.public_access_block",
            "Block Public Access (all four flags)",
            "s3",
            ("s3.bucket",),
            documents={"public_access_block": pab},
            cli=(
                _cli(
                    "s3api",
                    "put-public-access-block",
                    "--bucket",
                    spec.bucket,
                    document=pab,
                    document_flag="--public-access-block-configuration",
                ),
            ),
        ),
        PlannedStep(
            "s3.cors",
            f"CORS: GET from anywhere, uploads from {spec.app_origin}",
            "s3",
            ("s3.public_access_block",),
            documents={"cors": cors},
            cli=(
                _cli(
                    "s3api",
                    "put-bucket-cors",
                    "--bucket",
                    spec.bucket,
                    document=cors,
                    document_flag="--cors-configuration",
                ),
            ),
        ),
        PlannedStep(
            "ecr.repository",
            f"ECR repository {spec.ecr_repository}",
            "ecr",
            ("preflight",),
            cli=(_cli("ecr", "create-repository", "--repository-name", spec.ecr_repository, "--region", region),),
        ),
        PlannedStep(
            "ecr.lifecycle",
            "ECR lifecycle policy (19 rules)",
            "ecr",
            ("ecr.repository",),
            documents={"lifecycle_policy": lifecycle},
            cli=(
                _cli(
                    "ecr",
                    "put-lifecycle-policy",
                    "--repository-name",
                    spec.ecr_repository,
                    "--region",
                    region,
                    document=lifecycle,
                    document_flag="--lifecycle-policy-text",
                ),
            ),
        ),
    ]
    work = [s.key for s in steps if s.key != "preflight"]
    steps.append(PlannedStep("finalize", "Summarise what exists now", "finalize", tuple(work)))
    return steps


def plan_branches(steps: list[PlannedStep]) -> list[tuple[str, list[PlannedStep]]]:
    """Steps grouped by branch, in order, for the preview."""
    grouped: dict[str, list[PlannedStep]] = {}
    for step in steps:
        grouped.setdefault(step.branch, []).append(step)
    return [(BRANCHES[name], grouped[name]) for name in BRANCHES if name in grouped]
