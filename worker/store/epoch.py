"""Detecting lost or rolled-back state before acting on it.

Redis can lose what it acknowledged: restarted without persistence, restored from an older snapshot, the last
second of an ``everysec`` AOF, an asynchronous failover. A worker that starts over from such a state would create
second keys, pay a second time, or close a customer whose key and money live on. So the state carries an
identity and a counter, and every worker checks them before it acts.

- ``{p}:state`` (hash): ``epoch`` (a random id, made once when the deployment's state is first created, and again
  by ``provisioner recover``), ``mode`` (``fresh`` or ``recovered``), ``writes`` (incremented by every guarded
  write: each commit of a customer record, each stored event), ``halted`` (why the workers stopped).
- Every guarded script (``worker.store.customers``) checks, in the same atomic step as the write, that the epoch
  is the one this process established, that no halt is set, and that ``writes`` has not gone below the highest
  value this process has seen (a rollback), and refuses with ``STATELOST`` otherwise.
- A mirror file on each host (``PROVISIONER_STATE_DIR``) keeps the epoch and the highest ``writes`` the host
  saw, where a Redis loss cannot take it: a worker starting against a Redis whose epoch is gone, different or
  behind its mirror refuses to start.
- Where Redis holds no state and the host no mirror (a new deployment, or a loss on a host without a durable
  disk), the exchange is asked: if it already has sub-accounts named the way we name ours, the state was lost —
  refuse; only otherwise is a fresh epoch created.

A refusal raises ``StateLost``. The runtime then halts every worker (``halted`` is set for all of them), logs it,
raises ``provisioner_state_lost`` (alert ``StateLost``) and waits for an operator: ``provisioner recover``
rebuilds from the exchange and starts a ``recovered`` epoch, in which every customer record is first audited
against the exchange before anything is done for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from worker.store.keys import Keys

__all__ = [
    "GUARD_LUA",
    "NAMING_LUA",
    "Epoch",
    "Mirror",
    "NamingMismatch",
    "StateGuard",
    "StateLost",
    "check_naming",
    "default_state_dir",
    "raise_if_naming_refused",
    "raise_if_state_lost",
]

GUARD_LUA = """
local guard = redis.call('HMGET', KEYS[{state}], 'epoch', 'halted', 'writes')
if guard[2] then return redis.error_reply('STATELOST halted ' .. guard[2]) end
if not guard[1] then return redis.error_reply('STATELOST missing the state epoch is gone') end
if guard[1] ~= ARGV[{epoch}] then return redis.error_reply('STATELOST changed the state epoch changed') end
if tonumber(guard[3] or '0') < tonumber(ARGV[{hwm}]) then
  return redis.error_reply('STATELOST rolled_back the state went back to an earlier write')
end
local writes = redis.call('HINCRBY', KEYS[{state}], 'writes', 1)
"""
"""The check every guarded script starts with; format it with the positions of the state key and the epoch and
high-water-mark arguments. It leaves the new write count in ``writes``."""

NAMING_LUA = """
if {fingerprint} ~= '' then
  local named = redis.call('HGET', {state}, 'naming')
  if named and named ~= {fingerprint} then return redis.error_reply('NAMING this process names customers otherwise') end
end
"""
"""The naming check of a script that keys customers by ref; format it with the state key's and this process's
fingerprint's positions (``''``: not compared). Its error is turned into ``NamingMismatch`` by
``raise_if_naming_refused``."""

_RECOVER = """
-- KEYS[1] state; ARGV: new epoch id, now (ms), reason. Returns the previous epoch, the write count, created_ms.
local previous = redis.call('HGET', KEYS[1], 'epoch') or ''
local created = redis.call('HGET', KEYS[1], 'created_ms') or ARGV[2]
redis.call('HDEL', KEYS[1], 'halted', 'halted_ms')
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'mode', 'recovered', 'created_ms', created, 'recovered_ms', ARGV[2],
           'recovered_from', previous == '' and '-' or previous, 'recovery_reason', ARGV[3])
redis.call('HSETNX', KEYS[1], 'writes', '0')
return {previous, redis.call('HGET', KEYS[1], 'writes'), created}
"""

MIRROR_EVERY_MS = 1_000
EVICTIONS_EVERY_MS = 5_000
"""How often the periodic check reads Redis' count of evicted keys (``INFO stats``)."""
"""The periodic check brings the host's mirror up to date at most this often (it ``fsync``s)."""

