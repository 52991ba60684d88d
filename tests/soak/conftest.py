"""The soak scenarios run under `-m soak` (make soak); plain `pytest` (make test) runs only the one marked
`soak_short` (a worker killed mid-step), so that a change that breaks the soak's harness fails CI. They share
a private Redis server (it gets restarted) and print one line per scenario at the end."""

import pytest

from portal.celery import app as celery_app
from tests.soak.harness import RedisServer

REPORT: list[dict] = []


def _soak_selected(config) -> bool:
    return "soak" in (config.getoption("markexpr", default="") or "")


def pytest_collection_modifyitems(config, items):
    if _soak_selected(config):
        return
    left = [item for item in items if item.get_closest_marker("soak") and not item.get_closest_marker("soak_short")]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if item not in left]


@pytest.fixture(scope="session")
def soak_redis():
    """A redis-server of our own that keeps nothing on disk: the shared one is never restarted."""
    server = RedisServer().start()
    previous = celery_app.conf.broker_url, celery_app.conf.result_backend
    celery_app.conf.update(broker_url=server.url, result_backend=server.url)
    yield server
    celery_app.conf.update(broker_url=previous[0], result_backend=previous[1])
    server.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not REPORT:
        return
    terminalreporter.section("soak: faults survived")
    header = f"{'scenario':<44} {'attempted':>9} {'completed':>9} {'duplicates':>10} {'secrets leaked':>14}"
    terminalreporter.write_line(header)
    for row in REPORT:
        terminalreporter.write_line(
            f"{row['scenario']:<44} {row['attempted']:>9} {row['completed']:>9} "
            f"{row['duplicates']:>10} {row['leaked']:>14}"
        )
    terminalreporter.write_line(
        f"{'total':<44} {sum(r['attempted'] for r in REPORT):>9} {sum(r['completed'] for r in REPORT):>9} "
        f"{sum(r['duplicates'] for r in REPORT):>10} {sum(r['leaked'] for r in REPORT):>14}"
    )
