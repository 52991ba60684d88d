"""The sandbox AWS for tests and benchmarks: moto's server over HTTP on loopback, and a proxy in
front of it that can add latency, hold or refuse calls, or be down (no Django here)."""

import http.client
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    """A moto server process with AWS managed policies loaded (AdministratorAccess, Billing…)."""

    def __init__(self, port: int | None = None, log: Path | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Sandbox":
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
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

    def reset(self) -> None:
        request = urllib.request.Request(self.url + "/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=60).close()  # noqa: S310 (a loaded machine resets slowly)

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
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: the test output is the report
                pass

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
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                answer = response.read()
                upstream.close()
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
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
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
