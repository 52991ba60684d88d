"""`manage.py startkind <service.kind>`: a new kind of step as one folder, provisioning/kinds/<service_kind>/ (its
declaration and its AWS code, from the templates below), and its test, tests/test_kind_<service_kind>.py. What is
written is incomplete on purpose: tests/test_kinds.py reports the kind (no `execute`, no `read`) and its own test
fails until both files are filled (docs/architecture.md, "Adding a step")."""

import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from provisioning.kinds import REGISTRY, declaration_of, kind_folders

KIND_KEY = re.compile(r"^([a-z][a-z0-9]*)\.([a-z][a-z0-9_]*)$")

DECLARATION = '''"""{title}: TODO, in a sentence, what this kind makes or keeps in the customer's account."""

from provisioning.registry import Difference, StepKind, ops

KEY = "{key}"
ORDER = {order}  # its place in the plan: after every kind whose key it names in `after`


def compare(params: dict, seen: dict, previous: dict | None) -> list[Difference]:
    """What differs between what the spec wants (params) and what aws.read found (seen)."""
    raise NotImplementedError("{key}: compare what aws.read returns with what the spec wants")


KIND = StepKind(
    key=KEY,
    branch="{service}",
    title=lambda p: "TODO: the step's title, from its parameters",
    instances=lambda spec: [],  # TODO: each instance's parameters from the spec ([] leaves the step out)
    operations=ops("{service}"),  # TODO: every operation aws.py calls (the role's policy is made of them)
    compare=compare,
)
KINDS = (KIND,)
'''

AWS = '''"""{title}: carrying the step out, and reading it back."""

# TODO: write `execute` (the step) and `read` (what the account has), then import the declaration:
#
#     from provisioning.kinds.{folder} import declaration
#     from provisioning.steps.base import StepContext, StepResult
#
#     def read(account: AwsAccount, params: dict) -> dict | None:
#         """What the account has (None: the resource is not there); an "absent" answer of AWS is a value."""
#
#     def execute(ctx: StepContext, params: dict) -> StepResult:
#         """Create first; when AWS says it exists, read, compare (declaration.KIND.compare), adopt or correct."""
#
# A kind that can be removed declares its removal kind (registry.removal_kind) and writes `remove` here.
'''

TEST = '''"""The kind {key} (provisioning/kinds/{folder}/): complete, compared field by field, and read by drift."""

import pytest

from provisioning.kinds import REGISTRY
from provisioning.steps.tables import kinds_incomplete, tables

KEY = "{key}"


def test_the_kind_is_complete():
    REGISTRY.kind_of(KEY)  # its folder is found (a KeyError until it is in provisioning/kinds/)
    assert [problem for problem in kinds_incomplete(REGISTRY, tables()) if problem.startswith(KEY)] == []


def test_the_compare_says_what_differs():
    pytest.fail("TODO: hand-made read-backs against what the spec wants (tests/test_compare.py has examples)")


def test_drift_reads_it_from_the_account(worker, alice):
    pytest.fail("TODO: a run, a change made by hand in the sandbox, a drift check (tests/test_drift.py has examples)")
'''


def kind_files(key: str, order: int) -> dict[str, str]:
    """The files of a new kind `key` ("ecr.repository_policy"), by path relative to the project."""
    found = KIND_KEY.match(key)
    if found is None:
        raise CommandError(f"{key!r}: a kind is <service>.<kind>, lowercase (ecr.repository_policy)")
    service, name = found.groups()
    folder = f"{service}_{name}"
    values = {
        "key": key,
        "service": service,
        "folder": folder,
        "order": order,
        "title": name.replace("_", " ").capitalize(),
    }
    return {
        f"provisioning/kinds/{folder}/__init__.py": "",
        f"provisioning/kinds/{folder}/declaration.py": DECLARATION.format(**values),
        f"provisioning/kinds/{folder}/aws.py": AWS.format(**values),
        f"tests/test_kind_{folder}.py": TEST.format(**values),
    }


class Command(BaseCommand):
    help = "Write a new kind of step as one folder (provisioning/kinds/<service_kind>/) and its test."

    def add_arguments(self, parser):
        parser.add_argument("key", help="the kind's key, <service>.<kind>: ecr.repository_policy")
        parser.add_argument(
            "--into", default=str(settings.BASE_DIR), help="the project's directory (default: this one)"
        )

    def handle(self, *args, **options):
        key, root = options["key"], Path(options["into"])
        if any(kind.key == key for kind in REGISTRY.kinds):
            raise CommandError(f"{key} is declared already")
        order = max(declaration_of(folder).ORDER for folder in kind_folders()) + 10
        files = kind_files(key, order)
        taken = [path for path in files if (root / path).exists()]
        if taken:
            raise CommandError(f"{', '.join(taken)} exist(s) already: nothing was written")
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
            self.stdout.write(f"wrote {path}")
        self.stdout.write(
            "Next: fill declaration.py and aws.py, then the test; add the kind's line to docs/architecture.md "
            "(module map) and to docs/using.md if drift compares it."
        )
