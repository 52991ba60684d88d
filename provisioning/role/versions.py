"""What an older deployed role may still do: a run goes ahead on a role older than ROLE_TEMPLATE_VERSION only if
every operation of its steps is granted by the policy that version was published with, statement by statement.

A version's policy is read from the template it was published with (provisioning.role.published records each one
beside its version). Versions deployed before templates were published are known only by LEGACY_POLICIES below:
a version missing from both grants nothing, and a run on it is refused with the update sentence, as before.
"""

import json
from collections.abc import Iterable

from provisioning.models import PublishedTemplate
from provisioning.registry import ROLE_TEMPLATE_VERSION, ROLE_TRUST_ACTIONS, Operation

# Versions deployed before publishing began, and what each is known to grant (a policy document, as in a template).
# Empty: versions 1 and 2 grant nothing here, so every run on them waits for the customer's update.
LEGACY_POLICIES: dict[int, dict] = {}


def condition_document(condition: tuple) -> dict:
    """An operation's condition ((operator, key, values), …) as a policy statement writes it."""
    test: dict = {}
    for operator, key, values in condition:
        test.setdefault(operator, {})[key] = list(values) if len(values) > 1 else values[0]
    return test


def template_policy(template: dict) -> dict:
    """The role's permissions in a published template: every inline policy's statements, as one document."""
    statements = []
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for policy in resource.get("Properties", {}).get("Policies", []):
            found = policy["PolicyDocument"].get("Statement", [])
            statements.extend(found if isinstance(found, list) else [found])
    return {"Version": "2012-10-17", "Statement": statements}


def version_policy(version: int) -> dict | None:
    """What a deployed version of the role grants: its published template's policy, else LEGACY_POLICIES'."""
    content = PublishedTemplate.objects.filter(version=version).values_list("content", flat=True).first()
    if content is not None:
        return template_policy(json.loads(content))
    return LEGACY_POLICIES.get(version)


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def statement_grants(statement: dict, *, action: str, resource: str, condition: dict) -> bool:
    """Whether one statement allows `action` exactly as the operation needs it: the action named (no wildcard
    read into it), on every resource or on the operation's own, with no condition or exactly the operation's."""
    if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
        return False
    if action.casefold() not in {name.casefold() for name in _listed(statement.get("Action", []))}:
        return False
    resources = _listed(statement.get("Resource", []))
    if resources != ["*"] and resources != [resource]:
        return False
    granted_condition = statement.get("Condition") or {}
    return not granted_condition or granted_condition == condition


def operations_ungranted(policy: dict, operations: Iterable[Operation]) -> list[str]:
    """The IAM actions of these operations that no statement of `policy` grants as they need, sorted."""
    statements = _listed(policy.get("Statement", []))
    missing = set()
    for operation in operations:
        condition = condition_document(operation.condition) if operation.condition else {}
        for action in operation.actions:
            if not any(
                statement_grants(s, action=action, resource=operation.resource, condition=condition) for s in statements
            ):
                missing.add(action)
    return sorted(missing)


def role_update_sentence(*, version: int, current: int, missing: list[str] | None = None) -> str:
    """What to tell when a customer's role must be updated before a run: which version they have, what this
    run needs that it lacks, and where the update's steps are."""
    deployed = "an earlier template, before versions" if version == 0 else f"version {version} of the template"
    lacking = (
        f" (this run needs {', '.join(missing[:6])}{'…' if len(missing) > 6 else ''}, which it does not grant)"
        if missing
        else ""
    )
    url = PublishedTemplate.objects.filter(version=current).values_list("url", flat=True).first()
    where = (
        f"with the template {url} (CloudFormation, the stack, Update, Replace existing template, Amazon S3 URL; "
        "the customer's set-up page gives every step and the equivalent aws cloudformation update-stack command)"
        if url
        else "with the template from the customer's admin page (Update stack, Replace current template)"
    )
    return (
        f"The customer's Onramp role was deployed from {deployed}; this Onramp needs version {current}"
        f"{lacking}. Ask the customer to update their CloudFormation stack {where}, then retry."
    )


def _grants(policy: dict) -> set[tuple[str, str, str]]:
    """A policy as (action, resource, condition) grants, one per action of each Allow statement."""
    grants = set()
    for statement in _listed(policy.get("Statement", [])):
        if statement.get("Effect") != "Allow":
            continue
        condition = json.dumps(statement.get("Condition") or {}, sort_keys=True)
        for action in _listed(statement.get("Action", [])):
            for resource in _listed(statement.get("Resource", [])):
                grants.add((action, resource, condition))
    return grants


def _scope(resource: str, condition: str) -> str:
    where = "" if resource == "*" else f" on {resource}"
    tests = json.loads(condition)
    when = "; ".join(
        f"when {key} {operator} {', '.join(_listed(values))}"
        for operator, keys in tests.items()
        for key, values in keys.items()
    )
    return where + (f" ({when})" if when else "")


SAME_PERMISSIONS = "The same permissions (the template changed otherwise)."
# Why the trust policy allows an action, for the sentence that says an update adds it.
_TRUST_WHY = {"sts:TagSession": " (to name the approver of a run in the account's CloudTrail)"}


def trust_changes_in_words(version: int) -> list[str]:
    """What updating a role from `version` adds to its trust policy, one sentence per action (none for a version
    whose trust policy Onramp does not record)."""
    before = ROLE_TRUST_ACTIONS.get(version)
    if before is None:
        return []
    return [
        f"Its trust policy allows Onramp's account {action}{_TRUST_WHY.get(action, '')}."
        for action in ROLE_TRUST_ACTIONS[ROLE_TEMPLATE_VERSION]
        if action not in before
    ]


def policy_changes_in_words(old: dict | None, new: dict, *, version: int) -> list[str]:
    """What updating a role from `version` (its policy `old`) to the policy `new` changes, one sentence per
    action granted or no longer granted, in the policy's own names."""
    if old is None:
        return [
            f"Version {version} was deployed before Onramp published its templates: Onramp does not know what it "
            "grants, so the update brings the whole current policy."
        ]
    before, after = _grants(old), _grants(new)
    words = [f"Allows {action}{_scope(resource, condition)}." for action, resource, condition in sorted(after - before)]
    words += [
        f"No longer allows {action}{_scope(resource, condition)}."
        for action, resource, condition in sorted(before - after)
    ]
    return words or [SAME_PERMISSIONS]
