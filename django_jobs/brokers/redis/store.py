"""What the Redis broker keeps in Redis, and the commands and scripts that change it.

Keys, for a backend ``alias`` under ``redis_prefix`` P (``django_jobs`` by default):

``P:alias:queues``        SET   every queue name published to (workers serving "all queues")
``P:alias:ready:<q>``     ZSET  job id -> -priority * 1e13 + run_after ms: priority, then age
``P:alias:delayed:<q>``   ZSET  "<priority>|<job id>" -> run_after ms: promoted when due
``P:alias:inflight``      ZSET  job id -> lease deadline ms, from Redis pop to database claim
``P:alias:wakeup:<q>``    LIST  tokens that wake a worker serving queue q (blocking pop)
``P:alias:wakeup:*``      LIST  tokens that wake a worker serving every queue
``P:alias:synced``        STR   present while Redis holds a full copy (gone after data loss)

Redis only says "this id may be ready"; the database row decides. Scores are whole
milliseconds, exact in a double for every priority Django allows (-100 … 100).
"""

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import redis

#: Wake-up tokens kept per list: enough to wake every idle worker, bounded without workers.
MAX_TOKENS = 256
SCORE_PRIORITY = 10**13

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def client(url: str) -> redis.Redis:
    """The shared client (and connection pool) of ``url``, for every thread of the process."""
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
            )
        return _clients[url]


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Entry:
    """What Redis needs to know of one READY job."""

    id: str
    queue: str
    priority: int
    run_after: int  # epoch ms

    @classmethod
    def of(cls, job) -> "Entry":
        return cls(str(job.pk), job.queue_name, job.priority, epoch_ms(job.run_after))

    @property
    def ready_score(self) -> int:
        return -self.priority * SCORE_PRIORITY + self.run_after

    @property
    def delayed_member(self) -> str:
        return f"{self.priority}|{self.id}"


def delayed_id(member: bytes | str) -> str:
    text = member.decode() if isinstance(member, bytes) else member
    return text.split("|", 1)[1]


class Keys:
    def __init__(self, prefix: str, alias: str):
        self.base = f"{prefix}:{alias}"
        self.queues = f"{self.base}:queues"
        self.inflight = f"{self.base}:inflight"
        self.synced = f"{self.base}:synced"
        self.wakeup_all = f"{self.base}:wakeup:*"
        self.sweep_lock = f"{self.base}:lock:sweep"
        self.resync_lock = f"{self.base}:lock:resync"

    def ready(self, queue: str) -> str:
        return f"{self.base}:ready:{queue}"

    def delayed(self, queue: str) -> str:
        return f"{self.base}:delayed:{queue}"

    def wakeup(self, queue: str) -> str:
        return f"{self.base}:wakeup:{queue}"


