"""Find given secret strings anywhere in Redis (every key under given prefixes, every type) or in text."""

from __future__ import annotations

from collections.abc import Iterable

import redis


def redis_values(client: redis.Redis, prefixes: Iterable[str]) -> Iterable[tuple[str, str]]:
    """Every (key, value) string stored under the prefixes: strings, hashes, lists, sets, zsets, streams."""
    for prefix in prefixes:
        for raw_key in client.scan_iter(f"{prefix}*", count=1000):
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            kind = client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            values: list[object] = []
            if kind == "string":
                values = [client.get(key)]
            elif kind == "hash":
                values = [v for pair in client.hgetall(key).items() for v in pair]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                values = [v for _, fields in client.xrange(key) for pair in fields.items() for v in pair]
            for value in values:
                yield key, value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def hits(secrets: Iterable[str], haystacks: Iterable[tuple[str, str]]) -> list[str]:
    """Where each secret appears: ``"<where>: <secret prefix>…"`` for every hit."""
    needles = [s for s in set(secrets) if s and len(s) >= 6]
    found = []
    for where, text in haystacks:
        for needle in needles:
            if needle in text:
                found.append(f"{where}: {needle[:4]}…")
    return found
