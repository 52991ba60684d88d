"""The functions that carry out each declared step (provisioning.registry), one module per AWS service.

A step function is plain: (StepContext, params) -> StepResult, where params are the step's own
parameters from its declaration. EXECUTORS binds each declaration's key to its function; READERS binds
the kinds whose resource can be read back to the function that reads it (what the account has, or None
when it is not there). The plan never imports this package, so it reaches no AWS code.
"""

from provisioning.steps import ecr, iam, removal, s3, sts
from provisioning.steps.base import StepContext, StepResult
from provisioning.steps.reading import HOLDINGS, READERS

EXECUTORS = {
    "preflight": sts.preflight,
    "account.alias": iam.account_alias,
    "iam.group": iam.group,
    "iam.app_user": iam.app_user,
    "iam.media_policy": iam.media_policy,
    "iam.access_key": iam.access_key,
    "team.member": iam.team_member,
    "s3.bucket": s3.bucket,
    "s3.public_access_block": s3.public_access_block,
    "s3.cors": s3.cors,
    "ecr.repository": ecr.repository,
    "ecr.lifecycle": ecr.lifecycle,
    **removal.REMOVERS,
}

__all__ = ["EXECUTORS", "HOLDINGS", "READERS", "StepContext", "StepResult"]
