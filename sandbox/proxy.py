"""A proxy on loopback in front of the sandbox AWS: it adds latency (the benches' round trip to AWS), holds or
refuses calls, or is down (the resilience tests and the soak), and records every generated secret it sees go by."""

import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from sandbox.controller import free_port


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


class _ProxyHandler(BaseHTTPRequestHandler):
    """The proxy's request handler: forward to the sandbox, after the rules and the latency."""

    protocol_version = "HTTP/1.1"
    # A response goes out in one segment (status, headers and body buffered, sent at the end of the
    # request) with Nagle's algorithm off: written as headers then body, the body waited for the
    # client's delayed ACK of the headers, about 40 ms a call (issue 18, point 0).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    upstream: http.client.HTTPConnection | None = None  # one kept-alive connection per client connection
    proxy: "SandboxProxy"  # set by _proxy_handler: one subclass per proxy

    def log_message(self, *args):  # quiet: the test output is the report
        pass

    def _forward(self, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        for attempt in (1, 2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(self.proxy.upstream, timeout=60)
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
        self.proxy.calls.append(operation)
        rule = self.proxy._rule_for(operation, body)
        if rule is not None and rule.refuse_with:
            rule.seen.set()
            self._answer(400, {"Content-Type": "text/xml"}, THROTTLE_XML.format(code=rule.refuse_with).encode())
            return
        if self.proxy.latency:
            time.sleep(self.proxy.latency)
        response, answer = self._forward(body)
        self.proxy._harvest(operation, body, answer)
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


def _proxy_handler(proxy: "SandboxProxy") -> type[BaseHTTPRequestHandler]:
    """The request handler of one proxy: its rules, latency and records."""
    return type("Handler", (_ProxyHandler,), {"proxy": proxy})


class _ProxyServer(ThreadingHTTPServer):
    # The standard library's accept queue holds 5 connections: a client opening more at once (a run's preflight sends
    # its checks' calls beside its read, over a dozen) had the others' SYNs dropped, which TCP sends again only after
    # a second: a stall of the proxy's own that no AWS endpoint makes.
    request_queue_size = 128
    daemon_threads = True


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
        self._server = _ProxyServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down, as AWS unreachable: the port refuses connections until start() again."""
        self.release_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
