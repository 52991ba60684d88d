"""The sandbox AWS of `make run`: moto's server, whose state survives a restart.

moto keeps everything in memory, so a restart used to empty the sandbox while the portal still listed
the earlier runs' users, buckets and repositories. This runs moto's server in this process, loads the
state saved when it last stopped, and saves it again when it is stopped (SIGINT or SIGTERM): IAM
(users, groups, policies, keys, login profiles, the account alias), S3 buckets and their settings,
ECR repositories, STS, in every account. A process killed outright (SIGKILL, a crash) saves
nothing: the next start is empty, and says so.

    .venv/bin/python -m sandbox.state --port 5000 --state sandbox-state.pickle.gz      (bin/run starts it)

Development tooling only, never imported by the portal. The state file is a pickle of moto's own
objects: load only one this module wrote (it is not a format to exchange), with the same moto.
"""

import argparse
import gzip
import logging
import os
import pickle
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

import moto
from moto.core.base_backend import BackendDict
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

# The strict sandbox's layer with none of its rules on: moto as it is, but answering the calls moto
# lacks (removing a user lists its service-specific credentials) and one request at a time (moto's dicts race).
# It also registers how pickle copies the locks some of moto's objects hold.
from sandbox.strict import StrictLayer, backends_live, backends_restore

FORMAT = 1  # bump when what is saved changes shape


def state_save(path: Path) -> str:
    """Write every service's state (each backend dict moto has used) to `path`, atomically."""
    backends = backends_live()
    accounts = {account for b in backends.values() for account in b}
    payload = {"format": FORMAT, "moto": moto.__version__, "saved_at": time.time(), "backends": backends}
    data = gzip.compress(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL), compresslevel=1)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return f"saved to {path} ({len(accounts)} account{'s' if len(accounts) != 1 else ''}, {len(data) // 1024} KiB)"


def state_load(path: Path) -> str:
    """Put the saved state back into moto's (still empty) backends; a sentence saying what happened."""
    if not path.exists():
        return "started empty (no saved state yet)"
    try:
        # Our own file, written by state_save above (see the module's docstring).
        payload = pickle.loads(gzip.decompress(path.read_bytes()))  # noqa: S301  # nosec B301
        if payload.get("format") != FORMAT or payload.get("moto") != moto.__version__:
            raise ValueError(f"saved by moto {payload.get('moto')}, this is moto {moto.__version__}")
        backends_restore(payload["backends"])
    except Exception as exc:
        BackendDict.reset()
        return (
            f"started EMPTY: the saved state in {path} could not be read ({type(exc).__name__}: {exc}); "
            "the users, buckets and repositories of earlier runs are not in the sandbox any more"
        )
    saved_at = datetime.fromtimestamp(payload["saved_at"]).strftime("%Y-%m-%d %H:%M")
    accounts = {account for b in payload["backends"].values() for account in b}
    return f"restored from {path} (saved {saved_at}, {len(accounts)} account{'s' if len(accounts) != 1 else ''})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--state", type=Path, required=True, help="the state file, read at start, written at stop")
    parser.add_argument("--status-file", type=Path, help="where to write the one-line start status too")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    status = state_load(args.state)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = StrictLayer(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    line = f"Sandbox AWS on http://{args.host}:{args.port}: {status}."
    print(line, flush=True)
    if args.status_file:
        args.status_file.write_text(line + "\n")
    while not stop.wait(0.5):
        pass
    server.shutdown()
    try:
        print(f"Sandbox AWS stopped; its state is {state_save(args.state)}.", flush=True)
    except Exception as exc:
        print(f"Sandbox AWS stopped; its state could NOT be saved ({type(exc).__name__}: {exc}).", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
