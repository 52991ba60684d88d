"""The app's IAM user, in Onramp's path, tagged as Onramp's, in the app's group."""

from provisioning.kinds.iam_group import declaration as iam_group
from provisioning.kinds.iam_user_removal import declaration as user_removal
from provisioning.registry import (
    ONRAMPS_ONLY,
    ApiCall,
    Difference,
    Publish,
    ResourceRecord,
    StepKind,
    compare_tag,
    create_user,
    group_ops,
    ops,
    shown,
    user_ops,
)

KEY = "iam.app_user"
ORDER = 30


def add_user_to_group(user: str, group: str) -> ApiCall:
    return ApiCall("iam", "AddUserToGroup", {"GroupName": group, "UserName": user})


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    found = compare_tag(seen)
    if params["group"] not in seen["groups"]:
        found.append(Difference("groups", params["group"], shown(seen["groups"])))
    return found


KIND = StepKind(
    key=KEY,
    branch="iam",
    title=lambda p: f"App user {p['user']} in {p['group']}",
    instances=lambda spec: [{"user": spec.app_name, "group": spec.group_name}],
    after=(iam_group.KEY,),
    calls=lambda p: [create_user(p["user"]), add_user_to_group(p["user"], p["group"])],
    operations=(
        *user_ops("CreateUser", also=("iam:TagUser",)),
        *user_ops("TagUser"),
        *ops("iam", "UpdateUser", condition=ONRAMPS_ONLY),
        *ops("iam", "GetUser", "ListGroupsForUser"),
        *group_ops("AddUserToGroup"),
    ),
    resource=ResourceRecord("IAM user (app)", "user", "user"),
    publishes=(Publish("app_user", "arn", "App user"),),
    compare=compare,
    user=True,
    removal=user_removal.USER_REMOVAL,
    absent=("NoSuchEntity",),
    exists=("EntityAlreadyExists",),
    noun="user",
)
KINDS = (KIND,)
