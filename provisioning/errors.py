"""Onramp's own exceptions: each carries a sentence a tech lead understands and a short code.

AwsError is for what AWS said (or AWS not answering); the others are Onramp refusing or failing
for a reason of its own, so a log or an audit row never blames AWS for them.
"""


class OnrampError(Exception):
    """A failure with a sentence for people, a code for the audit log, and whether it may pass."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class AwsError(OnrampError):
    """AWS refused or did not answer."""


class StepFailed(OnrampError):
    """A step refuses to go on (the account is not as Onramp may change it), saying why and what to do."""


class ConnectionSettingsError(OnrampError):
    """The customer's record lacks what Onramp needs to reach the account (a role ARN, stored keys)."""


class InternalError(OnrampError):
    """Onramp itself failed (a bug, the database): not the customer's account, not AWS."""
