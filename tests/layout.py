"""One check that a page fits its window, for the browser tests: the document no wider than the window, and no
table cell cut off, whether by its own hidden overflow or by an ancestor's that hides (or scrolls) it out of
sight. What is wrong comes back as data, so an assertion shows which cell. A flow runs once and its page is
checked at each window size in turn (at_each_size, layout_checks)."""

from collections.abc import Callable

from playwright.sync_api import Page

from tests.conftest import ARTIFACTS

# A cell is cut off when its content is wider than it with its overflow hidden, or when its right edge lies
# past the visible right edge of an ancestor that clips (overflow hidden, clip, auto or scroll) or of the window.
LAYOUT = """() => {
  const doc = document.documentElement;
  const clips = (s) => [s.overflow, s.overflowX].some((v) => ["hidden", "clip", "auto", "scroll"].includes(v));
  const hides = (s) => [s.overflow, s.overflowX].some((v) => v === "hidden" || v === "clip");
  const text = (el) => (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 60);
  const cut = (cell) => {
    if (cell.scrollWidth > cell.clientWidth + 1 && hides(getComputedStyle(cell))) return true;
    const right = cell.getBoundingClientRect().right;
    if (right > doc.clientWidth + 1) return true;
    for (let el = cell.parentElement; el && el !== doc; el = el.parentElement) {
      if (clips(getComputedStyle(el)) && right > el.getBoundingClientRect().right + 1) return true;
    }
    return false;
  };
  // Seen cells only: not those hidden on purpose (a collapsed sidebar, a heading for screen readers only).
  const seen = (c) =>
    c.offsetParent !== null && getComputedStyle(c).visibility !== "hidden" && !c.closest(".visually-hidden");
  const clipped = [...document.querySelectorAll("td, th")].filter((c) => seen(c) && cut(c)).map(text);
  return {overflow: doc.scrollWidth - doc.clientWidth, clipped};
}"""


def layout_check(page: Page, name: str = "") -> None:
    """Assert the page fits its window with no table column cut off; with a name, keep its screenshot first."""
    if name:
        ARTIFACTS.mkdir(exist_ok=True)
        width = page.viewport_size["width"] if page.viewport_size else 0
        page.screenshot(path=ARTIFACTS / f"layout-{width}-{name}.png", full_page=True)
    layout = page.evaluate(LAYOUT)
    assert layout == {"overflow": 0, "clipped": []}, (name, page.url, layout)


# The two windows every browser page is checked at: a common laptop's and a common desktop's. A flow runs once, at
# the first; at each point where it checks the layout, the page is checked at both (at_each_size), then put back.
SIZES = [(1366, 900), (1920, 1080)]


def at_flow_size(page: Page) -> None:
    """The window a flow runs in, between its checks: the first of SIZES."""
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})


def at_each_size(page: Page, check: Callable[[int], None]) -> None:
    """At each of SIZES: resize the window, then `check(width)` (its assertions and screenshots, named for the
    width); then the window is put back to the first size, the flow's own."""
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        check(width)
    at_flow_size(page)


def screenshots(page: Page, name: str) -> None:
    """A full-page screenshot at each of SIZES, kept to look at: tests/artifacts/<name>.png, `name` holding
    "{width}" (e.g. "approvals-{width}-list")."""
    ARTIFACTS.mkdir(exist_ok=True)
    at_each_size(
        page, lambda width: page.screenshot(path=ARTIFACTS / f"{name.format(width=width)}.png", full_page=True)
    )


def layout_checks(page: Page, name: str = "") -> None:
    """layout_check at each of SIZES: the page fits each window; with a name, a screenshot per width."""
    at_each_size(page, lambda _width: layout_check(page, name))
