"""Each kind's `compare`, field by field, against hand-made read-backs (what provisioning/steps' readers return):
one field changed at a time must give exactly one difference naming it, and the read-back as wanted none.

The end-to-end drift tests (tests/test_drift.py) cover each path a difference takes (reported, repaired, left
alone, unreachable) through the worker; these cover what each field of each document is compared on, which
those tests only touch once or twice (BlockPublicPolicy off, the whole CORS set-up replaced). No AWS, no
database: a compare is a pure function of the declaration."""

from datetime import UTC, datetime

import pytest

from provisioning import documents, drift
from provisioning.kinds import REGISTRY
from provisioning.kinds.team_member.declaration import member_policies
from provisioning.plan import Action
from provisioning.registry import CHANGE_PASSWORD_POLICY
from provisioning.spec import spec_parse
from tests.conftest import spec_data

SPEC = spec_parse(spec_data())


def _params(kind: str, index: int = 0) -> dict:
    return REGISTRY.kind_of(kind).instances(SPEC)[index]


def _fields(kind: str, seen: dict, *, params: dict | None = None, previous: dict | None = None) -> list[str]:
    differences = REGISTRY.kind_of(kind).compare(params or _params(kind), seen, previous)
    return [d.field for d in differences]


# --- Block Public Access: every flag on its own -----------------------------------------------------------

FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def test_block_public_access_as_wanted_has_no_difference():
    assert _fields("s3.public_access_block", {"config": documents.public_access_block_document()}) == []


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'Block Public Access' drift.
@pytest.mark.parametrize("flag", FLAGS)
def test_each_block_public_access_flag_off_on_its_own_is_a_difference(flag):
    config = {**documents.public_access_block_document(), flag: False}
    differences = REGISTRY.kind_of("s3.public_access_block").compare(
        _params("s3.public_access_block"), {"config": config}, None
    )
    assert [(d.field, d.expected, d.actual) for d in differences] == [(f"Block Public Access {flag}", "yes", "no")]


@pytest.mark.parametrize("flag", FLAGS)
def test_each_block_public_access_flag_missing_from_the_read_back_is_a_difference(flag):
    config = {name: True for name in FLAGS if name != flag}
    assert _fields("s3.public_access_block", {"config": config}) == [f"Block Public Access {flag}"]


def test_no_block_public_access_at_all_is_a_difference():
    assert _fields("s3.public_access_block", {"config": None}) == ["Block Public Access"]


# --- CORS: each rule's origins, methods, headers -------------------------------------------------------------


def _cors() -> list[dict]:
    """The read-back of the CORS set-up as Onramp writes it (s3.cors_read normalises what AWS returns)."""
    return documents.cors_rules_normal(documents.cors_document(app_origin=SPEC.app_origin)["CORSRules"])


def _cors_fields(rules: list[dict]) -> list[str]:
    return _fields("s3.cors", {"rules": rules})


def test_cors_as_wanted_has_no_difference():
    assert _cors_fields(_cors()) == []


def test_an_origin_added_inside_the_upload_rule_is_a_difference():
    rules = _cors()
    rules[1]["AllowedOrigins"] = [SPEC.app_origin, "https://evil.example"]
    assert _cors_fields(rules) == ["CORS rules [1].AllowedOrigins"]


def test_the_upload_rules_origin_replaced_is_a_difference():
    rules = _cors()
    rules[1]["AllowedOrigins"] = ["https://evil.example"]
    assert _cors_fields(rules) == ["CORS rules [1].AllowedOrigins"]


def test_the_read_rules_origin_narrowed_is_a_difference():
    rules = _cors()
    rules[0]["AllowedOrigins"] = [SPEC.app_origin]
    assert _cors_fields(rules) == ["CORS rules [0].AllowedOrigins"]


@pytest.mark.parametrize(
    ("index", "methods"),
    [(0, ["GET", "PUT"]), (0, ["HEAD"]), (1, ["PUT", "POST"]), (1, ["PUT", "POST", "DELETE", "GET"])],
)
def test_a_rules_methods_changed_are_a_difference(index, methods):
    rules = _cors()
    rules[index]["AllowedMethods"] = methods
    assert _cors_fields(rules) == [f"CORS rules [{index}].AllowedMethods"]


