"""The credential vault: encrypt the moment a secret exists, reveal once, wipe, expire, rotate keys."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from provisioning.audit.chain import audit_record
from provisioning.models import AuditEvent, Credential, Customer, Run, StepRun
from provisioning.teams import customer_permission_check


class VaultError(Exception):
    pass


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:
        # Never echo the key itself.
        raise VaultError("VAULT_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes).") from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.VAULT_KEYS))


def encrypt(secret: str) -> str:
    return fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise VaultError("This secret cannot be decrypted with the configured VAULT_KEYS.") from None


def credential_seal(
    *,
    secret: str,
    run: Run | None,
    customer: Customer,
    issued_to: User,
    kind: str,
    user_name: str,
    step: StepRun | None = None,
    access_key_id: str = "",
    sign_in_url: str = "",
    region: str = "",
    bucket: str = "",
    replaces_access_key_id: str = "",
) -> Credential:
    """Store a freshly generated secret as ciphertext; the caller keeps only the returned row's id."""
    credential = Credential.objects.create(
        run=run,
        step=step,
        customer=customer,
        issued_to=issued_to,
        kind=kind,
        user_name=user_name,
        access_key_id=access_key_id,
        sign_in_url=sign_in_url,
        region=region,
        bucket=bucket,
        ciphertext=encrypt(secret),
        expires_at=timezone.now() + timedelta(seconds=settings.CREDENTIAL_TTL),
        replaces_access_key_id=replaces_access_key_id,
    )
    return credential


@dataclass(frozen=True)
class Revealed:
    credential: Credential
    secret: str | None  # None when refused


def _credential_expire(credential: Credential, *, why: dict | None = None) -> None:
    """Wipe a sealed secret (the caller holds its row lock) and audit it: past its TTL, or `why` otherwise."""
    credential.ciphertext = ""
    credential.state = Credential.State.EXPIRED
    credential.save(update_fields=["ciphertext", "state"])
    audit_record(
        action="credential.expired",
        actor_label="system",
        customer=credential.customer_id,
        run=credential.run_id,
        target=credential.user_name,
        details={
            "credential": str(credential.pk),
            "kind": credential.kind,
            **(why or {"ttl_seconds": settings.CREDENTIAL_TTL}),
        },
    )


def credentials_wipe(
    *, customer_id: int, user_names: Sequence[str] = (), access_key_ids: Sequence[str] = (), reason: str
) -> int:
    """Wipe the sealed secrets of IAM users that are gone, and of access keys that are (a run removed them):
    nothing is left to sign in or call AWS with. Each wipe is audited with the reason. Returns how many."""
    gone = Q(user_name__in=list(user_names)) | Q(
        kind=Credential.Kind.ACCESS_KEY, access_key_id__in=list(access_key_ids)
    )
    wiped = Credential.objects.select_for_update().filter(gone, customer_id=customer_id, state=Credential.State.SEALED)
    count = 0
    for credential in wiped:
        _credential_expire(credential, why={"reason": reason})
        count += 1
    return count


def _reveal_refuse(credential: Credential, *, user, error_code: str) -> Revealed:
    audit_record(
        action="credential.reveal_refused",
        actor=user,
        customer=credential.customer_id,
        run=credential.run_id,
        outcome=AuditEvent.Outcome.REFUSED,
        error_code=error_code,
        target=credential.user_name,
        details={"credential": str(credential.pk), "kind": credential.kind, "state": credential.state},
    )
    return Revealed(credential, None)


def credential_reveal(*, credential_id: UUID | str, user: User) -> Revealed:
    """Reveal a secret once. One transaction, row locked: exactly one caller gets the secret,
    and the ciphertext is wiped before the transaction commits. A secret past its expiry is wiped
    here and refused, whether or not the expiry task has run. Only for the customer's team and Admins
    (checked before the transaction, so that the refusal stays audited)."""
    customer = Customer.objects.get(credentials__pk=credential_id)
    customer_permission_check(user=user, customer=customer, action="reveal")
    with transaction.atomic():
        credential = Credential.objects.select_for_update().get(pk=credential_id)
        if credential.state == Credential.State.SEALED and credential.expires_at <= timezone.now():
            _credential_expire(credential)
            return _reveal_refuse(credential, user=user, error_code="expired")
        if credential.state != Credential.State.SEALED or not credential.ciphertext:
            Credential.objects.filter(pk=credential.pk).update(refused_attempts=credential.refused_attempts + 1)
            credential.refused_attempts += 1
            return _reveal_refuse(credential, user=user, error_code=f"already_{credential.state}")
        secret = decrypt(credential.ciphertext)
        credential.ciphertext = ""
        credential.state = Credential.State.REVEALED
        credential.revealed_at = timezone.now()
        credential.revealed_by = user
        credential.save(update_fields=["ciphertext", "state", "revealed_at", "revealed_by"])
        audit_record(
            action="credential.revealed",
            actor=user,
            customer=credential.customer_id,
            run=credential.run_id,
            target=credential.user_name,
            details={
                "credential": str(credential.pk),
                "kind": credential.kind,
                "access_key_id": credential.access_key_id,
            },
        )
    return Revealed(credential, secret)


def credentials_expire(*, now: datetime | None = None) -> int:
    """Wipe every sealed secret past its TTL; each expiry is audited. Returns how many."""
    now = now or timezone.now()
    expired = 0
    for credential_id in Credential.objects.filter(state=Credential.State.SEALED, expires_at__lte=now).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            credential = (
                Credential.objects.select_for_update().filter(pk=credential_id, state=Credential.State.SEALED).first()
            )
            if credential is None:
                continue
            _credential_expire(credential)
            expired += 1
    return expired


def vault_rotate() -> int:
    """Re-encrypt every sealed secret (and stored customer keys) with the newest key."""
    f = fernet()
    count = 0
    with transaction.atomic():
        for credential in (
            Credential.objects.select_for_update().filter(state=Credential.State.SEALED).exclude(ciphertext="")
        ):
            credential.ciphertext = f.rotate(credential.ciphertext.encode()).decode()
            credential.save(update_fields=["ciphertext"])
            count += 1
        for customer in Customer.objects.select_for_update().exclude(secret_access_key_ciphertext=""):
            customer.secret_access_key_ciphertext = f.rotate(customer.secret_access_key_ciphertext.encode()).decode()
            customer.save(update_fields=["secret_access_key_ciphertext"])
            count += 1
    return count


def customer_set_keys(*, customer: Customer, access_key_id: str, secret_access_key: str) -> None:
    """Store a customer's IAM user keys, the secret encrypted."""
    customer.access_key_id = access_key_id
    customer.secret_access_key_ciphertext = encrypt(secret_access_key)
    customer.save(update_fields=["access_key_id", "secret_access_key_ciphertext", "updated_at"])
