"""Wait until `make run`'s services answer: each URL with a 200, and (--worker) a Celery worker a ping.

    .venv/bin/python bin/ready.py --url http://127.0.0.1:8000/healthz --worker --timeout 90

Exit 0 when all answer, 1 (naming what did not) at the deadline. Development tooling only.
"""

import argparse
import os
import sys
import time
import urllib.request
from pathlib import Path


def url_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own loopback URLs)
            return response.status == 200
    except OSError:
        return False


def worker_ok() -> bool:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from portal.celery import app

    return bool(app.control.ping(timeout=1.0, limit=1))  # back at the first answer, not after the whole second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", default=[], help="a URL that must answer 200 (repeatable)")
    parser.add_argument("--worker", action="store_true", help="a Celery worker must answer a ping")
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    waiting = {url: (lambda url=url: url_ok(url)) for url in args.url}
    if args.worker:
        waiting["the Celery worker"] = worker_ok
    deadline = time.monotonic() + args.timeout
    while waiting and time.monotonic() < deadline:
        waiting = {name: check for name, check in waiting.items() if not check()}
        if waiting:
            time.sleep(0.3)
    if waiting:
        print(f"Not answering after {args.timeout:.0f} s: {', '.join(waiting)}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
