"""The audit chain's HMAC keys: AUDIT_KEYS from the environment, newest first, never in the database.

Each row names the key that signed its hash by a short id (derived from the key, not the key), so the
keys can be rotated: a new key goes first and signs new rows; the old ones stay after it so that the
rows they signed still verify.
"""

import hashlib
from functools import cache

from django.conf import settings


class AuditKeyMissing(LookupError):
    """A row is signed with a key that AUDIT_KEYS no longer holds."""


def audit_key_id(key: str) -> str:
    return hashlib.sha256(b"onramp-audit-key-id\0" + key.encode()).hexdigest()[:12]


@cache
def _keyring(keys: tuple[str, ...]) -> dict[str, bytes]:
    return {audit_key_id(key): key.encode() for key in keys}


def audit_key(key_id: str) -> bytes:
    try:
        return _keyring(tuple(settings.AUDIT_KEYS))[key_id]
    except KeyError:
        raise AuditKeyMissing(f"No key of AUDIT_KEYS has the id {key_id}.") from None


def audit_key_current() -> tuple[str, bytes]:
    """The newest key, which signs every new row: (its id, the key)."""
    key = settings.AUDIT_KEYS[0]
    return audit_key_id(key), key.encode()