class Store:
    """Redis commands of one backend; every multi-key change is one Lua script."""

    def __init__(self, url: str, prefix: str, alias: str):
        self.url = url
        self.redis = client(url)
        self.keys = Keys(prefix, alias)
        self._claim = self.redis.register_script(_lua("claim.lua"))
        self._sweep = self.redis.register_script(_lua("sweep.lua"))

    # --- publishing -----------------------------------------------------------------------
    def push(self, entries: Sequence[Entry], now_ms: int | None = None) -> None:
        """Add jobs to their ready (or delayed) sets and wake workers: one pipeline."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        ready: dict[str, dict[str, int]] = {}
        delayed: dict[str, dict[str, int]] = {}
        for entry in entries:
            if entry.run_after <= now_ms:
                ready.setdefault(entry.queue, {})[entry.id] = entry.ready_score
            else:
                delayed.setdefault(entry.queue, {})[entry.delayed_member] = entry.run_after
        pipe = self.redis.pipeline(transaction=False)
        if entries:
            pipe.sadd(self.keys.queues, *{entry.queue for entry in entries})
        for queue, members in ready.items():
            pipe.zadd(self.keys.ready(queue), members)
        for queue, members in delayed.items():
            pipe.zadd(self.keys.delayed(queue), members)
        self._wake(pipe, {queue: len(members) for queue, members in ready.items()})
        pipe.execute()

    def _wake(self, pipe, counts: dict[str, int]) -> None:
        """One token per ready job (bounded), on its queue's list and the every-queue list."""
        total = 0
        for queue, count in counts.items():
            tokens = min(count, MAX_TOKENS)
            total += tokens
            pipe.lpush(self.keys.wakeup(queue), *["1"] * tokens)
            pipe.ltrim(self.keys.wakeup(queue), 0, MAX_TOKENS - 1)
        if total:
            pipe.lpush(self.keys.wakeup_all, *["1"] * min(total, MAX_TOKENS))
            pipe.ltrim(self.keys.wakeup_all, 0, MAX_TOKENS - 1)

    # --- claiming -------------------------------------------------------------------------
    def queues(self) -> list[str]:
        return sorted(q.decode() for q in self.redis.smembers(self.keys.queues))

    def pop(
        self,
        queues: Sequence[str],
        limit: int,
        now_ms: int,
        lease_ms: int,
        settle: Sequence[str] = (),
    ) -> list[str]:
        """Run claim.lua: settle ``settle`` (drop them from in-flight), promote due delayed
        ids, move the best ``limit`` to in-flight."""
        keys = [
            self.keys.inflight,
            *(self.keys.ready(q) for q in queues),
            *(self.keys.delayed(q) for q in queues),
        ]
        ids = self._claim(keys=keys, args=[now_ms, limit, now_ms + lease_ms, *settle])
        return [i.decode() for i in ids]

    def settle(self, ids: Iterable[str]) -> None:
        """The database decided about these ids (claimed them, or they were not READY)."""
        ids = list(ids)
        if ids:
            self.redis.zrem(self.keys.inflight, *ids)

    def expire(self, ids: Iterable[str]) -> None:
        """End the in-flight lease of ``ids`` now: the next sweep hands them out again."""
        ids = list(ids)
        if ids:
            self.redis.zadd(self.keys.inflight, dict.fromkeys(ids, 0), xx=True)

    def forget_queue(self, queue: str) -> None:
        """Drop every ready and delayed id of ``queue`` (its rows were deleted wholesale)."""
        self.redis.delete(self.keys.ready(queue), self.keys.delayed(queue))

    # --- reconciling ----------------------------------------------------------------------
    def restore(self, entries: Sequence[Entry], now_ms: int, mode: str = "missing") -> int:
        """Run sweep.lua over ``entries`` (``queue`` "" means: drop from in-flight only)."""
        if not entries:
            return 0
        queues = sorted({e.queue for e in entries if e.queue})
        index = {queue: k for k, queue in enumerate(queues, start=1)}
        keys = [self.keys.inflight]
        for queue in queues:
            keys += [self.keys.ready(queue), self.keys.delayed(queue)]
        args: list = [now_ms, mode]
        for e in entries:
            args += [e.id, index.get(e.queue, 0), e.priority, e.run_after]
        added = self._sweep(keys=keys, args=args)
        if added:
            pipe = self.redis.pipeline(transaction=False)
            pipe.sadd(self.keys.queues, *queues)
            self._wake(pipe, dict.fromkeys(queues, 1))
            pipe.execute()
        return int(added)

    def expired(self, now_ms: int, limit: int) -> list[str]:
        """In-flight ids whose lease ran out: their claimer died before the database claim."""
        ids = self.redis.zrangebyscore(self.keys.inflight, "-inf", now_ms, start=0, num=limit)
        return [i.decode() for i in ids]

    def take_lock(self, key: str, seconds: float) -> bool:
        return bool(self.redis.set(key, "1", nx=True, px=max(int(seconds * 1000), 1)))


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", name).read_text()