KINDS = ("missing", "changed", "rolled_back", "evicted", "halted", "traces", "uninitialised")


class StateLost(Exception):  # noqa: N818 - reads as what happened
    """The state in Redis is not the state this deployment left: acting on it could repeat effects.

    ``kind``: ``missing`` (the epoch is gone: Redis lost everything), ``changed`` (another epoch), ``rolled_back``
    (fewer writes than already seen), ``evicted`` (Redis evicted keys while this process ran: some of ours may be
    gone, the epoch intact), ``halted`` (a worker found one of these and stopped everyone), ``traces``
    (Redis is empty but the exchange has our sub-accounts), ``uninitialised`` (no state and not allowed to create
    one here)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"state lost ({kind}): {reason}")
        self.kind = kind if kind in KINDS else "halted"
        self.reason = reason


def raise_if_state_lost(exc: redis.ResponseError) -> None:
    """Turn a guarded script's ``STATELOST <kind> <reason>`` refusal into ``StateLost``; other errors pass."""
    text = str(exc)
    if text.startswith("STATELOST"):
        _, kind, reason = [*text.split(" ", 2), "", ""][:3]
        raise StateLost(kind, reason) from None


@dataclass(frozen=True)
class Epoch:
    id: str
    mode: str
    """``fresh`` or ``recovered``."""
    writes: int
    created_ms: int
    recovered_ms: int | None = None
    recovered_from: str | None = None
    """The epoch an operator's recovery replaced (``-`` when Redis held none)."""


@dataclass(frozen=True)
class MirrorEntry:
    epoch: str
    writes: int
    at_ms: int


