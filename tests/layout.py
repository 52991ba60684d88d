"""One check that a page fits its window, for the browser tests: the document no wider than the window, and no
table cell cut off, whether by its own hidden overflow or by an ancestor's that hides (or scrolls) it out of
sight. What is wrong comes back as data, so an assertion shows which cell."""

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
