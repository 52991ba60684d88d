"""The sandbox AWS for tests and benchmarks: moto's server over HTTP on loopback (strict or as it is, see
tests/sandbox_strict.py), and a proxy in front of it that can add latency, hold or refuse calls, or be down
(no Django here)."""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import boto3

from tests.sandbox_strict import ADMIN_ROLE, SETUP_KEY_ID, SETUP_SECRET

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _control(url: str, path: str, data: dict | None = None) -> dict:
    """POST to the strict sandbox's control API (tests/sandbox_strict.py control())."""
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
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"])  # fmt: skip


class Sandbox:
    """A moto server process with AWS managed policies loaded (AdministratorAccess, Billing…). `strict`:
    the strict sandbox's server (tests/sandbox_strict.py), whose rules `reset` and `configure` switch;
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
        server = "tests.sandbox_strict" if self.strict else "moto.server"
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

    def configure(self, **switches) -> dict:
        """Change some of the strict server's rules for the rest of the test."""
        return _control(self.url, "config", switches)

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
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


# --- A proxy in front of the sandbox: hold a call, refuse a call, or be down --------------


def _operation(method: str, path: str, headers, body: bytes) -> str:
    """A readable name for an AWS request: Query APIs (IAM, STS) by Action, JSON APIs by target,
    S3 by method and path."""
    target = headers.get("X-Amz-Target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    if body and b"Action=" in body:
        action = parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
        if action:
            return action
    if method == "PUT" and path.count("/") == 1 and "?" not in path:
        return "CreateBucket"
    return f"{method} {path.split('?')[0]}"


@dataclass
class Rule:
    """What to do with calls to one operation (whose body contains `body_has`, when given)."""

    operation: str
    body_has: bytes = b""
    hold_response: bool = False  # forward to the sandbox, then keep the answer until released
    refuse_with: str = ""  # an AWS error code to answer with instead of forwarding
    times: int = 1
    seen: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    matched: int = 0


THROTTLE_XML = (
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
    "<Code>{code}</Code><Message>Rate exceeded</Message></Error><RequestId>soak-proxy</RequestId>"
    "</ErrorResponse>"
)


def _proxy_handler(proxy: "SandboxProxy") -> type[BaseHTTPRequestHandler]:
    """The proxy's request handler: forward to the sandbox, after the rules and the latency."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A response goes out in one segment (status, headers and body buffered, sent at the end of the
        # request) with Nagle's algorithm off: written as headers then body, the body waited for the
        # client's delayed ACK of the headers, about 40 ms a call (issue 18, point 0).
        wbufsize = 1 << 16
        disable_nagle_algorithm = True
        upstream: http.client.HTTPConnection | None = None  # one kept-alive connection per client connection

        def log_message(self, *args):  # quiet: the test output is the report
            pass

        def _forward(self, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            for attempt in (1, 2):
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
                    self.upstream.connect()
                    self.upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    self.upstream.request(self.command, self.path, body=body, headers=headers)
                    response = self.upstream.getresponse()
                    return response, response.read()
                except (http.client.RemoteDisconnected, ConnectionError):
                    self.upstream.close()  # the sandbox closed a kept-alive connection: open another
                    self.upstream = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        def finish(self):
            if self.upstream is not None:
                self.upstream.close()
            super().finish()

        def _any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            operation = _operation(self.command, self.path, self.headers, body)
            proxy.calls.append(operation)
            rule = proxy._rule_for(operation, body)
            if rule is not None and rule.refuse_with:
                rule.seen.set()
                self._answer(400, {"Content-Type": "text/xml"}, THROTTLE_XML.format(code=rule.refuse_with).encode())
                return
            if proxy.latency:
                time.sleep(proxy.latency)
            response, answer = self._forward(body)
            proxy._harvest(operation, body, answer)
            if rule is not None and rule.hold_response:
                rule.seen.set()  # the call happened in AWS; its caller has not heard back
                rule.release.wait(300)
                # Whoever asked is gone by now (killed): answer into the void, or to a survivor.
            headers = {
                k: v
                for k, v in response.getheaders()
                if k.lower() not in ("transfer-encoding", "connection", "content-length")
            }
            self._answer(response.status, headers, answer)

        def _answer(self, status: int, headers: dict, body: bytes):
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except OSError:
                pass

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    return Handler


class SandboxProxy:
    """HTTP proxy on loopback between the workers and moto's server. It records every generated
    secret it sees go by (CreateAccessKey answers, CreateLoginProfile passwords), even those of
    keys later deleted, so the leak search knows them all."""

    def __init__(self, upstream: str, port: int | None = None, *, latency: float = 0.0):
        self.upstream = upstream.removeprefix("http://")
        self.latency = latency  # seconds added to every call, as a round trip to real AWS (bench/)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rules: list[Rule] = []
        self.secrets: set[str] = set()
        self.calls: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def release_all(self) -> None:
        with self._lock:
            for rule in self.rules:
                rule.release.set()
            self.rules.clear()

    def _rule_for(self, operation: str, body: bytes) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.operation == operation and rule.body_has in body and rule.matched < rule.times:
                    rule.matched += 1
                    return rule
        return None

    def _harvest(self, operation: str, body: bytes, answer: bytes) -> None:
        if operation in ("CreateLoginProfile", "UpdateLoginProfile"):
            password = parse_qs(body.decode(errors="replace")).get("Password", [""])[0]
            if password:
                self.secrets.add(password)
        for match in re.finditer(rb"<SecretAccessKey>([^<]+)</SecretAccessKey>", answer):
            self.secrets.add(match.group(1).decode())

    def start(self) -> "SandboxProxy":
        handler = _proxy_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down, as AWS unreachable: the port refuses connections until start() again."""
        self.release_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
