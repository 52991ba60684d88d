"""The account's sign-in alias: set when the spec names one, never replaced; and its removal."""

from provisioning.registry import (
    ApiCall,
    Difference,
    ResourceRecord,
    StepKind,
    ops,
    removal_kind,
    shown,
)

KEY = "account.alias"
REMOVAL_KEY = "remove.account.alias"
ORDER = 10


def create_account_alias(alias: str) -> ApiCall:
    return ApiCall("iam", "CreateAccountAlias", {"AccountAlias": alias})


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    if seen["alias"] == params["alias"]:
        return []
    # Onramp never replaces another alias: only a missing one can be set.
    return [Difference("sign-in alias", params["alias"], shown(seen["alias"]), repairable=not seen["alias"])]


KIND = StepKind(
    key=KEY,
    branch="account",
    title=lambda p: f"Set the sign-in alias {p['alias']}",
    instances=lambda spec: [{"alias": spec.account_alias}] if spec.account_alias else [],
    calls=lambda p: [create_account_alias(p["alias"])],
    operations=ops("iam", "ListAccountAliases", "CreateAccountAlias"),
    resource=ResourceRecord("Account alias", "alias", "alias", arn_output=""),
    compare=compare,
    removal=(REMOVAL_KEY,),
    absent=("NoSuchEntity",),
    noun="alias",
    found=lambda p, seen: seen.get("alias") == p["alias"],
)
REMOVAL = removal_kind(
    REMOVAL_KEY,
    lambda p: f"Delete the sign-in alias {p['name']}",
    ops("iam", "DeleteAccountAlias"),
    calls=lambda p: [ApiCall("iam", "DeleteAccountAlias", {"AccountAlias": p["name"]})],
)
KINDS = (KIND, REMOVAL)
