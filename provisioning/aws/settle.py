"""AWS's eventual consistency: a call that depends on something created moments ago waits out "not there yet"."""

import random
import time
from collections.abc import Callable

from botocore.exceptions import (
    ClientError,
)
from django.conf import settings

from provisioning.aws.errors import error_code

# What AWS answers for a while right after something was created (IAM and S3 are eventually
# consistent): the entity or bucket is not visible yet to the next call, or is still settling.
SETTLING_CODES = frozenset({"NoSuchEntity", "NoSuchBucket", "EntityTemporarilyUnmodifiable"})
# What AWS answers for a moment about something that exists but was just changed (a login profile right after
# CreateLoginProfile): only ever temporary, so waited out wherever it comes, without waiting on a missing one.
UNMODIFIABLE_CODES = frozenset({"EntityTemporarilyUnmodifiable"})


def settle(call: Callable[[], dict], *, wait: float | None = None, codes: frozenset[str] = SETTLING_CODES) -> dict:
    """Make a call that depends on something created moments ago, retrying AWS's "not there yet" answers
    (`codes`) with backoff for at most `wait` seconds (AWS_SETTLE_SECONDS). Only for what was just created: a
    genuinely missing entity still fails, once the wait is over, with AWS's own answer."""
    deadline = time.monotonic() + (settings.AWS_SETTLE_SECONDS if wait is None else wait)
    delay = 0.2
    while True:
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) not in codes or time.monotonic() + delay > deadline:
                raise
        time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 (jitter, not a secret)
        delay = min(delay * 2, 2.0)
