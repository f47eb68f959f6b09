"""deploy/redis/users.acl, loaded by a redis-server of our own: each user can do its job and nothing that moves money.

The file is used as shipped, but for its placeholder password hashes, replaced by the hashes of random passwords.
The deployment prefix is the file's (``prov``); the server is private, so no other test's keys are near.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from cli.main import main
from sandbox import start_server
from tests.api.live import Upstream, live_api
from tests.core.harness import events_for
from tests.private_redis import free_port
from tests.runtime.rig import WorkerRig

pytestmark = pytest.mark.redis

ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "users.acl"
PREFIX = "prov"
PLACEHOLDER = "#" + "0" * 64
USERS = ("publisher", "worker", "operator")


class AclRedis:
    """A redis-server on a free loopback port with ``users.acl`` (placeholders replaced); ``url(user)``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="acl-redis-")
        self.passwords = {user: secrets.token_urlsafe(24) for user in USERS}
        lines = []
        for line in ACL_FILE.read_text().splitlines():
            user = line.split()[1]
            if user in self.passwords:
                digest = hashlib.sha256(self.passwords[user].encode()).hexdigest()
                assert PLACEHOLDER in line, f"{user}: the shipped file holds a placeholder, not a password hash"
                lines.append(line.replace(PLACEHOLDER, f"#{digest}"))
            else:
                lines.append(line)
        (Path(self.dir) / "users.acl").write_text("\n".join(lines) + "\n")
        binary = shutil.which("redis-server") or "redis-server"
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", ""]
        self.proc = subprocess.Popen(
            [binary, *options, "--appendonly", "yes", "--aclfile", str(Path(self.dir) / "users.acl")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                if redis.Redis.from_url(self.url("worker"), socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("redis-server with the ACL file did not start")

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user), decode_responses=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def acl_redis() -> Iterator[AclRedis]:
    server = AclRedis()
    yield server
    server.stop()


def _refused(call: object) -> bool:
    try:
        call()  # type: ignore[operator]
    except redis.exceptions.NoPermissionError:
        return True
    except redis.exceptions.ResponseError as exc:  # a write refused inside a script
        return "NOPERM" in str(exc) or "no permissions" in str(exc)
    return False


def test_no_one_gets_in_without_a_user(acl_redis: AclRedis) -> None:
    """The default user is off: an anonymous client cannot even ping."""
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl_redis.port).ping()


def test_the_worker_works_end_to_end_and_the_api_publishes_as_publisher(acl_redis: AclRedis) -> None:
    """The worker (user worker) provisions and funds; the HTTP API (user publisher) admits events, refuses a bad
    one, and a worker takes what it admitted."""
    with WorkerRig(acl_redis.url("worker"), PREFIX) as rig, live_api(acl_redis.url("publisher"), PREFIX) as api:
        ev = events_for("acl-alice")
        rig.publisher.publish(ev["created"])
        upstream = Upstream(api.url)
        assert upstream.post(ev["kyc"]).status_code == 202
        assert upstream.post(ev["kyc"]).status_code == 200, "a duplicate, judged from what the worker stored"
        assert upstream.post({**ev["ip"], "data": {}}).status_code == 422
        assert upstream.post(events_for("acl-bob")["created"]).status_code == 202
        upstream.close()
        rig.wait_for(lambda: rig.exchange.state_snapshot()["transfers"], what="the funding transfer")
        rig.wait_for(lambda: rig.live_keys(), what="the key")
        rig.wait_for(lambda: len(rig.exchange.state_snapshot()["subAccounts"]) == 2, what="bob's sub-account")


def test_the_publisher_cannot_write_customers_nor_the_daily_ledger(acl_redis: AclRedis) -> None:
    """What a stolen publisher credential cannot do: write a customer's record, events or journal, the daily
    funding ledger, the due set, dead-letter metadata or the outbound stream — directly or from a script."""
    p = acl_redis.client("publisher")
    day = f"{PREFIX}:funding:20261202"
    for call in (
        lambda: p.set(f"{PREFIX}:c:someref", "{}"),
        lambda: p.hset(f"{PREFIX}:c:someref:events", "e", "{}"),
        lambda: p.xadd(f"{PREFIX}:c:someref:journal", {"a": "b"}),
        lambda: p.hset(day, "USDT", "0"),
        lambda: p.delete(day),
        lambda: p.zadd(f"{PREFIX}:due", {"someref": 0}),
        lambda: p.hset(f"{PREFIX}:dlq:m", "reason", "x"),
        lambda: p.xadd(f"{PREFIX}:outbound", {"type": "funding.completed"}),  # no forged outcome to the upstream
        lambda: p.eval("return redis.call('DEL', KEYS[1])", 1, day),
        lambda: p.flushdb(),
        lambda: p.config_set("appendonly", "no"),
    ):
        assert _refused(call)
    assert p.hgetall(day) == {}, "it may read what it needs"


def test_the_operator_reads_and_cannot_write(acl_redis: AclRedis) -> None:
    """`provisioner state`, `dlq list`, `dlq show` and `top --once` answer as operator; any write is refused."""
    with WorkerRig(acl_redis.url("worker"), PREFIX) as rig, start_server(rig.exchange) as server:
        rig.runtime.broker.enqueue(
            rig.runtime.actors.handle_event.message({"id": "x", "type": "customer.created"})  # unsigned: refused
        )
        (letter,) = rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="a dead letter")
        env = {
            "REDIS_URL": acl_redis.url("operator"),
            "PROVISIONER_REDIS_PREFIX": PREFIX,
            "PROVISIONER_STATE_DIR": rig.settings.state_dir or "",
            "KUCOIN_BROKER_BASE_URL": server.url,
            "KUCOIN_SPOT_BASE_URL": server.url,
        }
        runner = CliRunner()
        for args in (["state", "show"], ["dlq", "list"], ["dlq", "show", letter.message_id], ["top", "--once"]):
            result = runner.invoke(main, args, env=env)
            assert result.exit_code == 0, (args, result.output, result.exception)
        assert "unauthenticated" in runner.invoke(main, ["dlq", "show", letter.message_id], env=env).output
    o = acl_redis.client("operator")
    for call in (
        lambda: o.set(f"{PREFIX}:x", "1"),
        lambda: o.hset(f"{PREFIX}-dramatiq:events.msgs", "m", "{}"),
        lambda: o.rpush(f"{PREFIX}-dramatiq:events", "m"),
        lambda: o.delete(f"{PREFIX}:state"),
        lambda: o.eval("return redis.call('SET', KEYS[1], '1')", 1, f"{PREFIX}:x"),
    ):
        assert _refused(call)
