"""What every step gets and returns. Nothing about Celery here."""

from dataclasses import dataclass, field
from typing import Any

from provisioning import vault
from provisioning.aws.accounts import AwsAccount
from provisioning.aws.settle import settle
from provisioning.kinds import REGISTRY
from provisioning.ledger import ledger_previous
from provisioning.models import Credential, Run, StepRun
from provisioning.registry import ApiCall

# AWS answered "already exists" to a create, then "no such entity" to the read just after: someone is
# deleting it at the same time. Nothing to compare; the next run starts afresh.
GONE_AFTER_EXISTS = (
    "{what} already existed when Onramp tried to create it, and was gone a moment later: someone is changing it "
    "in the account right now. Run again once they are done."
)


@dataclass
class StepContext:
    run: Run
    step: StepRun
    account: AwsAccount
    params: dict[str, Any]  # this step's parameters, from its declaration (its kind's folder)
    # The plan read this resource in the account: change it in place, without trying to create it (StepRun.flags).
    known: bool = False
    # The preflight's: the account read the plan was made from (AccountRead's id), to check it is still so.
    read: str | None = None

    def client(self, service: str) -> Any:
        return self.account.client(service)

    def send(self, call: ApiCall, *, settling: bool = False, **generated: Any) -> dict[str, Any]:
        """Send a declared call exactly as the plan shows it; `generated` fills the values Onramp makes
        at send time (a password). `settling`: the call depends on something this run created moments
        ago, so AWS's "not there yet" answers are waited out (provisioning.aws.settle)."""
        if settling:
            return settle(lambda: self.account.send(call, **generated))
        return self.account.send(call, **generated)

    def seal(self, *, secret: str, kind: str, user_name: str, **about: Any) -> Credential:
        """Seal a secret AWS just generated, for the person who started the run (provisioning.vault)."""
        run = self.run
        return vault.credential_seal(
            secret=secret,
            run=run,
            step=self.step,
            customer=run.customer,
            issued_to=run.started_by,
            kind=kind,
            user_name=user_name,
            **about,
        )

    @property
    def previous(self) -> dict[str, Any] | None:
        """The parameters this step's resource was last applied with, from the ledger (None if unknown)."""
        kind = REGISTRY.kind_of(self.step.key)
        if kind.resource is None:
            return None
        identity = str(self.params.get(kind.resource.identity_param) or "")
        return ledger_previous(customer_id=self.run.customer_id, kind=kind.key, identity=identity)

    def created_by_run(self, key: str) -> bool:
        """Whether this run's step `key` created its resource (rather than finding it there; a plan that keeps
        the resource has no such step)."""
        outputs = self.run.steps.filter(key=key).values_list("outputs", flat=True).first()
        return bool((outputs or {}).get("created"))

    def remember(self, **values: Any) -> None:
        """Save progress markers on the step now, before the next AWS call, so a re-run knows."""
        self.step.outputs = {**self.step.outputs, **values}
        StepRun.objects.filter(pk=self.step.pk).update(outputs=self.step.outputs)


@dataclass
class StepResult:
    adopted: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    gone: bool = False  # a removal that found nothing left to remove (neither made nor adopted anything)
