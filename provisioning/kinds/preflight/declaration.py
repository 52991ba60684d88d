"""The preflight: every run's first step. It reaches the account, refuses root and another account, reads the
role's template version and, for a plan read from the account, checks that the account is still as read."""

from provisioning.registry import (
    Operation,
    StepKind,
    ops,
    role_arn_for,
)

KEY = "preflight"
ORDER = 0

KIND = StepKind(
    key=KEY,
    branch="preflight",
    title=lambda p: "Reach the account and check who Onramp is there",
    instances=lambda spec: [{"account_id": spec.account_id, "role_arn": spec.role_arn}],
    always=True,
    # GetRole: the role reads its own template version, and nothing else's.
    operations=(
        *ops("sts", "GetCallerIdentity"),
        Operation("iam", "GetRole", resource=role_arn_for("*")),
    ),
)
KINDS = (KIND,)
