"""Development keys, generated into the .env file the first time they are needed.

Development must not run on keys anyone can read in this repository: a vault or audit key derived from
a published default protects nothing. Tests (DJANGO_ENV=test) keep fixed keys of their own; production
refuses to start without its keys (portal/settings.py).
"""

import base64
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

GENERATORS: dict[str, Callable[[], str]] = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "VAULT_KEYS": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),  # a Fernet key
    "AUDIT_KEYS": lambda: secrets.token_urlsafe(32),
}


def dev_keys_ensure(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Write into `path` each key that neither `environ` nor the file sets (an empty `NAME=` line is
    filled in place); return the keys written. The file is made readable by its owner only."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    values = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    missing = [name for name in GENERATORS if not environ.get(name) and not values.get(name)]
    if not missing:
        return {}
    written = {name: GENERATORS[name]() for name in missing}
    lines = [line for line in lines if line.partition("=")[0].strip() not in written]
    lines += ["# Generated for development on first run (portal/devkeys.py); never use them in production."]
    lines += [f"{name}={value}" for name, value in written.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return written


RUN_NOTE = "# Written by make run (bin/run): manage.py beside it reaches the same sandbox AWS and broker."


def dev_env_set(path: Path, values: Mapping[str, str]) -> None:
    """Set these variables in the .env file at `path`, replacing their earlier lines (what `make run` uses, so
    `manage.py onboard` in another terminal finds the sandbox `make run` started with nothing set by hand)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [line for line in lines if line != RUN_NOTE and line.partition("=")[0].strip() not in values]
    lines += [RUN_NOTE, *(f"{name}={value}" for name, value in values.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


if __name__ == "__main__":
    import sys

    # bin/run: python -m portal.devkeys NAME=VALUE… (into ENV_FILE, else .env beside manage.py)
    env_file = Path(os.environ.get("ENV_FILE") or Path(__file__).resolve().parent.parent / ".env")
    dev_env_set(env_file, dict(arg.split("=", 1) for arg in sys.argv[1:]))
