"""A kind of step is one folder (provisioning/kinds/<kind>/): every kind the registry holds is complete (its executor,
its reader where plans compare it, its removal declared), a kind left incomplete is reported, and
`manage.py startkind` writes a new kind's folder and test, incomplete until filled."""

import dataclasses
import importlib.util
import shutil
import tomllib
import uuid
from pathlib import Path

import botocore.loaders
import botocore.model
import pytest
from django.conf import settings
from django.core.management import call_command

from provisioning.aws import calls
from provisioning.aws.accounts import account_connect
from provisioning.aws.calls import aws_work
from provisioning.engine.execute import step_split
from provisioning.kinds import REGISTRY, declared_kinds, kind_folders
from provisioning.kinds.ecr_lifecycle import aws as lifecycle_aws
from provisioning.kinds.ecr_lifecycle import declaration as lifecycle
from provisioning.models import StepRun
from provisioning.plan import Action, plan_run_steps
from provisioning.registry import Registry
from provisioning.spec import spec_parse
from provisioning.steps.tables import Tables, kinds_incomplete, tables, tables_build
from tests.conftest import (
    DECLARED,
    UNDECLARED,
    UndeclaredOperation,
    customer_for,
    operation_refusal,
    spec_data,
)


def test_every_kind_has_its_executor_its_reader_and_its_removal():
    assert kinds_incomplete(REGISTRY, tables()) == []
    assert len(kind_folders()) >= 14 and len(REGISTRY.kinds) >= 29  # the walk really found the folders
    compared = [kind.key for kind in REGISTRY.kinds if kind.compared]
    assert set(compared) == set(tables().readers) and len(compared) >= 12


def test_a_kind_whose_reader_is_forgotten_is_reported():
    found = tables()
    readers = {key: read for key, read in found.readers.items() if key != lifecycle.KEY}
    assert kinds_incomplete(REGISTRY, dataclasses.replace(found, readers=readers)) == [
        "ecr.lifecycle: compared by plans and drift, but no `read` in its aws.py"
    ]
    executors = {key: run for key, run in found.executors.items() if key != "remove.user.groups"}
    assert kinds_incomplete(REGISTRY, Tables(executors, found.readers, found.holdings)) == [
        "remove.user.groups: no `remove_groups` in its aws.py"
    ]


def test_a_kind_naming_a_removal_no_folder_declares_is_reported():
    kind = dataclasses.replace(lifecycle.KIND, removal=("remove.ecr.lifecycle",))
    registry = Registry([kind if k.key == lifecycle.KEY else k for k in REGISTRY.kinds])
    assert kinds_incomplete(registry, tables()) == [
        "ecr.lifecycle: names remove.ecr.lifecycle, which no folder declares"
    ]


def test_the_registry_is_every_folders_declarations_in_plan_order():
    assert [kind.key for _, kind in declared_kinds()] == [kind.key for kind in REGISTRY.kinds]
    position = {kind.key: index for index, kind in enumerate(REGISTRY.kinds)}
    for kind in REGISTRY.kinds:  # a kind comes after the kinds it waits for
        assert all(position[after] < position[kind.key] for after in kind.after), kind.key


def test_startkind_writes_a_folder_and_a_test_that_stay_incomplete_until_filled(tmp_path, monkeypatch):
    call_command("startkind", "sns.topic", into=str(tmp_path))
    folder = tmp_path / "provisioning" / "kinds" / "sns_topic"
    assert sorted(p.name for p in folder.iterdir()) == ["__init__.py", "aws.py", "declaration.py"]
    assert (tmp_path / "tests" / "test_kind_sns_topic.py").exists()
    with pytest.raises(Exception, match="exist"):
        call_command("startkind", "sns.topic", into=str(tmp_path))  # nothing is overwritten

    # The new folder, importable as a package of its own beside the real kinds: the completeness check reports it.
    package = f"kindcopy_{uuid.uuid4().hex[:8]}"
    shutil.copytree(folder, tmp_path / "import" / package / "sns_topic")
    (tmp_path / "import" / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "import"))
    new = [kind for _, kind in declared_kinds(package=package)]
    assert [kind.key for kind in new] == ["sns.topic"]
    found = tables_build(package=package)
    registry = Registry([*REGISTRY.kinds, *new])
    merged = Tables({**tables().executors, **found.executors}, {**tables().readers, **found.readers}, {})
    assert kinds_incomplete(registry, merged) == [
        "sns.topic: no `execute` in its aws.py",
        "sns.topic: compared by plans and drift, but no `read` in its aws.py",
    ]

    # Its test fails until it is filled: the kind is not in the registry yet, the others say what to write.
    test = _module(tmp_path / "tests" / "test_kind_sns_topic.py")
    with pytest.raises(KeyError):
        test.test_the_kind_is_complete()
    with pytest.raises(pytest.fail.Exception, match="TODO"):
        test.test_the_compare_says_what_differs()


