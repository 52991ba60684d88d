"""The code's shape, read with ast: no function of 60 lines or more, and every public service typed.

mypy (make lint, make test) checks the types themselves; these tests make sure there are types to check
where a reader relies on them: the parameters and the result of each service a view, task or command calls."""

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 60
# The one function allowed to be longer, for now.
LONG_ALLOWED: set[tuple[str, str]] = set()  # none: run_create was the last, split into _run_record


def _python_files() -> list[Path]:
    """Production code: the packages and bin/'s Python scripts, without migrations (frozen history)."""
    files = [p for package in ("provisioning", "portal", "sandbox") for p in (ROOT / package).rglob("*.py")]
    files += [p for p in (ROOT / "bin").iterdir() if p.suffix == ".py" or _is_python_script(p)]
    return sorted(p for p in files if "migrations" not in p.parts)


def _is_python_script(path: Path) -> bool:
    first = path.read_text(errors="replace").split("\n", 1)[0]
    return first.startswith("#!") and "python" in first


def long_functions(source: str) -> list[tuple[str, int]]:
    """Every function (methods and nested ones included) of MAX_LINES lines or more: (name, lines)."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 >= MAX_LINES
    ]


def unannotated(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The parameters of `function` without a type (self and cls need none), and "return" when its result has none."""
    args = function.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, *(a for a in (args.vararg, args.kwarg) if a)]
    missing = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
    return missing + (["return"] if function.returns is None else [])


def test_no_function_is_60_lines_or_more():
    found = {
        (str(path.relative_to(ROOT)), name, lines)
        for path in _python_files()
        for name, lines in long_functions(path.read_text())
    }
    assert {(path, name) for path, name, _ in found} <= LONG_ALLOWED, sorted(found)
    assert ROOT / "bin" / "ready.py" in _python_files()  # bin/'s Python is measured too


def test_the_length_check_counts_a_function_from_its_def_to_its_last_line():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 2))
    long = f"def long():\n{body}\n    return 0\n"  # MAX_LINES lines
    short = f"def short():\n{body}\n"
    nested = "class Holder:\n    def method(self):\n" + textwrap.indent(body, "    ") + "\n        return 0\n"
    assert long_functions(long) == [("long", MAX_LINES)]
    assert long_functions(short) == []
    assert long_functions(nested) == [("method", MAX_LINES)]


def _public_functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text())
    return [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")
    ]


# The app's packages of services and views (their modules are what provisioning/*.py's were).
SERVICE_PACKAGES = ("audit", "engine", "identity", "views")


def _service_files() -> list[Path]:
    app = ROOT / "provisioning"
    return sorted([*app.glob("*.py"), *(p for package in SERVICE_PACKAGES for p in (app / package).glob("*.py"))])


def test_every_public_service_has_typed_parameters_and_result():
    """Every module-level function of provisioning/*.py and of its packages of services and views whose name does
    not start with _ (services, selectors, views, tasks)."""
    missing = {
        f"{path.relative_to(ROOT)}:{function.name}": gaps
        for path in _service_files()
        for function in _public_functions(path)
        if (gaps := unannotated(function))
    }
    assert missing == {}
    assert {p.parent.name for p in _service_files()} >= {"provisioning", *SERVICE_PACKAGES}  # the packages are read


def test_the_step_context_is_typed():
    """What every step receives (provisioning.steps.base.StepContext): its fields and its methods."""
    tree = ast.parse((ROOT / "provisioning" / "steps" / "base.py").read_text())
    (context,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "StepContext"]
    fields = [n for n in context.body if isinstance(n, ast.AnnAssign)]
    assert {ast.unparse(f.target): ast.unparse(f.annotation) for f in fields} == {
        "run": "Run",
        "step": "StepRun",
        "account": "AwsAccount",
        "params": "dict[str, Any]",
        "known": "bool",
        "read": "str | None",
    }
    methods = [n for n in context.body if isinstance(n, ast.FunctionDef)]
    assert methods and {m.name: unannotated(m) for m in methods if unannotated(m)} == {}


def test_the_annotation_check_finds_what_is_missing():
    (typed,) = ast.parse("def f(a: int, *, b: str = '', **rest: object) -> None: ...").body
    (untyped,) = ast.parse("def g(self, a, *args: int):\n    pass").body
    assert isinstance(typed, ast.FunctionDef) and isinstance(untyped, ast.FunctionDef)
    assert unannotated(typed) == []
    assert unannotated(untyped) == ["a", "return"]


def test_make_lint_and_make_test_run_mypy_after_the_import_contracts():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lint", "test"):
        recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        steps = [line.strip() for line in recipe.splitlines()[1:]]
        assert ".venv/bin/mypy" in steps, target
        assert steps.index(".venv/bin/mypy") == steps.index(".venv/bin/lint-imports --no-cache") + 1, target
