"""What the Redis broker sends once an enqueue commits: one job in one command (a Lua script),
many in one pipeline (``Store.push``).

The one-by-one enqueue is the common case, and redis-py's pipeline of six commands cost it
more Python than the job's INSERT. Both leave Redis in the same state.
"""

import threading
import time
from collections.abc import Sequence
from importlib import resources

from django_jobs.brokers.redis.store import MAX_TOKENS, Entry, Store

_scripts: dict[int, object] = {}  # id(Redis client) -> push_one.lua, registered once
_lock = threading.Lock()


def push(store: Store, entries: Sequence[Entry], now_ms: int | None = None) -> None:
    """Add ``entries`` to their ready (or delayed) sets and wake workers: one round trip."""
    if len(entries) != 1:
        store.push(entries, now_ms)
        return
    entry, keys = entries[0], store.keys
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if entry.run_after <= now_ms:
        script_keys = [
            keys.queues,
            keys.ready(entry.queue),
            keys.wakeup(entry.queue),
            keys.wakeup_all,
        ]
        args = [entry.queue, entry.ready_score, entry.id, MAX_TOKENS]
    else:
        script_keys = [keys.queues, keys.delayed(entry.queue)]
        args = [entry.queue, entry.run_after, entry.delayed_member, MAX_TOKENS]
    _script(store)(keys=script_keys, args=args)


def _script(store: Store):
    script = _scripts.get(id(store.redis))
    if script is None:
        with _lock:
            text = resources.files(__package__).joinpath("lua", "push_one.lua").read_text()
            script = _scripts[id(store.redis)] = store.redis.register_script(text)
    return script
