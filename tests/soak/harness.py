"""What the fault scenarios need around the portal: a reading of the sandbox, a search for leaked
secrets, a proxy in front of the sandbox that can hold or refuse calls, real worker processes and a
private Redis server. Nothing here touches Onramp's code: it only watches and breaks its surroundings."""

import base64
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from provisioning import vault
from provisioning.models import Credential
from sandbox.controller import admin_session, free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


# --- Reading the sandbox back, with plain boto3 ------------------------------------------


def account_clients(sandbox_url: str, account_id: str, region: str) -> dict:
    session = admin_session(sandbox_url, account_id)
    return {name: session.client(name, endpoint_url=sandbox_url, region_name=region) for name in ("iam", "s3", "ecr")}


def resource_counts(sandbox_url: str, spec: dict) -> dict[str, int]:
    """How many of each thing the onboarding made exist in the account: each should be exactly 1."""
    aws = account_clients(sandbox_url, spec["account_id"], spec["region"])
    iam, s3, ecr = aws["iam"], aws["s3"], aws["ecr"]
    users = [u["UserName"] for u in iam.list_users()["Users"]]
    policies = list(iam.list_policies(Scope="Local")["Policies"])
    counts = {
        "app user": users.count(spec["app_name"]),
        "app user in group": sum(
            g["GroupName"] == "Apps" for g in iam.list_groups_for_user(UserName=spec["app_name"])["Groups"]
        ),
        "access key": len(iam.list_access_keys(UserName=spec["app_name"])["AccessKeyMetadata"]),
        "policy": len(policies),
        "policy version": sum(len(iam.list_policy_versions(PolicyArn=p["Arn"])["Versions"]) for p in policies),
        "policy attachment": len(iam.list_attached_user_policies(UserName=spec["app_name"])["AttachedPolicies"]),
        "bucket": sum(b["Name"] == spec["bucket"] for b in s3.list_buckets()["Buckets"]),
        "repository": sum(
            r["repositoryName"] == spec["ecr_repository"] for r in ecr.describe_repositories()["repositories"]
        ),
        "access key credential": Credential.objects.filter(kind=Credential.Kind.ACCESS_KEY).count(),
    }
    for member in spec.get("team", []):
        if member.get("console"):
            counts[f"console password credential {member['email']}"] = Credential.objects.filter(
                kind=Credential.Kind.CONSOLE_PASSWORD, user_name=member["email"]
            ).count()
    return counts


def duplicates(counts: dict[str, int]) -> int:
    """Everything beyond one of a kind (and anything missing counts too: it must be exactly one)."""
    return sum(abs(n - 1) for n in counts.values())


# --- Secrets: which were generated, and where they must not be ----------------------------


def sealed_secrets() -> set[str]:
    """Every generated secret still sealed in the vault, decrypted: the ones to look for."""
    return {vault.decrypt(c.ciphertext) for c in Credential.objects.exclude(ciphertext="")}


def database_dump() -> str:
    """Every row of every table of the test database, as pg_dump writes it."""
    db = settings.DATABASES["default"]
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    done = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "-h",
            db.get("HOST") or "127.0.0.1",
            "-p",
            str(db.get("PORT") or 5432),
            "-U",
            db.get("USER") or "postgres",
            connection.settings_dict["NAME"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return done.stdout


def redis_dump(url: str) -> str:
    """Every key and value in the broker's database, Celery message bodies decoded from base64."""
    import redis

    client = redis.Redis.from_url(url)
    parts: list[str] = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [b"%s=%s" % kv for kv in client.hgetall(key).items()]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        else:
            values = []
        parts.append(key.decode(errors="replace"))
        for value in values:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            parts.append(text)
            parts.extend(_decoded_bodies(text))
    return "\n".join(parts)


def _decoded_bodies(text: str) -> list[str]:
    found = []
    for match in re.finditer(r'"body":\s*"([A-Za-z0-9+/=]+)"', text):
        try:
            found.append(base64.b64decode(match.group(1)).decode(errors="replace"))
        except ValueError:
            pass
    return found


def leaks(secrets_: set[str], haystacks: dict[str, str]) -> dict[str, int]:
    """{place: how many of the secrets appear there}, in plain or JSON-escaped form."""
    found = {}
    for place, text in haystacks.items():
        hits = sum(1 for s in secrets_ if s and (s in text or json.dumps(s)[1:-1] in text))
        if hits:
            found[place] = hits
    return found


# --- Real worker processes and a private Redis ----------------------------------------------


class WorkerProcess:
    """`celery -A portal worker --pool prefork`, on the test database, its output kept for the
    leak search. Killed with SIGKILL, the whole process group, like a node that died."""

    def __init__(self, *, broker_url: str, aws_url: str, log: Path, concurrency: int = 2, **env):
        self.log = log
        db = settings.DATABASES["default"]
        database_url = (
            f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
            f"/{connection.settings_dict['NAME']}"
        )
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings_test",
            "DATABASE_URL": database_url,
            "REDIS_URL": broker_url,
            "AWS_ENDPOINT_URL": aws_url,
            "LOG_LEVEL": "INFO",
            **{k: str(v) for k, v in env.items()},
        }
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        out = open(self.log, "ab")  # noqa: SIM115 (closed in stop)
        self._out = out
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/celery"),
                "-A",
                "portal",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(self.concurrency),
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
                "-n",
                f"soak-{time.monotonic_ns()}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill takes the pool children too
        )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        self._out.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if not self._out.closed:
            self._out.close()


class RedisServer:
    """A private redis-server that keeps nothing on disk, so a restart loses every message."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                return redis.Redis(port=self.port).ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout=20, interval=0.05, message=f"redis-server did not start on {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()
