"""The IAM group the app user joins, in Onramp's path; and its removal (members leave it first)."""

from provisioning.registry import (
    NOT_ONRAMPS,
    ONRAMP_PATH,
    ApiCall,
    Difference,
    Publish,
    ResourceRecord,
    StepKind,
    group_ops,
    ops,
    removal_kind,
)

KEY = "iam.group"
REMOVAL_KEY = "remove.iam.group"
ORDER = 20


def create_group(group: str) -> ApiCall:
    return ApiCall("iam", "CreateGroup", {"GroupName": group, "Path": ONRAMP_PATH})


def group_outside_sentence(group: str) -> str:
    return (
        f"The IAM group {group} exists outside Onramp's path {ONRAMP_PATH}: Onramp cannot take it over. To hand it "
        f"to Onramp, the customer moves it into the path (aws iam update-group --group-name {group} --new-path "
        f"{ONRAMP_PATH}); otherwise choose another group name."
    )


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    path = seen.get("path", ONRAMP_PATH)
    outside = [] if path == ONRAMP_PATH else [Difference("IAM path", ONRAMP_PATH, path, repairable=False)]
    return outside + [
        Difference(f"member {member['name']}", "not in the group", NOT_ONRAMPS, repairable=False)
        for member in seen.get("members", [])
        if member.get("onramps") is False
    ]


KIND = StepKind(
    key=KEY,
    branch="iam",
    title=lambda p: f"Group {p['group']}",
    instances=lambda spec: [{"group": spec.group_name}],
    calls=lambda p: [create_group(p["group"])],
    operations=(*group_ops("CreateGroup"), *ops("iam", "GetGroup")),
    resource=ResourceRecord("IAM group", "group", "group"),
    publishes=(Publish("group", "arn", "Group"),),
    compare=compare,
    # A member the ledger holds as a user (app user or team member) is Onramp's; any other is reported.
    owned=("members", "name", "users"),
    removal=(REMOVAL_KEY,),
    absent=("NoSuchEntity",),
    exists=("EntityAlreadyExists",),
    noun="group",
)
REMOVAL = removal_kind(
    REMOVAL_KEY,
    lambda p: f"Delete the group {p['name']} (its members leave it first)",
    (
        *ops("iam", "GetGroup", "ListAttachedGroupPolicies", "ListGroupPolicies"),
        *group_ops("DetachGroupPolicy", "DeleteGroupPolicy", "DeleteGroup", "RemoveUserFromGroup"),
    ),
    calls=lambda p: [ApiCall("iam", "DeleteGroup", {"GroupName": p["name"]})],
)
KINDS = (KIND, REMOVAL)
