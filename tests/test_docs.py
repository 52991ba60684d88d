"""The README and docs/ stay true to the repository: every link resolves, none leaves it, the configuration list is
the settings' own, and the module map names every module (issue 29, point 3)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^\s>]*)>")
BARE_URL = re.compile(r"(?:https?|ftp)://|www\.", re.I)


def prose(text: str) -> str:
    """The page without its code blocks and code spans: what GitHub renders as text and links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    text = prose(text)
    return INLINE_LINK.findall(text) + REFERENCE.findall(text) + AUTOLINK.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lowercased, punctuation dropped (hyphens and underscores stay),
    each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return found


def test_the_slug_is_githubs():
    assert slug("Drift: is each account still as agreed?") == "drift-is-each-account-still-as-agreed"
    assert slug("The role's template bucket") == "the-roles-template-bucket"
    assert slug("Audit history at 10 M events") == "audit-history-at-10-m-events"
    assert slug("`make test` — the tiers") == "make-test--the-tiers"
    assert slug("Going to production: sign-in through the identity provider") == (
        "going-to-production-sign-in-through-the-identity-provider"
    )


def test_the_link_parser_finds_what_github_renders_as_a_link():
    text = "[a](docs/x.md#y) ![i](static/favicon.svg) `[no](code.md)`\n```\n[no](block.md)\n```\n[r]: using.md\n<https://x>"
    assert links(text) == ["docs/x.md#y", "static/favicon.svg", "using.md", "https://x"]


def test_every_link_in_the_readme_and_docs_resolves_inside_the_repository():
    checked = 0
    for page in PAGES:
        for target in links(page.read_text()):
            where = f"{page.relative_to(ROOT)}: {target}"
            assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", target), f"{where} points outside the repository"
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.is_relative_to(ROOT), f"{where} points outside the repository"
            assert file.exists(), f"{where}: no such file"
            if anchor:
                assert file.suffix == ".md", f"{where}: an anchor in a file that is not Markdown"
                assert anchor in anchors(file), f"{where}: no heading makes that anchor in {file.name}"
            checked += 1
    assert checked > 20, "the parser found hardly any link: it is broken"


def test_no_page_names_an_address_outside_the_repository_as_text_either():
    """GitHub turns a bare URL in prose into a link; in a code span or block it stays text."""
    for page in PAGES:
        for line in prose(page.read_text()).splitlines():
            assert not BARE_URL.search(line), f"{page.relative_to(ROOT)}: {line.strip()}"


def test_each_doc_starts_with_its_title_and_one_sentence_saying_what_it_is_for():
    for page in DOCS:
        title, blank, rest = page.read_text().partition("\n\n")
        assert title.startswith("# ") and "\n" not in title, page.name
        first = rest.split("\n\n", 1)[0]
        assert first.endswith(".") and not first.startswith(("#", "|", "-", "`")), page.name


def test_the_readme_is_a_front_door_that_lists_every_doc():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250, "the README is a front door: move the detail to docs/"
    headings = re.findall(r"^## (.*)$", text, re.M)
    for needed in ("Prerequisites", "Quick start", "Project layout", "Documentation", "Dependencies"):
        assert needed in headings, needed
    index = text.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    for page in DOCS:
        assert f"](docs/{page.name})" in index, f"docs/{page.name} is missing from the README's index"
    for prerequisite in ("Python 3.11", "make", "127.0.0.1:5432", "trust", "`postgres`", "redis-server", "chromium"):
        assert prerequisite in text.split("## Prerequisites", 1)[1].split("\n## ", 1)[0], prerequisite
    for command in ("make run", "make test", "make test-fast"):
        assert command in text.split("## Quick start", 1)[1], command


def test_the_readme_says_why_each_pinned_dependency_is_there():
    section = (ROOT / "README.md").read_text().split("## Dependencies", 1)[1]
    named = set()
    for row in re.findall(r"^\| ([^|]+) \| [^|]+", section, re.M):
        for cell in row.split(","):
            named.add(re.sub(r"\[.*?\]", "", cell.strip().split(" ")[0]).lower())
    pinned = set()
    for file in ROOT.glob("requirements*.txt"):
        for line in file.read_text().splitlines():
            if line and not line.startswith(("#", "-r")):
                pinned.add(re.sub(r"\[.*?\]", "", line.split("==")[0]).lower())
    assert pinned and pinned <= named, f"pinned but not in the README's Dependencies: {sorted(pinned - named)}"


def settings_read() -> set[str]:
    """The names portal/settings.py reads from the environment: env.<cast>("NAME", …), env("NAME") and its
    _required_in_production("NAME"), found in its syntax tree (a call may span lines)."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / "portal" / "settings.py").read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        reads = (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
            and func.attr not in {"read_env", "email_url_config"}
        ) or (isinstance(func, ast.Name) and func.id in {"env", "_required_in_production"})
        first = node.args[0]
        if reads and isinstance(first, ast.Constant) and isinstance(first.value, str):
            names.add(first.value)
    return names


def compose_reads() -> set[str]:
    """The names docker-compose.yml takes from .env when it starts (${NAME…}; $${NAME} is the container's own)."""
    text = (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))


def test_the_settings_reader_finds_calls_that_span_lines():
    names = settings_read()
    assert {"ALLOWED_HOSTS", "DATABASE_SERVER_SIDE_BINDING", "SECRET_KEY", "AXES_COOLOFF_HOURS"} <= names
    assert "ONRAMP_APP_DB_PASSWORD" in compose_reads()


def test_env_example_is_the_one_list_of_configuration_with_a_comment_each():
    """Every variable the settings read is in .env.example with a comment above it, and nothing else is, but what
    docker-compose.yml takes from the same .env (the app's database password, the certificates' directory)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = {}
    for index, line in enumerate(lines):
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=", line)
        if match:
            assert match.group(1) not in listed, f"{match.group(1)} is listed twice"
            listed[match.group(1)] = index
    read = settings_read() | compose_reads()
    assert read - set(listed) == set(), "read but missing from .env.example"
    assert set(listed) - read == set(), "in .env.example but read by nothing"
    for name, index in listed.items():
        above = [line for line in lines[:index] if not re.match(r"^[A-Z_][A-Z0-9_]*=", line)]
        assert above and above[-1].startswith("# "), f"{name} has no comment above it"


def module_files() -> list[str]:
    """Every module of provisioning/, portal/, sandbox/ and bench/ (an empty __init__.py is no module of its own;
    migrations are one folder), and every script of bin/."""
    found = []
    for package in ("provisioning", "portal", "sandbox", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or "__pycache__" in relative or path.stat().st_size == 0:
                continue
            found.append(relative)
    found += sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "bin").iterdir() if p.is_file())
    return found


def test_the_module_map_names_every_module_once():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| `([^`]+)` \|", section, re.M)
    modules = module_files()
    assert len(modules) > 80, "the module walk found hardly anything: it is broken"
    assert sorted(set(modules) - set(named)) == [], "modules with no line in docs/architecture.md's module map"
    assert sorted(set(named) - set(modules) - {"provisioning/migrations/"}) == [], "the map names files that are gone"
    assert "provisioning/migrations/" in named
    assert len(named) == len(set(named)), "a module named twice"