@pytest.mark.parametrize(
    ("index", "key", "value"),
    [
        (0, "AllowedHeaders", ["*"]),
        (1, "AllowedHeaders", ["Authorization"]),
        (1, "ExposeHeaders", ["x-amz-server-side-encryption", "ETag"]),
        (1, "ExposeHeaders", None),
        (0, "MaxAgeSeconds", 86400),
    ],
)
def test_a_rules_headers_and_max_age_changed_are_a_difference(index, key, value):
    rules = _cors()
    if value is None:
        del rules[index][key]
    else:
        rules[index][key] = value
    assert _cors_fields(rules) == [f"CORS rules [{index}].{key}"]


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'CORS rules' drift.
def test_a_third_rule_or_a_missing_rule_or_none_at_all_is_a_difference():
    extra = [*_cors(), {"AllowedOrigins": ["*"], "AllowedMethods": ["PUT"]}]
    assert _cors_fields(extra) == ["CORS rules"]
    assert _cors_fields(_cors()[:1]) == ["CORS rules"]
    assert _cors_fields([]) == ["CORS rules"]


# --- The ECR lifecycle policy: each rule -------------------------------------------------------------------

RULES = documents.lifecycle_policy_document()["rules"]


def test_the_lifecycle_policy_as_wanted_has_no_difference():
    assert _fields("ecr.lifecycle", {"policy": documents.lifecycle_policy_document()}) == []


@pytest.mark.parametrize("index", range(len(RULES)), ids=[rule["description"] for rule in RULES])
def test_each_lifecycle_rule_changed_is_a_difference(index):
    policy = documents.lifecycle_policy_document()
    policy["rules"][index]["selection"]["countNumber"] += 1
    assert _fields("ecr.lifecycle", {"policy": policy}) == [f"lifecycle policy rules[{index}].selection.countNumber"]
    policy = documents.lifecycle_policy_document()
    policy["rules"][index]["action"] = {"type": "keep"}
    assert _fields("ecr.lifecycle", {"policy": policy}) == [f"lifecycle policy rules[{index}].action.type"]


@pytest.mark.parametrize("index", range(len(RULES)), ids=[rule["description"] for rule in RULES])
def test_each_lifecycle_rule_missing_is_a_difference(index):
    policy = documents.lifecycle_policy_document()
    del policy["rules"][index]
    assert _fields("ecr.lifecycle", {"policy": policy}) == ["lifecycle policy rules"]


def test_a_tag_prefix_of_a_lifecycle_rule_changed_is_a_difference():
    policy = documents.lifecycle_policy_document()
    policy["rules"][1]["selection"]["tagPrefixList"] = ["testing", "prod"]
    assert _fields("ecr.lifecycle", {"policy": policy}) == ["lifecycle policy rules[1].selection.tagPrefixList"]


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'lifecycle policy' drift.
def test_no_lifecycle_policy_is_a_difference():
    assert _fields("ecr.lifecycle", {"policy": None}) == ["lifecycle policy"]


# --- The media policy: each statement's action, resource and effect; its attachment ----------------------------


def _media() -> dict:
    params = _params("iam.media_policy")
    return {
        "document": documents.media_policy_document(scope=params["scope"], bucket=params["bucket"]),
        "attached": True,
    }


def test_the_media_policy_as_wanted_and_attached_has_no_difference():
    assert _fields("iam.media_policy", _media()) == []


@pytest.mark.parametrize("action", documents.MEDIA_MANAGEMENT_ACTIONS)
def test_each_action_of_the_statement_missing_is_a_difference(action):
    seen = _media()
    statement = seen["document"]["Statement"][0]
    statement["Action"] = [a for a in statement["Action"] if a != f"s3:{action}"]
    assert _fields("iam.media_policy", seen) == ["policy document Statement[0].Action"]


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'policy document' drift.
def test_an_action_added_to_the_statement_is_a_difference():
    seen = _media()
    seen["document"]["Statement"][0]["Action"].append("s3:PutBucketPolicy")
    assert _fields("iam.media_policy", seen) == ["policy document Statement[0].Action"]


@pytest.mark.parametrize("index", [0, 1])
def test_each_resource_of_the_statement_missing_or_widened_is_a_difference(index):
    seen = _media()
    statement = seen["document"]["Statement"][0]
    del statement["Resource"][index]
    assert _fields("iam.media_policy", seen) == ["policy document Statement[0].Resource"]
    seen = _media()
    seen["document"]["Statement"][0]["Resource"][index] = "arn:aws:s3:::*"
    assert _fields("iam.media_policy", seen) == ["policy document Statement[0].Resource"]


def test_the_statements_effect_or_sid_changed_is_a_difference():
    for key, value in (("Effect", "Deny"), ("Sid", "Other")):
        seen = _media()
        seen["document"]["Statement"][0][key] = value
        assert _fields("iam.media_policy", seen) == [f"policy document Statement[0].{key}"]


