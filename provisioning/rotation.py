"""“Issue a new key”: a new access key for an app user, shown once, then the old one removed.

IAM allows two keys per user, so the flow refuses up front when two exist: it never leaves a
third attempt failing half-way."""

from collections.abc import Callable

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from provisioning import vault
from provisioning.audit.chain import audit_record
from provisioning.aws.accounts import AwsAccount, account_for_spec
from provisioning.aws.calls import aws_work
from provisioning.aws.errors import error_translate
from provisioning.errors import OnrampError
from provisioning.kinds.iam_access_key import declaration as access_key
from provisioning.ledger import ledger_access_key, ledger_holds_user
from provisioning.models import AuditEvent, Credential, Run
from provisioning.spec import spec_from_json
from provisioning.teams import customer_permission_check


class RotationError(Exception):
    pass


def _key_work(run: Run, user, doing: str, work: Callable[[AwsAccount], object]):
    """Do `work` in the run's account as `user`: every AWS call audited, a failure audited and raised
    with a sentence."""
    spec = spec_from_json(run.spec)
    with aws_work(
        actor_label=user.get_username(),
        actor_id=user.pk,
        customer_id=run.customer_id,
        run_id=run.pk,
        step_key=access_key.KEY,
    ) as log:
        try:
            account = account_for_spec(
                customer=run.customer,
                spec=spec,
                session_name=f"onramp-key-{run.pk}",
                source_identity=user.get_username(),
            )
            return work(account)
        except Exception as exc:
            error = error_translate(exc, doing=doing)
            log.record(
                action="credential.rotation_failed",
                outcome=AuditEvent.Outcome.ERROR,
                error_code=error.code,
                details={"message": str(error)},
            )
            raise error from None


def access_key_rotate_start(*, run: Run, user: User) -> Credential:
    """Create a new key for the run's app user and seal it; the old key stays until confirmed."""
    customer_permission_check(user=user, customer=run.customer, action="rotate")
    spec = spec_from_json(run.spec)
    user_name = spec.app_name
    # From any run, old ones included: only for an app user Onramp keeps now (not one it released or removed).
    if not ledger_holds_user(run.customer_id, {"UserName": user_name}):
        audit_record(
            action="credential.rotation_refused",
            actor=user,
            customer=run.customer_id,
            run=run,
            outcome=AuditEvent.Outcome.REFUSED,
            error_code="UserNotManaged",
            target=user_name,
            details={"reason": "Onramp no longer manages the user"},
        )
        raise OnrampError(
            f"Onramp no longer manages {user_name} (a later run released or removed it): it issues no key for it. "
            "Issue a new key from the run that made the customer's current app user.",
            code="UserNotManaged",
        )

    def work(account: AwsAccount) -> Credential:
        iam = account.client("iam")
        keys = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        if len(keys) >= 2:
            raise OnrampError(
                f"{user_name} already has two access keys ({', '.join(k['AccessKeyId'] for k in keys)}), "
                "the most IAM allows. Delete the one the app no longer uses, then issue a new key again.",
                code="TwoKeysAlready",
            )
        old = keys[0]["AccessKeyId"] if keys else ""
        created = account.send(access_key.create_access_key(user_name))["AccessKey"]
        return vault.credential_seal(
            secret=created.pop("SecretAccessKey"),
            run=run,
            customer=run.customer,
            issued_to=user,
            kind=Credential.Kind.ACCESS_KEY,
            user_name=user_name,
            access_key_id=created["AccessKeyId"],
            region=spec.region,
            bucket=spec.bucket,
            replaces_access_key_id=old,
        )

    credential = _key_work(run, user, f"Issuing a new access key for {user_name}", work)
    ledger_access_key(customer_id=run.customer_id, run=run, user=user_name, created_id=credential.access_key_id)
    audit_record(
        action="credential.rotation_started",
        actor=user,
        customer=run.customer_id,
        run=run,
        target=user_name,
        details={"new_access_key_id": credential.access_key_id, "replaces": credential.replaces_access_key_id},
    )
    return credential


def access_key_rotate_finish(*, credential: Credential, user: User) -> None:
    """After the new key was revealed and the app uses it: deactivate, then delete, the old key."""
    customer_permission_check(user=user, customer=credential.customer, action="rotate")
    if credential.state != Credential.State.REVEALED:
        raise RotationError("Reveal the new key and put it in the app before removing the old one.")
    if not credential.replaces_access_key_id or credential.replacement_done_at:
        raise RotationError("There is no old key left to remove.")
    run = credential.run
    if run is None:  # every key Onramp issues comes from a run (a step, or access_key_rotate_start)
        raise RotationError("This key was not issued by a run of Onramp's: remove the old key in AWS by hand.")
    old = credential.replaces_access_key_id

    def work(account: AwsAccount) -> None:
        iam = account.client("iam")
        iam.update_access_key(UserName=credential.user_name, AccessKeyId=old, Status="Inactive")
        iam.delete_access_key(UserName=credential.user_name, AccessKeyId=old)

    _key_work(run, user, f"Removing the old access key {old}", work)
    with transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(replacement_done_at=timezone.now())
        ledger_access_key(
            customer_id=run.customer_id, run=run, user=credential.user_name, created_id="", deleted_id=old
        )
        audit_record(
            action="credential.rotation_finished",
            actor=user,
            customer=run.customer_id,
            run=run,
            target=credential.user_name,
            details={"deleted_access_key_id": old},
        )