class Mirror:
    """The host's memory of the state it worked on, in small files outside Redis.

    One main file per Redis database and key prefix, brought up to date by the periodic check (an exclusive
    ``flock`` around read-update-write, an atomic rename, ``fsync``); and one file per worker process, overwritten
    in place and ``fdatasync``'d before each exchange write (``note``), so that even the last second of writes
    before a crash of Redis and this host together is remembered. ``read`` gives the highest write count any of
    them holds for the newest epoch; the files of processes no longer running are merged into the main one."""

    _SLOT = 160
    """Bytes of a process file: one JSON line, padded, written at offset 0."""

    def __init__(self, directory: Path, identity: str) -> None:
        self.directory = directory
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20]
        self.path = directory / f"state-{digest}.json"
        self._prefix = f"state-{digest}."
        self._identity = identity
        self._fd: int | None = None
        self._fd_pid = 0

    def read(self) -> MirrorEntry | None:
        entries = [e for e in (self._read_file(f) for f in self._files()) if e is not None]
        if not entries:
            return None
        newest = max(entries, key=lambda e: e.at_ms)
        same = [e for e in entries if e.epoch == newest.epoch]
        return MirrorEntry(newest.epoch, max(e.writes for e in same), newest.at_ms)

    def note(self, epoch: str, writes: int, now_ms: int) -> None:
        """Remember, durably and at once, that this process saw ``writes`` of ``epoch`` (before an exchange write)."""
        body = json.dumps({"epoch": epoch, "writes": writes, "at_ms": now_ms}).encode()
        if len(body) >= self._SLOT:  # pragma: no cover - an epoch id is 32 characters
            raise ValueError("mirror entry too long")
        if self._fd is None or self._fd_pid != os.getpid():  # opened per process (a fork must not share it)
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.directory / f"{self._prefix}{os.getpid()}.proc", os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        os.pwrite(self._fd, body.ljust(self._SLOT - 1) + b"\n", 0)
        os.fdatasync(self._fd)

    def record(self, epoch: str, writes: int, now_ms: int, *, replace: bool = False) -> None:
        """Remember ``writes`` of ``epoch`` in the main file (never lowering it for the same epoch unless
        ``replace``), and merge in the files of processes that no longer run."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read()
            if current is not None and current.epoch == epoch and not replace:
                writes = max(writes, current.writes)
            body = json.dumps({"epoch": epoch, "writes": writes, "at_ms": now_ms, "of": self._identity})
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            with tmp.open("w") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.path)
            for stale in self._files():  # a running process's file stays: it notes there before every write
                if stale.suffix == ".proc" and not _running(stale):
                    with contextlib.suppress(OSError):
                        stale.unlink()

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [
            f
            for f in self.directory.iterdir()
            if f == self.path or (f.name.startswith(self._prefix) and f.suffix == ".proc")
        ]

    @staticmethod
    def _read_file(path: Path) -> MirrorEntry | None:
        try:
            data = json.loads(path.read_bytes().strip() or b"null")
            return MirrorEntry(str(data["epoch"]), int(data["writes"]), int(data["at_ms"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unreadable mirror is as good as none; the exchange check still applies


def _running(process_file: Path) -> bool:
    """Whether the process a ``.proc`` mirror file belongs to still runs on this host."""
    try:
        pid = int(process_file.stem.rsplit(".", 1)[-1])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/kucoin-nd-provisioner``, else ``~/.local/state/kucoin-nd-provisioner``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "kucoin-nd-provisioner"


Traces = Callable[[], str | None]
"""Asks the exchange whether it already has sub-accounts of ours: a description of what it found, or ``None``."""


class NamingMismatch(Exception):  # noqa: N818 - reads as what happened
    """This process names customers with another ``PROVISIONER_NAME_SECRET`` (or account prefix) than the
    deployment's state was built with: every customer would get a second sub-account, key and payment. A
    configuration error: the process must not start (not a state loss: the other processes are right)."""


def check_naming(client: redis.Redis, keys: Keys, fingerprint: str, *, record: bool) -> None:
    """Compare this process's naming fingerprint (``Naming.fingerprint``) with the deployment's (the ``naming``
    field of ``{p}:state``); ``record``: a deployment without one (new, or from before the field) takes this one.
    Raises ``NamingMismatch`` naming the setting (never a secret) and ``redis.RedisError``."""
    stored = client.hget(keys.state, "naming")
    if stored is None and record:
        client.hsetnx(keys.state, "naming", fingerprint)
        stored = client.hget(keys.state, "naming")
    if stored is not None and _str(stored) != fingerprint:
        raise _naming_mismatch(_str(stored), fingerprint)


def raise_if_naming_refused(exc: redis.ResponseError, client: redis.Redis, keys: Keys, fingerprint: str) -> None:
    """A script that compares the naming fingerprint refused (its error starts with ``NAMING``): raise
    ``NamingMismatch`` saying what the state records. Returns for any other script error."""
    if str(exc).startswith("NAMING"):
        raise _naming_mismatch(_str(client.hget(keys.state, "naming")), fingerprint) from None


def _naming_mismatch(stored: str, fingerprint: str) -> NamingMismatch:
    return NamingMismatch(
        f"PROVISIONER_NAME_SECRET (or PROVISIONER_ACCOUNT_PREFIX) differs from the one this deployment's state "
        f"was built with (fingerprint {stored}, this process {fingerprint}): it would name every customer "
        "anew — a second sub-account, key and payment each. Give this process the deployment's secret (the "
        "fingerprint is recorded by the first process that worked on the state, or by `provisioner recover`)"
    )


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional_str(value: object) -> str | None:
    return None if value is None else _str(value)


class StateGuard:
    """This process's view of the state epoch: established once, checked by every guarded write and periodically.

    Thread-safe. ``args()`` gives the epoch and high-water mark a guarded script needs (establishing on first use,
    creating a fresh epoch only where nothing shows earlier state); ``observe`` raises the high-water mark with a
    script's result; ``check`` re-reads Redis and updates the mirror."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        mirror: Mirror | None,
        *,
        traces: Traces | None = None,
        clock: Callable[[], float] = time.time,
        naming_fingerprint: str | None = None,
    ) -> None:
        self._redis = client
        self._naming = naming_fingerprint
        self._key = keys.state
        self._keys = keys
        self._mirror = mirror
        self.traces = traces
        """Set once the exchange client exists (the composition root wires it)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._epoch: Epoch | None = None
        self._hwm = 0
        self._recover_script = client.register_script(_RECOVER)
        self._mirrored_ms = 0
        self._evictions_read_ms = 0

    # --- what guarded scripts need -------------------------------------------------------------------------

    def args(self) -> tuple[str, int]:
        """``(epoch id, high-water mark)`` for a guarded script. Raises ``StateLost``."""
        epoch = self._epoch or self.establish()
        return epoch.id, self._hwm

    def observe(self, writes: int) -> None:
        with self._lock:
            self._hwm = max(self._hwm, writes)

    @property
    def naming_fingerprint(self) -> str | None:
        """This process's naming fingerprint (``None``: not compared, a process that names no one)."""
        return self._naming

    def persist(self) -> None:
        """Before an exchange write: the host's mirror holds the write count this process has seen, durably, so a
        Redis that comes back without it is caught (``Mirror.note``)."""
        epoch = self._epoch
        if self._mirror is not None and epoch is not None:
            self._mirror.note(epoch.id, self._hwm, self._now_ms())

    @property
    def epoch(self) -> Epoch | None:
        return self._epoch

    @property
    def audit_epoch(self) -> str | None:
        """The epoch id when the state was recovered after a loss (records not audited in it are audited first)."""
        epoch = self._epoch
        return epoch.id if epoch is not None and epoch.mode == "recovered" else None

    @property
    def high_water_mark(self) -> int:
        return self._hwm

    # --- establishing and checking --------------------------------------------------------------------------

    def establish(
        self, *, init: bool = True, ask_exchange: bool = True, check_names: bool = True, record_names: bool = True
    ) -> Epoch:
        """Read the state epoch, compare it with the mirror, and remember it; where neither Redis nor the mirror
        nor the exchange shows earlier state (and ``init``), create a fresh one. ``ask_exchange=False`` skips the
        exchange (for a caller that knows the deployment is new, such as a test's own key prefix). First, the
        naming fingerprint is compared (``check_naming``; ``check_names=False``: not looked at), and recorded once
        the state proved sound (``record_names=False``: a diagnosis, which writes nothing). Raises ``StateLost``
        and ``NamingMismatch``."""
        with self._lock:
            if self._naming is not None and check_names:  # compared first; recorded once the state proved sound
                check_naming(self._redis, self._keys, self._naming, record=False)
            now = self._now_ms()
            # the mirror first: a process of this host may commit and note a write meanwhile, which Redis then holds
            mirrored = self._mirror.read() if self._mirror is not None else None
            stored = self._read()
            if stored is None:
                if mirrored is not None:
                    raise StateLost(
                        "missing",
                        f"Redis holds no state epoch, but this host worked on epoch {mirrored.epoch} up to write "
                        f"{mirrored.writes}: Redis lost our state",
                    )
                if not init:
                    raise StateLost("uninitialised", "Redis holds no state epoch")
                stored = self._create(now, ask_exchange=ask_exchange)
            epoch = stored
            if mirrored is not None and mirrored.epoch != epoch.id:
                superseded = epoch.mode == "recovered" and (
                    (epoch.recovered_ms or 0) >= mirrored.at_ms or epoch.recovered_from == mirrored.epoch
                )
                if not superseded:
                    raise StateLost(
                        "changed",
                        f"Redis holds state epoch {epoch.id}, but this host last worked on epoch {mirrored.epoch}",
                    )
                mirrored = None  # an operator's recovery replaced what this host saw
            if mirrored is not None and epoch.writes < mirrored.writes:
                raise StateLost(
                    "rolled_back",
                    f"Redis is at write {epoch.writes} of epoch {epoch.id}, but this host saw write {mirrored.writes}",
                )
            if self._naming is not None and check_names and record_names:
                # a state this process may work on (fresh, or sound): one from before the fingerprint adopts it; a
                # process refused for a lost state records nothing (after a loss, the recovery's process does)
                check_naming(self._redis, self._keys, self._naming, record=True)
            self._epoch = epoch
            self._hwm = max(self._hwm, mirrored.writes if mirrored is not None else 0)
            if self._mirror is not None:
                self._mirror.record(epoch.id, max(epoch.writes, self._hwm), now, replace=mirrored is None)
            return epoch

    def diagnose(self, *, check_names: bool = True) -> StateLost | None:
        """What ``establish`` would refuse, without writing anything: ``None`` when the state is sound, a
        ``StateLost`` of kind ``uninitialised`` when nothing shows earlier state (a worker would start afresh), of
        kind ``changed`` when the recorded naming is not this process's (``check_names=False``: not looked at)."""
        try:
            mirrored = self._mirror.read() if self._mirror is not None else None
            stored = self._read()
            if (
                stored is None
                and mirrored is None
                and self.traces is not None
                and not self._redis.exists(self._keys.customers)
            ):
                found = self.traces()
                if found:
                    return StateLost("traces", f"Redis holds no state of ours, but the exchange does ({found})")
            self.establish(init=False, check_names=check_names, record_names=False)
        except StateLost as exc:
            return exc
        except NamingMismatch as exc:  # the recorded naming is not this process's: told, not raised
            return StateLost("changed", str(exc))
        return None

    def check(self) -> Epoch:
        """The periodic check: the epoch is still ours, not halted, not behind what we saw; then the mirror is
        brought up to date. Raises ``StateLost``."""
        epoch = self._epoch or self.establish()
        seen = self._hwm  # before reading: every write seen so far is in Redis by now, unless it was lost
        current = self._read()
        if current is None:
            raise StateLost("missing", "the state epoch is gone: Redis lost our state")
        if current.id != epoch.id:
            if not self._succeeds(current, epoch):
                raise StateLost("changed", f"the state epoch changed from {epoch.id} to {current.id}")
            self._epoch = epoch = current  # an operator's recovery on a sound state: carry on in its epoch
        if current.writes < seen:
            raise StateLost("rolled_back", f"Redis went back to write {current.writes}; this process had seen {seen}")
        self.observe(current.writes)
        if current.mode != epoch.mode:
            self._epoch = current
        now = self._now_ms()
        if now - self._evictions_read_ms >= EVICTIONS_EVERY_MS:
            self._evictions_read_ms = now
            self._check_evictions()
        if self._mirror is not None and now - self._mirrored_ms >= MIRROR_EVERY_MS:
            self._mirror.record(current.id, self._hwm, now)
            self._mirrored_ms = now
        return current

    def _check_evictions(self) -> None:
        """A partial loss the epoch cannot show: Redis evicted keys since a worker last looked (a
        ``maxmemory-policy`` other than ``noeviction``, set or changed at runtime; start-up refuses one in
        production). Any eviction may have taken ours — a volatile-* policy takes the day's funding ledger, the
        only key of ours with a time-to-live, first. What was seen is kept in Redis with Redis' ``run_id``
        (``{p}:state:evictions``), so an eviction while no worker ran is caught by the next one; a restarted
        Redis (new ``run_id``, counters at zero) starts a new count. Raises ``StateLost`` (``evicted``)."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.info("stats")
            pipe.info("server")
            pipe.get(self._keys.state_evictions)
            stats, server, stored = pipe.execute()
        evicted, run_id = int(stats.get("evicted_keys", 0)), str(server.get("run_id", ""))
        seen = stored.decode() if isinstance(stored, bytes) else (stored or "")
        seen_run, _, seen_count = seen.partition(":")
        if seen_run == run_id and seen_count.isdigit() and evicted > int(seen_count):
            policy = self._redis.info("memory").get("maxmemory_policy", "?")
            # counted once: the halt this raises stops every worker until ``provisioner recover``, after which the
            # deployment starts again from this count instead of halting again at its first check
            self._redis.set(self._keys.state_evictions, f"{run_id}:{evicted}")
            raise StateLost(
                "evicted",
                f"Redis evicted {evicted - int(seen_count)} key(s) since a worker last looked (maxmemory-policy "
                f"{policy} now): some of our state may be gone; keep maxmemory-policy noeviction and run "
                "`provisioner recover`",
            )
        if seen != f"{run_id}:{evicted}":
            self._redis.set(self._keys.state_evictions, f"{run_id}:{evicted}")

    def adopt_successor(self) -> bool:
        """After a guarded write refused with "changed": whether Redis now holds an operator's recovered epoch that
        names ours as its predecessor (``provisioner recover`` on a sound state, say to adopt sub-accounts), in
        which case this process carries on in it. Raises ``StateLost`` if Redis holds nothing or is halted."""
        with self._lock:
            current = self._read()
            if current is None or self._epoch is None or not self._succeeds(current, self._epoch):
                return False
            self._epoch = current
            return True

    def _succeeds(self, current: Epoch, ours: Epoch) -> bool:
        return current.mode == "recovered" and current.recovered_from == ours.id and current.writes >= self._hwm

    def distrust(self, reason: str) -> None:
        """The exchange contradicted what the settings say of it (a repeated clientOid executed again, a ledger
        slower than its bound): from now on no worker re-sends a transfer to learn its outcome, and the ledger's
        silence proves nothing (``distrust_reason``), until an operator clears it (``provisioner state trust``)."""
        self._redis.hset(self._key, mapping={"distrust": reason[:500], "distrust_ms": str(self._now_ms())})

    def distrust_reason(self) -> str | None:
        """Why transfers are settled as if the exchange's behaviour were unknown (``None``: the settings hold)."""
        reason = self._redis.hget(self._key, "distrust")
        return str(reason) if reason else None

    def trust(self) -> None:
        self._redis.hdel(self._key, "distrust", "distrust_ms")

    def halt(self, reason: str) -> None:
        """Stop every worker of the deployment until an operator recovers (best effort: Redis may be gone)."""
        with contextlib.suppress(redis.RedisError):
            self._redis.hset(self._key, mapping={"halted": reason[:500], "halted_ms": str(self._now_ms())})

    def status(self) -> dict[str, Any]:
        """What Redis and the mirror say, for ``provisioner recover`` and the metrics (never raises on a loss)."""
        stored = self._redis.hgetall(self._key)
        mirrored = self._mirror.read() if self._mirror is not None else None
        return {
            "redis": stored,
            "mirror": None if mirrored is None else {"epoch": mirrored.epoch, "writes": mirrored.writes},
            "mirror_path": str(self._mirror.path) if self._mirror is not None else None,
        }

    def recorded_naming(self) -> str | None:
        """The naming fingerprint the deployment's state records (``None``: none yet)."""
        return _optional_str(self._redis.hget(self._key, "naming"))

    def recover(self, *, reason: str, replace_naming: bool = False) -> Epoch:
        """An operator's recovery: a new epoch in ``recovered`` mode, the halt lifted, in one atomic step (the write
        counter is left as it is: workers still writing meanwhile must not see it go back). Other hosts' mirrors
        accept the new epoch by its recovery time, running workers by its ``recovered_from``."""
        with self._lock:
            if self._naming is not None:
                # the operator's recovery names the deployment where nothing does (after a loss); another recorded
                # value is replaced only when the operator says so (a stray recovery's: ``worker.recovery``)
                if not replace_naming:
                    check_naming(self._redis, self._keys, self._naming, record=False)  # another: NamingMismatch
                self._redis.hset(self._key, "naming", self._naming)
            now = self._now_ms()
            epoch_id = uuid.uuid4().hex
            previous, writes, created = self._recover_script(keys=[self._key], args=[epoch_id, now, reason[:500]])
            epoch = Epoch(
                epoch_id,
                "recovered",
                int(writes),
                int(created or now),
                now,
                recovered_from=str(previous) if previous else None,
            )
            self._epoch = epoch
            self._hwm = max(self._hwm, epoch.writes)
            if self._mirror is not None:
                self._mirror.record(epoch.id, epoch.writes, now, replace=True)
            return epoch

    # --- internals ------------------------------------------------------------------------------------------

    def _read(self) -> Epoch | None:
        raw = self._redis.hgetall(self._key)
        if not raw.get("epoch"):
            if raw.get("halted"):
                raise StateLost("halted", str(raw["halted"]))
            return None
        if raw.get("halted"):
            raise StateLost("halted", str(raw["halted"]))
        recovered = raw.get("recovered_ms")
        return Epoch(
            id=str(raw["epoch"]),
            mode=str(raw.get("mode") or "fresh"),
            writes=int(raw.get("writes") or 0),
            created_ms=int(raw.get("created_ms") or 0),
            recovered_ms=int(recovered) if recovered else None,
            recovered_from=str(raw["recovered_from"]) if raw.get("recovered_from") else None,
        )

    def _create(self, now: int, *, ask_exchange: bool) -> Epoch:
        """A fresh epoch, unless the exchange shows sub-accounts of ours (then our state was lost)."""
        if ask_exchange and not self._redis.exists(self._keys.customers) and self.traces is not None:
            found = self.traces()
            if found:
                raise StateLost(
                    "traces",
                    f"Redis holds no state of ours, but the exchange does ({found}): our state was lost; "
                    "run `provisioner recover`",
                )
        epoch_id = uuid.uuid4().hex
        if self._redis.hsetnx(self._key, "epoch", epoch_id):
            self._redis.hset(self._key, mapping={"mode": "fresh", "created_ms": str(now), "writes": "0"})
        created = self._read()
        if created is None:  # pragma: no cover - HSETNX either set it or found another process's
            raise StateLost("missing", "the state epoch could not be created")
        return created

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
