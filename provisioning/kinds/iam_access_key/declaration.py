"""The app user's one access key, its secret sealed in the vault; and its removal when the user stays."""

from provisioning.kinds.iam_app_user import declaration as iam_app_user
from provisioning.kinds.iam_media_policy import declaration as iam_media_policy
from provisioning.registry import (
    NOT_ONRAMPS,
    ApiCall,
    Difference,
    Publish,
    ResourceRecord,
    StepKind,
    counted,
    ops,
    removal_kind,
    user_ops,
)

KEY = "iam.access_key"
REMOVAL_KEY = "remove.iam.access_key"
ORDER = 50


def create_access_key(user: str) -> ApiCall:
    return ApiCall("iam", "CreateAccessKey", {"UserName": user})


def _compare_key_age(key: dict, limit: int | None) -> list[Difference]:
    if limit is None or key.get("age_days") is None or key["age_days"] < limit:
        return []
    return [
        Difference(
            f"access key {key['id']}",
            f"younger than {limit} days",
            f"{key['age_days']} days old: due for rotation (Issue a new key on the last run's page)",
            repairable=False,
        )
    ]


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    keys = seen["keys"]
    if not keys:
        return [Difference("access key", "one", "none")]
    found = []
    for key in keys:
        if key.get("onramps") is False:
            found.append(Difference(f"access key {key['id']}", "none besides Onramp's", NOT_ONRAMPS, repairable=False))
        else:
            found += _compare_key_age(key, seen.get("max_age_days"))
    if len(keys) > 1 and all(key.get("onramps") is not False for key in keys):
        ids = ", ".join(key["id"] for key in keys)
        found.append(Difference("access keys", "one", f"{len(keys)} ({ids})", repairable=False))
    return found


KIND = StepKind(
    key=KEY,
    branch="iam",
    title=lambda p: f"Access key for {p['user']}",
    instances=lambda spec: [{"user": spec.app_name, "region": spec.region, "bucket": spec.bucket}],
    after=(iam_media_policy.KEY,),
    calls=lambda p: [create_access_key(p["user"])],
    # Update and Delete: "Issue a new key" retires the old key.
    operations=(
        *ops("iam", "ListAccessKeys"),
        *user_ops("CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey"),
    ),
    resource=ResourceRecord("Access key", "user", "access_key_id", arn_output=""),
    publishes=(Publish("access_key_id", "access_key_id", "Access key id"),),
    compare=compare,
    # A key the ledger holds (this kind's rows) is Onramp's; any other is reported. Read only once its user is there.
    owned=("keys", "id", "self"),
    read_after=iam_app_user.KEY,
    # On its own only when its user stays (released): a removed user's removal deletes its keys.
    removal=(REMOVAL_KEY,),
    absent=("NoSuchEntity",),
    noun="access key",
    # A user with no key is nothing to adopt.
    found=lambda p, seen: bool(seen.get("keys")),
    found_words=lambda identity, seen: (
        f"{identity} already has {counted(len(seen.get('keys', [])), 'access key')}: Onramp makes no other and "
        "takes over the first."
    ),
)
REMOVAL = removal_kind(
    REMOVAL_KEY,
    lambda p: f"Delete the access key {p['name']} Onramp made for {p['user']} (the user stays)",
    # The very permissions "Issue a new key" has: the role's policy is unchanged.
    user_ops("UpdateAccessKey", "DeleteAccessKey"),
    calls=lambda p: [ApiCall("iam", "DeleteAccessKey", {"UserName": p["user"], "AccessKeyId": p["name"]})],
)
KINDS = (KIND, REMOVAL)