def _module(path):
    spec = importlib.util.spec_from_file_location(f"generated_{uuid.uuid4().hex[:8]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_step_calling_an_operation_its_kind_does_not_declare_fails(db, aws):
    """tests/conftest.py's hook holds every step to its kind's operations: a lifecycle declaration without
    GetLifecyclePolicy makes the step's read fail, and the refusal is recorded (the test would fail with it)."""
    narrower = dataclasses.replace(
        lifecycle.KIND, operations=tuple(op for op in lifecycle.KIND.operations if op.name != "GetLifecyclePolicy")
    )
    registry = Registry([narrower if k.key == lifecycle.KEY else k for k in REGISTRY.kinds])
    account = account_connect(
        customer=customer_for(spec_data()), region="us-west-2", session_name="hook", source_identity="alice"
    )
    params = {"repository": "acme-app"}
    with aws_work(actor_label="test", step_key=lifecycle.KEY, write=False):
        DECLARED["registry"] = registry
        try:
            with pytest.raises(UndeclaredOperation, match="ecr.lifecycle: ecr GetLifecyclePolicy is not among"):
                lifecycle_aws.read(account, params)
        finally:
            DECLARED["registry"] = REGISTRY
        assert UNDECLARED == ["ecr.lifecycle: ecr GetLifecyclePolicy is not among the operations its kind declares"]
        UNDECLARED.clear()
        assert lifecycle_aws.read(account, params) is None  # declared: the call goes (no repository yet)
    # Outside a step (a plan's read and checks, a drift check): whatever the registry declares, and nothing else.
    assert operation_refusal(REGISTRY, "", "ecr", "GetLifecyclePolicy") == ""
    assert operation_refusal(REGISTRY, "", "ecr", "SetRepositoryPolicy") != ""
    assert operation_refusal(REGISTRY, "ecr.repository_policy", "ecr", "SetRepositoryPolicy") != ""


def test_the_plans_flags_are_kept_beside_the_parameters_and_older_steps_still_read_them():
    """A step the read saw is `known` (changed in place) through StepRun.flags, not its parameters, and so is the
    preflight's `read`; a step stored before the flags existed had them in its parameters, and runs still reads
    them from there."""
    spec = spec_parse(spec_data())
    items = [{"key": "s3.cors", "kind": "s3.cors", "action": Action.CHANGE, "params": {}}]
    steps = {step.key: step for step in plan_run_steps(spec=spec, items=items, read_id="r1")}
    assert steps["s3.cors"].flags == {"known": True} and "known" not in steps["s3.cors"].params
    assert steps["preflight"].flags == {"read": "r1"} and "read" not in steps["preflight"].params

    older = StepRun(key="remove.iam.group:Apps", params={"name": "Apps", "ends": [7]}, flags={})
    assert step_split(older) == ({"name": "Apps"}, {"ends": [7]})
    newer = StepRun(key="s3.cors", params={"bucket": "b", "origin": "o"}, flags={"known": True})
    assert step_split(newer) == ({"bucket": "b", "origin": "o"}, {"known": True})
    older_preflight = StepRun(key="preflight", params={"account_id": "1", "read": "r0"}, flags={})
    assert step_split(older_preflight) == ({"account_id": "1"}, {"read": "r0"})


def test_the_import_contracts_cover_every_kinds_folder_by_wildcard():
    """import-linter (make lint) keeps every kind's declaration pure: its contracts name the folders by wildcard,
    so a new folder is covered without an edit (a broken one fails `lint-imports`, not this test)."""
    contracts = tomllib.loads((Path(settings.BASE_DIR) / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    pure = [c for c in contracts if "provisioning.kinds.*.declaration" in c.get("source_modules", [])]
    assert pure and all(c["type"] == "forbidden" for c in pure)
    forbidden = {module for c in pure for module in c["forbidden_modules"]}
    assert {"boto3", "botocore", "provisioning.aws", "provisioning.models", "provisioning.kinds.*.aws"} <= forbidden
    assert any(c.get("containers") == ["provisioning.kinds.*"] for c in contracts)


def test_every_declared_operation_on_a_named_resource_gives_the_audit_its_target():
    """An audit row's target is the first of the call's parameters that names a resource (aws.calls._TARGET_PARAMS:
    per call, not per kind, since the calls of no kind, AssumeRole and the plan's checks, are audited too). Every
    operation a kind declares that takes such a name in botocore's model has one of them, so a new kind's calls are
    never audited without their target; the operations on the account as a whole take none."""
    loader = botocore.loaders.create_loader()
    models = {
        service: botocore.model.ServiceModel(loader.load_service_model(service, "service-2"))
        for service in {operation.service for operation in REGISTRY.operations()}
    }
    account_wide = set()
    for operation in REGISTRY.operations():
        shape = models[operation.service].operation_model(operation.name).input_shape
        members = set(shape.members) if shape else set()
        named = {m for m in members if m.endswith(("Name", "Arn")) or m in {"Bucket", "AccountAlias", "SerialNumber"}}
        if not named:
            account_wide.add(f"{operation.service}:{operation.name}")
            continue
        assert members & set(calls._TARGET_PARAMS), (operation.service, operation.name, sorted(named))
    assert account_wide and all(name.split(":")[1].startswith(("Get", "List", "Describe")) for name in account_wide)
