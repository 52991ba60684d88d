"""The layout check every browser test of a page makes: nothing wider than the window, no table column cut off."""

from playwright.sync_api import Page

# Each table that does not fit its box: the table's right edge beyond its wrapper's, or a wrapper that scrolls
# sideways (a column a tech lead would have to scroll to, or never sees).
_CLIPPED = """() => [...document.querySelectorAll("table")].filter((t) => t.offsetParent !== null).flatMap((table) => {
  const box = table.parentElement;
  const right = table.getBoundingClientRect().right > box.getBoundingClientRect().right + 1;
  const wide = box.scrollWidth > box.clientWidth + 1 || right;
  return wide ? [`${table.className || table.id || "table"}: ${table.scrollWidth}px in ${box.clientWidth}px`] : [];
})"""


def layout_check(page: Page) -> None:
    """Assert the page has no horizontal overflow and no clipped table column at its current width."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]}px wide in a {widths[1]}px window"
    clipped = page.evaluate(_CLIPPED)
    assert not clipped, f"clipped tables: {clipped}"
