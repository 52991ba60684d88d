"""One registry of steps: a step declared once appears everywhere it is derived, and what the plan
shows as AWS CLI commands is what the steps send."""

import contextlib
import io
import json
import os
import re
import shlex
from collections import Counter

import pytest
from awscli.clidriver import create_clidriver
from botocore import xform_name

from provisioning.engine.finish import run_summary
from provisioning.kinds import REGISTRY
from provisioning.models import AuditEvent, Run, StepRun
from provisioning.plan import plan_build, plan_transcript
from provisioning.registry import (
    GENERATED,
    ApiCall,
    Publish,
    Registry,
    ResourceRecord,
    StepKind,
    ops,
    source_identity_for,
    words_of,
)
from provisioning.role import template as role_template
from provisioning.spec import spec_parse
from tests.conftest import spec_data, start_run, wait_for_run

VERSIONING = StepKind(
    key="s3.versioning",
    branch="s3",
    title=lambda p: f"Versioning on {p['bucket']}",
    instances=lambda spec: [{"bucket": spec.bucket}],
    after=("s3.bucket",),
    calls=lambda p: [
        ApiCall("s3", "PutBucketVersioning", {"Bucket": p["bucket"], "VersioningConfiguration": {"Status": "Enabled"}})
    ],
    operations=ops("s3", "GetBucketVersioning", "PutBucketVersioning"),
    resource=ResourceRecord("Bucket versioning", "bucket", "bucket", arn_output=""),
    publishes=(Publish("versioning", "status", "Versioning"),),
)


def test_a_step_added_to_a_registry_appears_in_the_plan_the_summary_and_the_roles_actions():
    registry = Registry([*REGISTRY.kinds, VERSIONING])
    spec = spec_parse(spec_data())

    step = next(s for s in plan_build(spec, registry=registry) if s.kind == "s3.versioning")
    assert (step.key, step.depends_on, step.title) == ("s3.versioning", ("s3.bucket",), "Versioning on acme-app-media")
    assert step.cli == (
        "aws s3api put-bucket-versioning --bucket acme-app-media "
        """--versioning-configuration '{"Status":"Enabled"}' --region us-west-2""",
    )
    assert "s3.versioning" not in {s.key for s in plan_build(spec)}  # the real registry is untouched

    steps = {s.key: StepRun(key=s.key, state="succeeded", params=s.params) for s in plan_build(spec, registry=registry)}
    steps["s3.versioning"].outputs = {"status": "Enabled"}
    summary = run_summary(spec=spec, steps=steps, registry=registry)
    assert summary["versioning"] == "Enabled" and summary["steps"]["s3.versioning"] == "succeeded"

    template = role_template.cloudformation_template(
        customer_name="Acme", portal_account_id="123456789012", external_id="e" * 40, registry=registry
    )
    role = template["Resources"]["OnrampAccessRole"]["Properties"]
    actions = {a for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"] for a in s["Action"]}
    assert {"s3:PutBucketVersioning", "s3:GetBucketVersioning"} <= actions
    assert "s3:PutBucketVersioning" not in json.dumps(role_template.access_policy_document())


def test_names_are_spelled_as_boto3_and_the_cli_spell_them():
    """words_of is how the plan names methods and CLI options without importing botocore: it must agree
    with botocore's own xform_name for every operation and parameter the steps send."""
    spec = spec_parse(spec_data())
    calls = [call for step in plan_build(spec) for call in step.calls]
    names = {call.operation for call in calls} | {name for call in calls for name in call.params}
    assert len(names) > 20
    for name in names:
        assert words_of(name, "_") == xform_name(name), name
        assert words_of(name, "-") == xform_name(name, "-"), name


@pytest.mark.parametrize(
    ("username", "identity"),
    [
        ("josé.muñoz@agency.example", "jose.munoz@agency.example"),
        ("alice", "alice"),
        ("x" * 64, "x" * 64),
        ("bob smith", "bob-smith"),
    ],
)
def test_source_identity_is_what_aws_accepts(username, identity):
    assert source_identity_for(username) == identity


def test_a_long_name_keeps_its_start_and_stays_distinct():
    first, second = source_identity_for("a" * 100 + "@one.example"), source_identity_for("a" * 100 + "@two.example")
    assert len(first) == len(second) == 64 and first.startswith("a" * 51) and first != second


def test_a_name_with_little_ascii_gets_a_stable_distinct_identity():
    pattern = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}", re.ASCII)  # STS's rule for SourceIdentity
    first, second = source_identity_for("Дмитрий"), source_identity_for("Анна")
    assert pattern.fullmatch(first) and pattern.fullmatch(second) and pattern.fullmatch(source_identity_for("a"))
    assert first != second and first == source_identity_for("Дмитрий")


