"""Onramp's kinds of step, one folder each: kinds/<kind>/declaration.py says what the step is (pure data, see
provisioning.registry's StepKind), kinds/<kind>/aws.py carries it out (execute, read, remove, holdings).

This module finds the folders (every package here with a declaration module) and gathers their declarations
into REGISTRY, in plan order: each declaration's ORDER, then the removal kinds in the same order. It imports
declarations only: the plan imports it and reaches no AWS code (provisioning.steps.tables finds the aws modules).
"""

import importlib
import pkgutil
from types import ModuleType

from provisioning.registry import CHECK_OPERATIONS, REMOVE_BRANCH, Registry, StepKind


def kind_folders(package: str = __name__) -> list[str]:
    """The folders of `package` (this one: provisioning.kinds) that hold a kind, by name."""
    path = importlib.import_module(package).__path__
    return sorted(info.name for info in pkgutil.iter_modules(path) if info.ispkg)


def declaration_of(folder: str, package: str = __name__) -> ModuleType:
    return importlib.import_module(f"{package}.{folder}.declaration")


def declared_kinds(folders: list[str] | None = None, package: str = __name__) -> list[tuple[str, StepKind]]:
    """(folder, kind) of every kind the folders of `package` declare (all of them when None), in plan order."""
    modules = sorted(
        (
            (folder, declaration_of(folder, package))
            for folder in (kind_folders(package) if folders is None else folders)
        ),
        key=lambda pair: pair[1].ORDER,
    )
    found = [(folder, kind) for folder, module in modules for kind in module.KINDS]
    return [pair for pair in found if pair[1].branch != REMOVE_BRANCH] + [
        pair for pair in found if pair[1].branch == REMOVE_BRANCH
    ]


def registry_build(folders: list[str] | None = None) -> Registry:
    """The registry of the kinds these folders declare (every folder's when None)."""
    return Registry((kind for _, kind in declared_kinds(folders)), extra_operations=CHECK_OPERATIONS)


REGISTRY = registry_build()
