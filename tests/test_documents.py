"""The JSON documents sent to AWS, against the runbook's figures."""

import json
import shlex

from provisioning import documents
from provisioning.plan import plan_build
from provisioning.spec import spec_parse
from tests.conftest import spec_data

RUNBOOK_ACTIONS = {
    "ListBucket", "DeleteObjectTagging", "GetBucketTagging", "DeleteObjectVersion", "GetObjectVersionTagging",
    "PutObjectVersionTagging", "DeleteObjectVersionTagging", "GetBucketVersioning", "GetBucketAcl", "PutObject",
    "GetObjectAcl", "GetObject", "GetBucketCORS", "GetObjectVersionAcl", "PutBucketAcl", "PutObjectTagging",
    "DeleteObject", "GetBucketLocation", "PutObjectAcl", "GetObjectVersion",
}  # fmt: skip


def test_media_policy_has_the_runbooks_20_actions_on_every_bucket():
    doc = documents.media_policy_document(scope="all", bucket="ignored")
    (statement,) = doc["Statement"]
    assert statement["Effect"] == "Allow"
    assert len(statement["Action"]) == 20
    assert {a.removeprefix("s3:") for a in statement["Action"]} == RUNBOOK_ACTIONS
    assert all(a.startswith("s3:") for a in statement["Action"])
    assert statement["Resource"] == ["arn:aws:s3:::*", "arn:aws:s3:::*/*"]
    assert documents.media_policy_name(scope="all", bucket="x") == "MediaManagement"


def test_least_privilege_policy_is_scoped_to_the_bucket_and_named_after_it():
    doc = documents.media_policy_document(scope="bucket", bucket="acme-media")
    assert doc["Statement"][0]["Resource"] == ["arn:aws:s3:::acme-media", "arn:aws:s3:::acme-media/*"]
    assert len(doc["Statement"][0]["Action"]) == 20
    assert documents.media_policy_name(scope="bucket", bucket="acme-media") == "MediaManagement-acme-media"


def test_public_access_block_has_all_four_flags_on():
    doc = documents.public_access_block_document()
    assert doc == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                   "RestrictPublicBuckets": True}  # fmt: skip


def test_cors_has_the_runbooks_two_rules():
    rules = documents.cors_document(app_origin="https://acme.herokuapp.com")["CORSRules"]
    assert len(rules) == 2
    read, write = rules
    assert read == {"AllowedOrigins": ["*"], "AllowedHeaders": ["Authorization"], "AllowedMethods": ["GET"],
                    "MaxAgeSeconds": 3000}  # fmt: skip
    assert write["AllowedOrigins"] == ["https://acme.herokuapp.com"]
    assert write["AllowedHeaders"] == ["*"]
    assert write["AllowedMethods"] == ["PUT", "POST", "DELETE"]
    assert write["MaxAgeSeconds"] == 3000
    assert write["ExposeHeaders"] == ["x-amz-server-side-encryption"]


def test_lifecycle_policy_has_19_rules_and_all_sha_rules_alike():
    rules = documents.lifecycle_policy_document()["rules"]
    assert len(rules) == 19
    assert [r["rulePriority"] for r in rules] == list(range(1, 20))
    untagged = rules[0]
    assert untagged["selection"] == {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}
    prefixes = [r["selection"].get("tagPrefixList", [None])[0] for r in rules[1:]]
    assert prefixes == ["testing", "builder", *"0123456789abcdef"]
    for rule in rules[1:]:
        assert rule["action"] == {"type": "expire"}
        # Uniform: days since push for every tagged rule (a circulating copy counts images for '1' and '2').
        assert rule["selection"]["countType"] == "sinceImagePushed"
        assert rule["selection"]["countUnit"] == "days"
        assert rule["selection"]["countNumber"] == 3
        assert rule["selection"]["tagStatus"] == "tagged"


def test_plan_runs_preflight_first_then_branches_in_parallel():
    steps = plan_build(spec_parse(spec_data()))
    keys = [s.key for s in steps]
    assert keys[0] == "preflight" and "finalize" not in keys  # the run finishing is not a step
    heads = {s.key for s in steps if s.depends_on == ("preflight",)}
    assert heads == {"account.alias", "iam.group", "s3.bucket", "ecr.repository",
                     "team.member:lead@agency.example", "team.member:dev@agency.example"}  # fmt: skip
    by_key = {s.key: s for s in steps}
    assert by_key["iam.access_key"].depends_on == ("iam.media_policy",)
    assert by_key["s3.cors"].depends_on == ("s3.public_access_block",)
    assert all(s.depends_on for s in steps[1:])


def test_plan_documents_and_cli_are_what_the_builders_make():
    spec = spec_parse(spec_data(region="eu-west-1"))
    by_key = {s.key: s for s in plan_build(spec)}
    assert by_key["ecr.lifecycle"].documents["lifecycle_policy"] == documents.lifecycle_policy_document()
    assert by_key["s3.cors"].documents["cors"] == documents.cors_document(app_origin=spec.app_origin)
    assert """'{"LocationConstraint":"eu-west-1"}'""" in by_key["s3.bucket"].cli[0]
    east = {s.key: s for s in plan_build(spec_parse(spec_data(region="us-east-1")))}
    assert "LocationConstraint" not in east["s3.bucket"].cli[0]
    words = shlex.split(by_key["iam.media_policy"].cli[0])
    cli_doc = words[words.index("--policy-document") + 1]
    assert json.loads(cli_doc) == documents.media_policy_document(scope="bucket", bucket=spec.bucket)


def test_a_stored_spec_comes_back_equal_without_a_second_validation():
    from provisioning.spec import spec_from_json

    spec = spec_parse(spec_data())
    assert spec_from_json(spec.to_json()) == spec
    assert spec_from_json(spec.to_json()).team[0].policies == ("AdministratorAccess", "job-function/Billing")


def test_every_declared_step_has_a_step_function_and_every_function_a_declaration():
    from provisioning.kinds import REGISTRY
    from provisioning.steps.tables import tables

    kinds = {s.kind for s in plan_build(spec_parse(spec_data()))}
    removals = {removal for kind in REGISTRY.kinds for removal in kind.removal}
    assert kinds | removals == {kind.key for kind in REGISTRY.kinds} == set(tables().executors)
    assert all(REGISTRY.kind_of(key).branch == "remove" for key in removals)  # planned from the ledger only
