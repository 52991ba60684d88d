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


@pytest.fixture(scope="module")
def soak_redis():
    """A redis-server of our own that keeps nothing on disk: the shared one is never restarted. For the soak's
    module only: under pytest-xdist the scenario runs amid other tests of its worker process, whose end-to-end
    tests after it send their tasks to the shared Redis again, where the session's test worker takes them."""
    server = RedisServer().start()
    previous = celery_app.conf.broker_url, celery_app.conf.result_backend
    _broker_use(server.url, server.url)
    yield server
    _broker_use(*previous)
    server.stop()


def _broker_use(broker_url: str, result_backend: str) -> None:
    """Send this process's tasks to `broker_url` from now on. Celery keeps the connection and producer pools and
    the result backend it made at first use: once the session's test worker has run (any end-to-end test before
    this one), changing the settings alone would still send a scenario's run to the shared Redis, where that
    worker, not the scenario's, would take it."""
    celery_app.conf.update(broker_url=broker_url, result_backend=result_backend)
    # Not closed, only let go: kombu keeps one pool per broker in a registry of its own and hands the same one back
    # when this process sends to that broker again (the shared Redis after the soak's module: a closed one there
    # failed every later test of the worker process with "Acquire on closed pool").
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app._backend_cache = None  # the result backend, made again from the settings at its next use
    celery_app._local.__dict__.pop("backend", None)


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
