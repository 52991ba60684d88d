"""`make run` (bin/run): it prints the login line last, once every service answers; Ctrl-C leaves no
process behind and says so in its last line; the sandbox's state survives a restart; the demo tech
lead's password can be reset."""

import contextlib
import gzip
import io
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import boto3
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from provisioning.models import AuditEvent
from sandbox.controller import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
# What the tests' own process has set that must not leak into the `make run` under test.
FOREIGN = ("DJANGO_", "DATABASE_URL", "REDIS_URL", "AWS_", "TEST_DATABASE_NAME", "PORT", "SANDBOX_")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Output:
    """The lines a process writes, read as they come (the pipe never fills up)."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float, process: subprocess.Popen) -> None:
        def printed_or_ended() -> bool:
            if any(text in line for line in self.lines):
                return True
            if process.poll() is not None:
                raise AssertionError(f"{text!r} not printed; output:\n" + "\n".join(self.lines[-60:]))
            return False

        wait_until(
            printed_or_ended,
            timeout=timeout,
            interval=0.2,
            message=lambda: f"{text!r} not printed; output:\n" + "\n".join(self.lines[-60:]),
        )

    def join(self) -> None:
        self._thread.join(10)


def _group(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def _leave_nothing(process: subprocess.Popen, seen: set[int]) -> None:
    """After a failure half-way: ask bin/run to stop its services, then kill what is left of them (each
    service has a process group of its own, so killing bin/run's group alone would orphan them)."""
    family = seen | descendants(process.pid) | {process.pid}
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
    for group in {_group(pid) for pid in family} & family:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def run_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    return {
        **env,
        "PORT": str(free_port()),
        "SANDBOX_PORT": str(free_port()),
        "SANDBOX_STATE": str(tmp_path / "sandbox-state.pickle.gz"),
        # Its own .env (a fresh clone's): make run writes its endpoint and broker there for manage.py beside it.
        "ENV_FILE": str(tmp_path / ".env"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        # A Redis of its own (bin/run starts one on a free loopback port): its worker takes no test's task.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }


@pytest.mark.slow  # make run or the sandbox, started as processes
def test_ctrl_c_stops_every_process_of_make_run_and_its_last_line_says_so(tmp_path):
    env = run_env(tmp_path)
    process = subprocess.Popen(
        ["bin/run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    out = Output(process.stdout)
    family: set[int] = set()
    try:
        out.wait_for("Ctrl-C stops everything.", timeout=180, process=process)
        with urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/healthz", timeout=5) as response:
            assert response.status == 200
        # The login line is in the last block, after the worker's banner and its "ready." line.
        ready_at = max(i for i, line in enumerate(out.lines) if "celery@" in line and "ready." in line)
        login_at = next(i for i, line in enumerate(out.lines) if "as 'techlead' with password:" in line)
        stops_at = next(i for i, line in enumerate(out.lines) if line == "Ctrl-C stops everything.")
        assert ready_at < login_at < stops_at <= login_at + 2, out.lines[ready_at:]
        family |= descendants(process.pid)
        commands = " ".join(Path(f"/proc/{pid}/cmdline").read_text() for pid in family if running(pid))
        for part in ("redis-server", "sandbox.state", "celery", "gunicorn"):
            assert part in commands, part

        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals its foreground group
        assert process.wait(timeout=120) == 0
    finally:
        _leave_nothing(process, family)
    out.join()
    left = sorted(pid for pid in family if running(pid))
    assert left == [], [Path(f"/proc/{pid}/cmdline").read_text() for pid in left]
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing is left in its process group either
    last = [line for line in out.lines if line.strip()][-1]
    assert last.startswith("Onramp stopped cleanly"), out.lines[-10:]
    assert Path(env["SANDBOX_STATE"]).exists()  # the sandbox saved its state on the way out


def _sandbox(port: int, state: Path) -> tuple[subprocess.Popen, Output]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.state", "--port", str(port), "--state", str(state)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(process.stdout)
    out.wait_for("Sandbox AWS on", timeout=60, process=process)
    return process, out


def _stop(process: subprocess.Popen, out: Output) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    out.join()


def _clients(port: int, account: str):
    kw = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "eu-west-1",
        "aws_access_key_id": "AKIAONRAMPTESTTEST01",
        "aws_secret_access_key": "test-secret",
    }
    role = f"arn:aws:iam::{account}:role/OnrampAccess"
    creds = boto3.client("sts", **kw).assume_role(RoleArn=role, RoleSessionName="onramp-test")["Credentials"]
    kw.update(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    return boto3.client("iam", **kw), boto3.client("s3", **kw), boto3.client("ecr", **kw)


@pytest.mark.slow  # make run or the sandbox, started as processes
def test_the_sandbox_keeps_its_state_across_a_restart(tmp_path):
    port, state, account = free_port(), tmp_path / "state.pickle.gz", "444455556666"
    process, out = _sandbox(port, state)
    try:
        assert "started empty (no saved state yet)" in out.lines[0]
        iam, s3, ecr = _clients(port, account)
        iam.create_user(UserName="acme-app", Path="/onramp/")
        iam.create_access_key(UserName="acme-app")
        iam.create_account_alias(AccountAlias="acme-corp")
        s3.create_bucket(Bucket="acme-app-media", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_cors(
            Bucket="acme-app-media",
            CORSConfiguration={"CORSRules": [{"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://acme.example"]}]},
        )
        ecr.create_repository(repositoryName="acme-app")
    finally:
        _stop(process, out)
    assert any("its state is saved to" in line for line in out.lines)

    process, out = _sandbox(port, state)
    try:
        assert "restored from" in out.lines[0], out.lines
        iam, s3, ecr = _clients(port, account)
        assert iam.get_user(UserName="acme-app")["User"]["Arn"] == f"arn:aws:iam::{account}:user/onramp/acme-app"
        assert len(iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]) == 1
        assert iam.list_account_aliases()["AccountAliases"] == ["acme-corp"]
        rules = s3.get_bucket_cors(Bucket="acme-app-media")["CORSRules"]
        assert rules[0]["AllowedOrigins"] == ["https://acme.example"]
        assert [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]] == ["acme-app"]
        # Another account still sees none of it (the restored state keeps accounts apart).
        other_iam, _, _ = _clients(port, "777788889999")
        assert other_iam.list_users()["Users"] == []
    finally:
        _stop(process, out)


@pytest.mark.slow  # make run or the sandbox, started as processes
def test_a_sandbox_state_it_cannot_read_starts_empty_and_says_so(tmp_path):
    state = tmp_path / "state.pickle.gz"
    state.write_bytes(gzip.compress(b"not a pickle"))
    process, out = _sandbox(free_port(), state)
    try:
        assert "started EMPTY" in out.lines[0] and "earlier runs are not in the sandbox" in out.lines[0]
    finally:
        _stop(process, out)


@pytest.mark.django_db
def test_the_demo_tech_lead_gets_a_new_password_on_request():
    def command(*args) -> str:
        stdout = io.StringIO()
        call_command("ensure_demo_user", *args, stdout=stdout)
        return stdout.getvalue()

    first = command()
    old = first.split("with password: ")[1].split()[0]
    assert User.objects.get(username="techlead").check_password(old)

    again = command()  # a restart: the password is not shown again; the message says how to get one
    assert old not in again and "python manage.py ensure_demo_user --reset-password" in again

    reset = command("--reset-password")
    new = reset.split("with password: ")[1].split()[0]
    assert new != old
    techlead = User.objects.get(username="techlead")
    assert techlead.check_password(new) and not techlead.check_password(old)
    event = AuditEvent.objects.get(action="auth.password_reset")
    assert event.target == "techlead" and new not in event.canonical()


def test_point_11_first_make_run_shows_pips_progress():
    """The first `make run` installs requirements-sandbox.txt (requirements.txt and moto's server) for minutes:
    pip's own progress is shown (not -q), after a line that says what is happening. `make -n -W requirements.txt`
    prints what a changed (or first) install would run, without running it."""
    planned = subprocess.run(
        ["make", "-n", "-W", "requirements.txt", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    install = [line for line in planned if "pip install" in line]
    assert install == [".venv/bin/pip install -r requirements-sandbox.txt"]
    said = planned.index(install[0]) - 1
    assert planned[said].startswith("echo ") and "Installing Onramp's Python packages" in planned[said]
