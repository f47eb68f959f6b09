"""A redis-server of our own on a free loopback port, so that a test or the chaos run can kill and restart it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis

__all__ = ["PrivateRedis", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """``durable=True`` gives the README's persistence (AOF, appendfsync always): a restart keeps what Redis
    acknowledged. Without it a restart starts empty."""

    def __init__(self, *, durable: bool = True, fsync: str = "always") -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="private-redis-")
        self.durable = durable
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        persistence = ["--appendonly", "yes", "--appendfsync", self.fsync] if self.durable else ["--appendonly", "no"]
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", ""]
        self.proc = subprocess.Popen(
            [binary, *options, *persistence, "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("private redis did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
