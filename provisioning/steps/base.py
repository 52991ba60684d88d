"""What every step gets and returns. Nothing about Celery here."""

from dataclasses import dataclass, field

from provisioning.aws import AwsAccount, AwsError


class StepFailed(AwsError):
    """A step refuses to go on, with a sentence that says why and what to do."""


@dataclass
class StepContext:
    run: object  # provisioning.models.Run
    step: object  # provisioning.models.StepRun
    account: AwsAccount

    def client(self, service: str):
        return self.account.client(service)

    def outputs_of(self, key: str) -> dict:
        return self.run.steps.get(key=key).outputs

    def remember(self, **values) -> None:
        """Save progress markers on the step now, before the next AWS call, so a re-run knows."""
        self.step.outputs = {**self.step.outputs, **values}
        type(self.step).objects.filter(pk=self.step.pk).update(outputs=self.step.outputs)


@dataclass
class StepResult:
    adopted: bool
    outputs: dict = field(default_factory=dict)
    note: str = ""
