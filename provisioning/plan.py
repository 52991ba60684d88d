"""Spec -> the steps of an onboarding, what runs in parallel, and the same plan as AWS CLI commands.

No I/O here: the preview page and the worker share it. Everything about a step comes from its
declaration in provisioning.registry; the CLI transcript is rendered from the very ApiCall objects
the steps send.
"""

import json
import shlex
from dataclasses import dataclass

from provisioning.registry import (
    BRANCHES,
    GENERATED,
    REGISTRY,
    ApiCall,
    Registry,
    StepKind,
    assume_role_call,
    words_of,
)
from provisioning.spec import Spec

# The AWS CLI's name for a service, where it is not boto3's.
_CLI_SERVICES = {"s3": "s3api"}
RUN_SESSION_NAME = "onramp-run-{run_id}"


@dataclass(frozen=True)
class PlannedStep:
    key: str
    kind: str
    title: str
    branch: str
    depends_on: tuple[str, ...]
    params: dict
    documents: dict
    calls: tuple[ApiCall, ...]
    cli: tuple[str, ...]  # the calls as AWS CLI commands


def cli_line(call: ApiCall, *, region: str = "") -> str:
    """One call as an AWS CLI command: the same operation and parameters. Structures are given as JSON,
    which the CLI accepts for any structured parameter; a value starting with "-" (or a generated one,
    which may) is joined to its option with "=", so the CLI never reads it as an option."""
    words = ["aws", _CLI_SERVICES.get(call.service, call.service), words_of(call.operation, "-")]
    for name, value in call.params.items():
        option = "--" + words_of(name, "-")
        if value is True:
            words.append(option)
        elif value is False:
            words.append("--no-" + option[2:])
        else:
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            words += [f"{option}={text}"] if text.startswith("-") or text == GENERATED else [option, text]
    if region and call.service != "iam":  # IAM is global
        words += ["--region", region]
    return " ".join(shlex.quote(word) for word in words)


def _depends_on(kind: StepKind, keys_of: dict[str, list[str]], registry: Registry) -> tuple[str, ...]:
    """The steps of the kinds this one waits for; a kind with no step in this plan passes its own wait on."""
    keys: list[str] = []
    for after in kind.after:
        if after in keys_of:
            keys += keys_of[after]
        else:
            keys += _depends_on(registry.kind_of(after), keys_of, registry)
    return tuple(dict.fromkeys(keys))


def plan_build(spec: Spec, *, registry: Registry = REGISTRY) -> list[PlannedStep]:
    """Every step in order: preflight first, then each branch as a chain, the branches in parallel."""
    steps: list[PlannedStep] = []
    keys_of: dict[str, list[str]] = {}
    for kind in registry.kinds:
        for params in kind.instances(spec):
            key = kind.step_key(params)
            calls = tuple(kind.calls(params))
            steps.append(
                PlannedStep(
                    key=key,
                    kind=kind.key,
                    title=kind.title(params)[:300],
                    branch=kind.branch,
                    depends_on=_depends_on(kind, keys_of, registry),
                    params=params,
                    documents=kind.documents(params),
                    calls=calls,
                    cli=tuple(cli_line(call, region=spec.region) for call in calls),
                )
            )
            keys_of.setdefault(kind.key, []).append(key)
    return steps


def plan_branches(steps: list[PlannedStep]) -> list[tuple[str, list[PlannedStep]]]:
    """Steps grouped by branch, in the order the branches first appear, for the preview."""
    grouped: dict[str, list[PlannedStep]] = {}
    for step in steps:
        grouped.setdefault(step.branch, []).append(step)
    return [(BRANCHES.get(name, name.title()), members) for name, members in grouped.items()]


def plan_transcript(spec: Spec, steps: list[PlannedStep], *, source_identity: str) -> str:
    """The plan as the AWS CLI commands a person would type, starting with reaching the account."""
    if spec.uses_role:
        call = assume_role_call(
            role_arn=spec.role_arn,
            external_id=spec.external_id,
            session_name=RUN_SESSION_NAME.format(run_id="<run id>"),
            source_identity=source_identity,
        )
        lines = [
            "# Reach the customer's account: export the AccessKeyId, SecretAccessKey and SessionToken it returns",
            "# as AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN for the commands below.",
            cli_line(call, region=spec.region),
        ]
    else:
        lines = [
            "# Reach the customer's account with their IAM user's keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ]
    lines.append(cli_line(ApiCall("sts", "GetCallerIdentity", {}), region=spec.region))
    for step in steps:
        if step.cli:
            lines += [f"# {step.title}", *step.cli]
    return "\n".join(lines)
