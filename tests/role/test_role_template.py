"""The customer's role policy against AWS's own data, and bound to its template version (issue 25).

moto treats every identity-policy condition as met, so a condition AWS can never meet passes every run on
the sandbox. The Service Authorization Reference says, per action, which resource types it needs and which
condition keys each carries: a key absent from the request context makes a positive condition false, and
the action is refused. The data is parliament's machine-readable copy of that reference, read through the
strict layer's sandbox/sar.py, its one reader (docs/testing.md,
"What AWS enforces that the sandbox did not", names its version and date).
"""

import hashlib
import json
from fnmatch import fnmatchcase

from provisioning.registry import ROLE_POLICY_SHA256, ROLE_TEMPLATE_VERSION, ROLE_TRUST_ACTIONS
from provisioning.role import template as role_template
from sandbox.sar import reference as _reference

# Keys that name a tag or the policy of one resource or request: they exist only where the reference lists
# them for the action or its resource type. Every other aws: key is a global one (aws:SourceIdentity,
# aws:PrincipalArn…), present in every request.
NOT_GLOBAL = ("aws:resourcetag/", "aws:requesttag/", "aws:tagkeys")


def _pattern(key: str) -> str:
    """A reference key as a pattern: aws:ResourceTag/${TagKey} matches aws:ResourceTag/managed-by."""
    return key.replace("${TagKey}", "*").casefold()


def _is_global(key: str) -> bool:
    key = key.casefold()
    return key.startswith("aws:") and not key.startswith(NOT_GLOBAL)


def condition_problems(action: str, keys: set[str]) -> list[str]:
    """What AWS's reference says is wrong with conditioning `action` on `keys`: for each resource type the
    action requires, each non-global key must be one that resource type (its own keys or the action's keys
    for it) or the action itself (the reference's row without a resource type) carries."""
    prefix, name = action.split(":", 1)
    service = _reference()[prefix]
    privilege = next((p for p in service["privileges"] if p["privilege"].casefold() == name.casefold()), None)
    if privilege is None:
        return [f"{action}: not in the Service Authorization Reference"]
    resource_keys = {r["resource"]: r["condition_keys"] for r in service["resources"]}
    rows = privilege["resource_types"]
    of_action = [key for row in rows if not row["resource_type"] for key in row["condition_keys"]]
    required = [row for row in rows if row["resource_type"].endswith("*")] or [
        {"resource_type": "", "condition_keys": []}
    ]
    problems = []
    for row in required:
        resource = row["resource_type"].rstrip("*")
        carried = [*of_action, *row["condition_keys"], *resource_keys.get(resource, [])]
        for key in sorted(keys):
            if _is_global(key):
                continue
            if not any(fnmatchcase(key.casefold(), _pattern(known)) for known in carried):
                where = f"its resource type {resource!r}" if resource else "it"
                problems.append(f"{action}: {key} is never in the request context for {where} (carried: {carried})")
    return problems


def policy_problems(document: dict) -> list[str]:
    problems = []
    for statement in document["Statement"]:
        keys = {key for test in statement.get("Condition", {}).values() for key in test}
        if not keys:
            continue
        for action in statement["Action"]:
            problems += condition_problems(action, keys)
    return problems


def test_point_4_every_condition_of_the_role_policy_is_one_aws_can_meet():
    assert policy_problems(role_template.access_policy_document()) == []


def test_the_conditions_check_refuses_a_tag_condition_on_an_action_whose_resource_takes_no_tags():
    """The defect of issue 25 as data: a group carries no aws:ResourceTag, a user does; iam:PolicyARN belongs to
    AttachUserPolicy, not to DeleteUser; the global keys pass anywhere."""
    tag = {"aws:ResourceTag/managed-by"}
    assert condition_problems("iam:RemoveUserFromGroup", tag)
    assert condition_problems("iam:DeleteUser", tag) == []
    assert condition_problems("iam:AttachUserPolicy", {"iam:PolicyARN"}) == []
    assert condition_problems("iam:DeleteUser", {"iam:PolicyARN"})
    assert condition_problems("iam:RemoveUserFromGroup", {"aws:SourceIdentity", "aws:PrincipalArn"}) == []
    assert condition_problems("iam:CreateUser", {"aws:RequestTag/managed-by", "aws:TagKeys"}) == []
    assert condition_problems("iam:ListUsers", {"aws:ResourceTag/managed-by"})
    faulty = {
        "Statement": [
            {"Action": ["iam:RemoveUserFromGroup"], "Condition": {"StringEquals": {"aws:ResourceTag/managed-by": "x"}}}
        ]
    }
    assert policy_problems(faulty)


def role_policy_sha256(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def golden_problem(document: dict) -> str | None:
    """Why the role's policy does not match its template version, or None. A deployed role carries the version
    it was made from: a policy that changes under the same version would pass the preflight and fail half-way."""
    digest = role_policy_sha256(document)
    if max(ROLE_POLICY_SHA256) != ROLE_TEMPLATE_VERSION:
        newest = max(ROLE_POLICY_SHA256)
        return f"ROLE_TEMPLATE_VERSION is {ROLE_TEMPLATE_VERSION} but ROLE_POLICY_SHA256's newest is {newest}"
    if digest != ROLE_POLICY_SHA256[ROLE_TEMPLATE_VERSION]:
        return (
            f"The role's policy changed (sha256 {digest}) but ROLE_TEMPLATE_VERSION did not: raise it to "
            f"{ROLE_TEMPLATE_VERSION + 1} and add {ROLE_TEMPLATE_VERSION + 1}: {digest!r} to ROLE_POLICY_SHA256."
        )
    return None


def test_point_5_the_role_policy_is_the_one_its_template_version_names():
    assert golden_problem(role_template.access_policy_document()) is None


def test_point_5_a_statement_changed_without_the_version_fails_the_golden_check():
    document = role_template.access_policy_document()
    document["Statement"][0]["Action"] = document["Statement"][0]["Action"][1:]
    assert "ROLE_TEMPLATE_VERSION did not" in golden_problem(document)


def role_versions_unchanged() -> list[int]:
    """The versions that change neither the role's policy nor its trust policy's actions from the version before:
    a version raised for nothing, or an old version's hash edited to the new policy's."""
    versions = sorted(ROLE_POLICY_SHA256)
    return [
        version
        for before, version in zip(versions, versions[1:], strict=False)
        if ROLE_POLICY_SHA256[version] == ROLE_POLICY_SHA256[before]
        and ROLE_TRUST_ACTIONS.get(version) == ROLE_TRUST_ACTIONS.get(before)
    ]


def test_each_template_version_changes_the_policy_or_the_trust():
    assert role_versions_unchanged() == []
    hashes = [ROLE_POLICY_SHA256[v] for v in sorted(ROLE_POLICY_SHA256)]
    # A hash may repeat only as the one before it (a version that changed only the trust policy).
    assert len(set(hashes)) == len([h for i, h in enumerate(hashes) if i == 0 or h != hashes[i - 1]])


def test_the_trust_policy_allows_what_the_current_version_names():
    trust = role_template.trust_policy_document(portal_account_id="123456789012", external_id="x")
    (statement,) = trust["Statement"]
    assert tuple(statement["Action"]) == ROLE_TRUST_ACTIONS[ROLE_TEMPLATE_VERSION]
    assert max(ROLE_TRUST_ACTIONS) == ROLE_TEMPLATE_VERSION
