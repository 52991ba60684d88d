"""Creating the access key (never a second one), reading the user's keys back, and deleting Onramp's key."""

from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from django.conf import settings
from django.utils import timezone

from provisioning.aws.accounts import AwsAccount
from provisioning.aws.errors import error_translate
from provisioning.kinds.common_aws import (
    absent_is_none,
    delete,
)
from provisioning.kinds.iam_access_key import declaration
from provisioning.kinds.iam_app_user import declaration as iam_app_user
from provisioning.models import Credential
from provisioning.steps.base import StepContext, StepResult


def read(account: AwsAccount, params: dict) -> dict | None:
    found = absent_is_none(lambda: account.client("iam").list_access_keys(UserName=params["user"]))
    if found is None:
        return None
    now = timezone.now()
    keys = [
        {
            "id": k["AccessKeyId"],
            "status": k["Status"],
            "created": k["CreateDate"].isoformat(),
            "age_days": (now - k["CreateDate"]).days,
        }
        for k in found["AccessKeyMetadata"]
    ]
    # A key this old is due for rotation (the declaration's compare says so; drift reports it).
    return {"keys": keys, "max_age_days": settings.DRIFT_KEY_MAX_AGE_DAYS}


def _forget_cut_off_keys(iam, ctx: StepContext, user: str, keys: list[dict]) -> list[dict]:
    """Delete keys made by an attempt of ours that was cut off before its secret was sealed (made after
    we asked, known to no credential); the keys left."""
    requested = ctx.step.outputs.get("key_requested_at")
    if not requested:
        return keys
    since = datetime.fromisoformat(requested) - timedelta(seconds=5)
    known = set(
        Credential.objects.filter(user_name=user, customer=ctx.run.customer).values_list("access_key_id", flat=True)
    )
    for key in keys:
        if key["id"] not in known and datetime.fromisoformat(key["created"]) >= since:
            iam.delete_access_key(UserName=user, AccessKeyId=key["id"])
    return [k for k in keys if k["id"] in known or datetime.fromisoformat(k["created"]) < since]


def execute(ctx: StepContext, params: dict) -> StepResult:
    """One access key for the app user, its secret sealed in the vault the moment AWS returns it.

    A run never creates a second key: a key this run sealed is adopted; a key created by an
    interrupted attempt of this run (its secret never sealed) is deleted and made again; a user
    that already has a key is adopted as is (rotate it from the run page)."""
    user = params["user"]
    mine = None  # the key an earlier attempt of this step sealed; a first attempt has sealed nothing
    if ctx.step.attempts > 1:
        mine = Credential.objects.filter(run=ctx.run, kind=Credential.Kind.ACCESS_KEY, user_name=user).first()
    new_user = ctx.created_by_run(iam_app_user.KEY)
    # A user this run created moments ago has no key but one an attempt of this step made, which it marked
    # (key_requested_at) before asking: only then, or for a user found there, is there anything to list.
    first_try = new_user and mine is None and not ctx.step.outputs.get("key_requested_at")
    try:
        keys = [] if first_try else (read(ctx.account, params) or {"keys": []})["keys"]
        if mine is not None and mine.access_key_id in {k["id"] for k in keys}:
            return StepResult(adopted=True, outputs={"access_key_id": mine.access_key_id, "credential": str(mine.pk)})
        keys = _forget_cut_off_keys(ctx.client("iam"), ctx, user, keys)
        if keys:
            return StepResult(
                adopted=True,
                outputs={"access_key_id": keys[0]["id"]},
                note=f"{user} already has an access key; Onramp did not make another. "
                "Use “Issue a new key” to rotate it.",
            )
        ctx.remember(key_requested_at=timezone.now().isoformat())
        created = ctx.send(declaration.create_access_key(user), settling=new_user)["AccessKey"]
        credential = ctx.seal(
            secret=created.pop("SecretAccessKey"),
            kind=Credential.Kind.ACCESS_KEY,
            user_name=user,
            access_key_id=created["AccessKeyId"],
            region=params["region"],
            bucket=params["bucket"],
        )
        del created
    except ClientError as exc:
        raise error_translate(exc, doing=f"Creating an access key for {user}") from None
    outputs = {"access_key_id": credential.access_key_id, "credential": str(credential.pk), "created": True}
    return StepResult(adopted=False, outputs=outputs)


def remove(ctx: StepContext, params: dict) -> StepResult:
    """An access key Onramp made for a user that stays (released): it goes, so that no key of Onramp's
    outlives Onramp's care of the user."""
    return delete(ctx, params, gone_codes=("NoSuchEntity",))