def test_a_statement_added_to_the_media_policy_is_a_difference():
    seen = _media()
    seen["document"]["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    assert _fields("iam.media_policy", seen) == ["policy document Statement"]


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'policy attachment' drift.
def test_the_media_policy_detached_from_the_app_user_is_a_difference():
    seen = {**_media(), "attached": False}
    assert _fields("iam.media_policy", seen) == [f"attached to {SPEC.app_name}"]


# --- Attachments: the app user's group, a member's policies and console ----------------------------------------


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'group membership' drift.
def test_the_app_user_out_of_its_group_or_untagged_is_a_difference():
    params = _params("iam.app_user")
    assert _fields("iam.app_user", {"tagged": True, "groups": [params["group"]]}) == []
    assert _fields("iam.app_user", {"tagged": True, "groups": ["Other"]}) == ["groups"]
    assert _fields("iam.app_user", {"tagged": False, "groups": [params["group"], "Other"]}) == ["tag managed-by"]


def _member(index: int) -> tuple[dict, dict]:
    """A team member's parameters and the read-back of the user as Onramp makes it."""
    params = _params("team.member", index)
    seen = {"tagged": True, "policies": member_policies(params), "console": params["console"]}
    return params, seen


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its "team user's policies" drift.
@pytest.mark.parametrize("index", [0, 1], ids=["tech lead with console", "read-only member"])
def test_a_member_as_made_has_no_difference_and_each_wanted_policy_detached_is_one(index):
    params, seen = _member(index)
    assert _fields("team.member", seen, params=params) == []
    for policy in seen["policies"]:
        detached = {**seen, "policies": [p for p in seen["policies"] if p != policy]}
        assert _fields("team.member", detached, params=params) == ["policies"], policy


def test_a_policy_attached_by_hand_is_left_but_one_onramp_attached_and_no_longer_wants_is_a_difference():
    params, seen = _member(1)
    by_hand = {**seen, "policies": [*seen["policies"], "AdministratorAccess"]}
    assert _fields("team.member", by_hand, params=params) == []
    previous = {**params, "policy": "AdministratorAccess"}  # what Onramp attached before the spec changed
    assert _fields("team.member", by_hand, params=params, previous=previous) == ["policies"]


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its "team user's console access" drift.
def test_a_members_console_access_either_way_is_a_difference():
    lead, seen = _member(0)
    assert CHANGE_PASSWORD_POLICY in seen["policies"]
    assert _fields("team.member", {**seen, "console": False}, params=lead) == ["console access"]
    member, seen = _member(1)
    assert _fields("team.member", {**seen, "console": True}, params=member) == ["console access"]


# --- The bucket --------------------------------------------------------------------------------------------------


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'object ownership' drift.
def test_the_buckets_ownership_or_region_differ():
    params = _params("s3.bucket")
    wanted = {"region": params["region"], "ownership": documents.OBJECT_OWNERSHIP}
    assert _fields("s3.bucket", wanted) == []
    assert _fields("s3.bucket", {**wanted, "ownership": "ObjectWriter"}) == ["object ownership"]
    elsewhere = REGISTRY.kind_of("s3.bucket").compare(params, {**wanted, "region": "eu-west-1"}, None)
    assert [(d.field, d.repairable) for d in elsewhere] == [("region", False)]


# --- The sign-in alias; a resource missing ------------------------------------------------------------------------


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[every field at once], its 'alias' drift.
def test_the_sign_in_alias_missing_is_a_repairable_difference_and_another_alias_one_repair_leaves():
    params = _params("account.alias")
    assert _fields("account.alias", {"alias": params["alias"]}) == []
    missing = REGISTRY.kind_of("account.alias").compare(params, {"alias": None}, None)
    assert [(d.field, d.expected, d.actual, d.repairable) for d in missing] == [
        ("sign-in alias", params["alias"], "none", True)
    ]
    # Onramp never replaces an alias someone else set: reported, not repaired.
    other = REGISTRY.kind_of("account.alias").compare(params, {"alias": "somebody-else"}, None)
    assert [(d.field, d.actual, d.repairable) for d in other] == [("sign-in alias", "somebody-else", False)]


# End to end (reported, repaired): tests/test_drift.py::test_fields_drifted_by_hand_are_reported_in_words_and_
# repair_corrects_exactly_them[repository] (the repository deleted, its lifecycle policy with it).
def test_a_resource_missing_is_a_repairable_difference_in_words():
    item = {"key": "ecr.repository", "title": "ECR repository acme-app", "action": Action.CREATE, "differences": []}
    found = drift.drift_differences([item], checked=datetime(2026, 12, 7, tzinfo=UTC), read_id="r1")
    assert [(d["field"], d["repairable"], d["words"]) for d in found] == [
        ("resource", True, "ECR repository acme-app: resource: expected there, found missing")
    ]