def _write_calls(calls):
    """The write calls (not Get/List/Describe/Head), leaving out reaching the account."""
    reads = ("Get", "List", "Describe", "Head")
    return [c for c in calls if not c[1].startswith(reads) and c[1] not in ("AssumeRole", "GetCallerIdentity")]


def _cli_run(line: str, env: dict, seen: list) -> str:
    """Execute one AWS CLI command in this process (the real awscli), recording the parameters it sends."""
    driver = create_clidriver()

    def record(params, model, **kwargs):
        seen.append((model.service_model.service_name, model.name, json.loads(json.dumps(params, default=str))))

    driver.session.register("before-parameter-build", record)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), _environ(env):
        assert driver.main(shlex.split(line)[1:]) == 0, line
    return out.getvalue()


@contextlib.contextmanager
def _environ(values: dict):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _canonical(params: dict) -> dict:
    """Generated values become a placeholder; JSON documents sent as text compare as documents."""
    out = {}
    for name, value in params.items():
        if name == "Password":
            value = GENERATED
        elif isinstance(value, str) and value.startswith("{"):
            value = json.loads(value)
        out[name] = value
    return out


def test_the_previews_cli_transcript_makes_the_same_write_calls_as_an_onramp_run(worker, alice, sandbox, aws):
    """Onramp onboards the sandbox account; the sandbox is emptied; the preview's transcript for the same
    spec is executed with the real AWS CLI. Both make the same write calls with the same parameters."""
    data = spec_data()
    spec = spec_parse(data)
    run = wait_for_run(start_run(alice))
    assert run.status == Run.Status.SUCCEEDED
    onramp = [
        (e.action.split(".")[1], e.action.split(".")[2], _canonical(e.details["params"]))
        for e in AuditEvent.objects.filter(run=run, action__startswith="aws.", outcome="ok").order_by("id")
    ]

    aws.reset()
    env = {
        "AWS_ENDPOINT_URL": sandbox.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": spec.region,
    }
    env.pop("AWS_SESSION_TOKEN", None)
    transcript = plan_transcript(spec, plan_build(spec), source_identity=source_identity_for("alice"))
    seen: list = []
    for line in (line for line in transcript.splitlines() if line and not line.startswith("#")):
        line = line.replace("<run id>", str(run.pk)).replace(GENERATED, "Generated-password-1!")
        answer = _cli_run(line, env, seen)
        if line.startswith("aws sts assume-role "):
            credentials = json.loads(answer)["Credentials"]
            env |= {
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
            }
    cli = [(service, operation, _canonical(params)) for service, operation, params in seen]

    (assume,) = [params for _, operation, params in cli if operation == "AssumeRole"]
    assert (assume["SourceIdentity"], assume["RoleSessionName"]) == ("alice", f"onramp-run-{run.pk}")
    wanted = Counter(json.dumps(c, sort_keys=True) for c in _write_calls(cli))
    made = Counter(json.dumps(c, sort_keys=True) for c in _write_calls(onramp))
    assert len(wanted) >= 15
    assert wanted == made, {"only in the transcript": wanted - made, "only in Onramp's run": made - wanted}


@pytest.mark.parametrize("value", ["-starts-with-a-dash", GENERATED])
def test_a_value_that_could_read_as_an_option_is_joined_to_it(value):
    from provisioning.plan import cli_line

    line = cli_line(ApiCall("iam", "CreateLoginProfile", {"UserName": "u", "Password": value}))
    assert f"--password={value}" in shlex.split(line)
