"""Each kind's AWS functions, found in its folder (provisioning/kinds/<kind>/aws.py) under the names its
declaration gives: the function that carries a step out (StepKind.runs: `execute`, a removal's `remove`), the
reader of a kind plans compare (`read`: what the account has, or None when it is not there), and what a
resource holds (`holdings`: a bucket's objects, a repository's images). Nothing is bound by hand: a kind whose
folder lacks one of them is reported by kinds_incomplete (tests/test_kinds.py)."""

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioning.kinds import declared_kinds
from provisioning.registry import REMOVE_BRANCH, Registry

Function = Callable[..., Any]


@dataclass(frozen=True)
class Tables:
    executors: dict[str, Function]  # by kind key: (StepContext, params) -> StepResult
    readers: dict[str, Function]  # by kind key: (AwsAccount, params) -> what the account has, or None
    holdings: dict[str, Function]  # by kind key: (AwsAccount, {"name": …}) -> what the resource holds, or None


def tables_build(folders: list[str] | None = None, package: str = "provisioning.kinds") -> Tables:
    """The functions of the kinds these folders of `package` declare (every folder's when None)."""
    executors, readers, holdings = {}, {}, {}
    for folder, kind in declared_kinds(folders, package):
        module = importlib.import_module(f"{package}.{folder}.aws")
        if hasattr(module, kind.runs):
            executors[kind.key] = getattr(module, kind.runs)
        if kind.branch != REMOVE_BRANCH and hasattr(module, "read"):
            readers[kind.key] = module.read
        if kind.resource is not None and hasattr(module, "holdings"):
            holdings[kind.key] = module.holdings
    return Tables(executors, readers, holdings)


@functools.cache
def tables() -> Tables:
    """Every kind's functions (built once, on first use: the kinds' aws modules import what uses this)."""
    return tables_build()


def kinds_incomplete(registry: Registry, found: Tables) -> list[str]:
    """What a kind lacks, in words: its executor; its reader where plans compare it (without one, every plan
    would say "create" and drift would report it missing forever); its removal's kinds, and what it `after`s,
    `part_of`s or reads after, declared."""
    problems = []
    for kind in registry.kinds:
        if kind.key not in found.executors:
            problems.append(f"{kind.key}: no `{kind.runs}` in its aws.py")
        if kind.compared and kind.key not in found.readers:
            problems.append(f"{kind.key}: compared by plans and drift, but no `read` in its aws.py")
        for other in (*kind.removal, *kind.after, *filter(None, (kind.part_of, kind.read_after))):
            try:
                registry.kind_of(other)
            except KeyError:
                problems.append(f"{kind.key}: names {other}, which no folder declares")
    return problems
