"""The sandbox's controller, for tests and benchmarks: moto's server over HTTP on loopback, strict (sandbox/strict.py)
or as it is, started as a process of its own, reset and configured through its control API, and the harness's
administrator session in an account (no Django here)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.session
from botocore.loaders import Loader

from sandbox.strict import ADMIN_ROLE, SETUP_KEY_ID, SETUP_SECRET

ROOT = Path(__file__).resolve().parent.parent


class _SearchPaths(list):
    """A data loader's search paths, each once: boto3 adds its own to the loader of every session it makes."""

    def append(self, path) -> None:
        if path not in self:
            super().append(path)


# One botocore data loader for every session the harness makes: a service's model (iam's is over a megabyte of JSON)
# is parsed once in this process, not once a session (a session and a client cost ~80 ms idle without it, and the
# benches and tests make several an account: its administrator's, the checks').
_LOADER = Loader(extra_search_paths=_SearchPaths())


def session_make(**credentials) -> boto3.Session:
    """A boto3 session with these credentials, on the harness's one data loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return boto3.Session(botocore_session=core, **credentials)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _control(url: str, path: str, data: dict | None = None) -> dict:
    """POST to the strict sandbox's control API (sandbox/strict.py control())."""
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{url}/sandbox-api/{path}", data=json.dumps(data or {}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


_strict_servers: dict[str, bool] = {}


def _is_strict(url: str) -> bool:
    """Whether the server at `url` is the strict sandbox (it has the control API), and not moto's own."""
    if url not in _strict_servers:
        try:
            with urllib.request.urlopen(f"{url}/sandbox-api/config", timeout=10) as response:  # noqa: S310
                _strict_servers[url] = "authorization" in json.loads(response.read())
        except (OSError, ValueError):  # moto's own server answers that path as an S3 request: 404
            _strict_servers[url] = False
    return _strict_servers[url]


def admin_session(url: str, account_id: str) -> boto3.Session:
    """The harness's administrator in an account: on the strict sandbox its SandboxAdmin role, assumed by the
    set-up identity; on moto's own server (which checks nothing) any keys and any role do."""
    keys = (SETUP_KEY_ID, SETUP_SECRET) if _is_strict(url) else ("testing", "testing")
    if _is_strict(url):
        _control(url, f"accounts/{account_id}")
    sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1", aws_access_key_id=keys[0],
                       aws_secret_access_key=keys[1])  # fmt: skip
    role = f"arn:aws:iam::{account_id}:role/{ADMIN_ROLE}"
    creds = sts.assume_role(RoleArn=role, RoleSessionName="sandbox-admin")["Credentials"]
    return session_make(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])  # fmt: skip


class Sandbox:
    """A moto server process with AWS managed policies loaded (AdministratorAccess, Billing…). `strict`:
    the strict sandbox's server (sandbox/strict.py), whose rules `reset` and `configure` switch;
    otherwise moto's own server, as it is."""

    def __init__(
        self, port: int | None = None, log: Path | None = None, *, strict: bool = False, managed_policies: bool = True
    ):
        self.managed_policies = managed_policies  # False: ~31 MiB and up to a second less per account (bench)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.strict = strict
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Sandbox":
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true" if self.managed_policies else "false"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        server = "sandbox.strict" if self.strict else "moto.server"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", server, "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's server exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()  # noqa: S310
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto's server did not answer on {self.url} in {timeout} s")

    def reset(self, **switches) -> None:
        """Empty every account; on the strict server, also set its rules (all off: moto as it is)."""
        if self.strict:
            _control(self.url, "reset", switches)
            return
        if switches:
            raise ValueError("moto's own server has no strict rules")
        request = urllib.request.Request(self.url + "/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=60).close()  # noqa: S310 (a loaded machine resets slowly)

    def snapshot_take(self, name: str) -> None:
        """The strict server keeps its state as it is now under `name` (in its own process)."""
        _control(self.url, f"snapshots/{name}")

    def snapshot_restore(self, name: str, **switches) -> bool:
        """The strict server's state as the snapshot `name` kept it, with these rules; False if it has none."""
        return _control(self.url, f"restore/{name}", switches)["restored"]

    def configure(self, **switches) -> dict:
        """Change some of the strict server's rules for the rest of the test."""
        return _control(self.url, "config", switches)

    def clock_advance(self, seconds: float) -> None:
        """Move the strict server's clock `seconds` forward: sessions and the windows after a change age as if
        that long had passed (sandbox/clock.py), so a test need not sleep them out."""
        _control(self.url, "clock", {"advance": seconds})

    def sessions(self) -> list[dict]:
        """The strict server's role sessions since its reset: each one's ARN, source identity and session tags."""
        with urllib.request.urlopen(f"{self.url}/sandbox-api/sessions", timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def user_make(self, *, account_id: str, user_name: str, policy_document: dict, keys: tuple[str, str]) -> str:
        """An IAM user with one inline policy and these (access key id, secret) keys; its ARN."""
        data = {"account_id": account_id, "user_name": user_name, "policy_document": policy_document,
                "access_key_id": keys[0], "secret_access_key": keys[1]}  # fmt: skip
        return _control(self.url, "users", data)["arn"]

    def admin(self, account_id: str) -> boto3.Session:
        return admin_session(self.url, account_id)

    def stack_deploy(self, *, account_id: str, template: dict, name: str = "onramp") -> dict:
        """Deploy a CloudFormation template in the account as its administrator would; the stack's outputs."""
        cfn = self.admin(account_id).client("cloudformation", endpoint_url=self.url, region_name="us-east-1")
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"])
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"the stack {name} in {account_id} is {stack['StackStatus']}")
        return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}

    def stop(self) -> None:
        """Killed outright: this server keeps nothing (make run's sandbox, which saves its state at a stop, is
        sandbox/state.py), its log is written line by line, and moto's own exit on SIGTERM freed every account's
        ~1,300 managed policies first (1-2 s a stop)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
