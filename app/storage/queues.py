"""Storage of message queues: each function is one Lua script or one read-only round trip, and
decodes what Redis answers into the typed results below.

The layout (documented with the other keys in `keys.py`): per queue a config hash, a `ready`
sorted set scored by the time each message becomes available, an `inflight` sorted set scored by
lock expiry, a `dead` sorted set, and hashes of bodies and per-message metadata.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from app.storage import keys
from app.storage.client import Store
from app.storage.scripts import Script

NO_NEXT = -1  # what the scripts answer for "no time" (nothing waiting, released to the dead letters)

_PUT = Script("queue_put")
_PUSH = Script("queue_push")
_RECEIVE = Script("queue_receive")
_ACK = Script("queue_ack")
_VISIBILITY = Script("queue_visibility")
_STATS = Script("queue_stats")
_DELETE = Script("queue_delete")
_SWEEP = Script("queue_sweep")
_REDRIVE = Script("queue_redrive")
_PURGE = Script("queue_purge")


class Acked(StrEnum):
    """What acknowledging one message did."""

    ACKED = "acked"
    NOT_FOUND = "not_found"  # unknown, or already acknowledged
    STALE = "stale"  # received again since (or dead-lettered): the receipt is not the current one


_ACK_LETTERS = {"a": Acked.ACKED, "n": Acked.NOT_FOUND, "s": Acked.STALE}


class Received(NamedTuple):
    """A tuple rather than a frozen dataclass: a receive builds up to 100, a third of the cost each."""

    id: str
    receipt: str
    body: str
    receive_count: int
    enqueued_ms: int
    first_received_ms: int = 0
    attributes: str = ""  # message attributes as JSON text, "" for none


@dataclass(frozen=True)
class Stats:
    config: dict[str, str]
    visible: int
    in_flight: int
    delayed: int
    dead: int


@dataclass(frozen=True)
class StoredMessage:
    id: str
    body: str
    receive_count: int
    enqueued_ms: int
    available_ms: int
    receipt: str
    dead_ms: int | None = None


# The dead_letter_queue each queue's config names, as this process last saw it. The scripts that
# dead-letter need the target's keys (lua/_queue_dead_letter.lua) but only the config names it:
# they answer the name it holds when this guess is wrong, before writing anything, and run again.
# A stale guess costs a round trip, never a wrong move.
_dead_letter_queues: dict[str, str] = {}
_REDIRECTS_MAX = 5


def _dead_letter_inputs(name: str) -> tuple[dict[str, str], dict[str, str]]:
    target = _dead_letter_queues.get(name, "")
    own = keys.queue_keys(target or name)
    return ({"dlq_config": own["config"], "dlq_ready": own["ready"], "dlq_bodies": own["bodies"],
             "dlq_meta": own["meta"], "dlq_ages": own["ages"], "dlq_attrs": own["attrs"]},
            {"dead_letter_queue": target, "dlq_channel": channel(target or name)})


def _redirect(reply) -> str | None:
    """The target a dead-lettering script says the config names, when it refused the caller's."""
    if isinstance(reply, list) and len(reply) == 2 and reply[0] == "dead_letter_queue":
        return reply[1]
    return None


def _run_dead_lettering(store: Store, script: Script, name: str, args: dict) -> Any:
    """Run a script that may dead-letter, with the keys of the queue's dead_letter_queue."""
    for _ in range(_REDIRECTS_MAX):
        target_keys, target_args = _dead_letter_inputs(name)
        reply = store.run(script, keys={**keys.queue_keys(name), **target_keys}, args={**args, **target_args})
        target = _redirect(reply)
        if target is None:
            return reply
        _dead_letter_queues[name] = target
    raise RuntimeError(f"The dead_letter_queue of queue {name} keeps changing")


def dead_letter_queue(store: Store, name: str) -> str | None:
    """The queue's dead_letter_queue as its config names it (None: none, or no such queue)."""
    return store.redis.hget(keys.queue(name), "dead_letter_queue") or None


def channel(name: str) -> str:
    """The pub/sub channel that wakes the long polls of a queue."""
    return keys.notify_channel("queue", name)


def parse_meta(raw: str) -> tuple[int, int, int, str]:
    """(available_ms, enqueued_ms, receive_count, receipt) from a meta hash value (which may
    end with the first receive's time, see keys.py)."""
    avail, enq, count, rest = (raw.split(" ", 3) + [""])[:4]
    return int(avail), int(enq), int(count), rest.partition(" ")[0]


class Lock(NamedTuple):
    receipt: str  # of the receive that holds the message
    expiry_ms: int


class Visibility(NamedTuple):
    """What changing a lock did: `result` is "ok", "missing" (no such queue), "not_found" or
    "stale"; when ok, the time the message becomes visible, or None when it went to the dead letters."""

    result: str
    visible_at_ms: int | None = None


class Swept(NamedTuple):
    returned: int  # expired locks returned to ready
    dropped: int  # messages past the queue's retention


def put(store: Store, name: str, *, now_ms: int, defaults: dict[str, int], updates: dict[str, int]) -> bool:
    """Create or update a queue's config; True if it was created."""
    fields: list = []
    for field, value in [*defaults.items(), *updates.items()]:
        fields += [field, value]
    return bool(store.run(_PUT, keys={"config": keys.queue(name), "registry": keys.queues()},
                          args={"now_ms": now_ms, "name": name, "defaults": len(defaults), "fields": fields},
                          durable=True))


def push(store: Store, name: str, *, now_ms: int, id_suffix: str, defaults: dict[str, int],
         messages: Iterable[tuple[str, int | None]], attributes: Iterable[str] | None = None,
         existing: bool = False) -> list[str] | None:
    """Push (stored body, delay_ms or None for the queue's) pairs; the new ids in push order.
    `attributes`, when given, holds each message's attributes as JSON text ("" for none). With
    `existing`, nothing is pushed to a queue that does not exist (None), else it is created.

    Ids are the queue's counter in 12 hex digits plus id_suffix; a suffix shaped like the end of
    a UUID ("-4xxx-yxxx-xxxxxxxxxxxx") gets the UUID layout (see queue_push.lua)."""
    pairs: list = []
    for (body, delay_ms), attrs in zip(messages, attributes or itertools.repeat(""), strict=False):
        pairs += ["" if delay_ms is None else delay_ms, body, attrs]
    ids = store.run(_PUSH, keys={**keys.queue_keys(name), "registry": keys.queues()}, args={
        "now_ms": now_ms, "name": name, "channel": channel(name), "id_suffix": id_suffix,
        "visibility_timeout_ms": defaults["visibility_timeout_ms"], "max_receives": defaults["max_receives"],
        "retention_ms": defaults["retention_ms"], "delay_ms": defaults["delay_ms"],
        "existing": "1" if existing else "", "messages": pairs}, durable=True)
    if ids is None:
        return None
    return ids.split(" ") if ids else []


def receive(store: Store, name: str, *, now_ms: int, max_messages: int, visibility_timeout_ms: int | None,
            token: str) -> tuple[list[Received], int] | None:
    """Lock up to max_messages visible messages: (messages, next_ms), or None without such a queue.

    next_ms is, when nothing was received, the earliest time something may become visible
    (NO_NEXT when nothing is waiting or locked).
    """
    flat = _run_dead_lettering(store, _RECEIVE, name, {
        "now_ms": now_ms, "max": max_messages, "token": token,
        "visibility_timeout_ms": "" if visibility_timeout_ms is None else visibility_timeout_ms})
    if flat[0] == "missing":
        return None
    messages = []
    for packed in flat[2:]:
        message_id, receipt, count, enqueued_ms, first_ms, attributes, body = packed.split("\t", 6)
        messages.append(Received(message_id, receipt, body, int(count), int(enqueued_ms), int(first_ms), attributes))
    return messages, int(flat[1])


def ack(store: Store, name: str, items: list[tuple[str, str | None]]) -> list[Acked] | None:
    """Acknowledge (id, receipt or None) pairs, or None without such a queue."""
    pairs: list = []
    for message_id, receipt in items:
        pairs += [message_id, receipt or ""]
    reply = store.run(_ACK, keys=keys.queue_keys(name), args={"items": pairs})
    return None if reply[0] == "missing" else [_ACK_LETTERS[letter] for letter in reply[1]]


def lock(store: Store, name: str, message_id: str) -> Lock | None:
    """The lock of a message a receive holds (it may have just ended), or None; read-only.
    Acknowledging with its receipt then deletes the message only if not received since."""
    pipe = store.pipeline()
    pipe.zscore(keys.queue_inflight(name), message_id)
    pipe.hget(keys.queue_meta(name), message_id)
    expiry_ms, meta = pipe.execute()
    if expiry_ms is None or meta is None:
        return None
    receipt = parse_meta(meta)[3]
    return Lock(receipt, int(expiry_ms)) if receipt else None


def change_visibility(store: Store, name: str, message_id: str, receipt: str, *, now_ms: int,
                      visibility_timeout_ms: int) -> Visibility:
    reply = _run_dead_lettering(store, _VISIBILITY, name, {
        "now_ms": now_ms, "id": message_id, "receipt": receipt, "visibility_timeout_ms": visibility_timeout_ms,
        "channel": channel(name)})
    if reply[0] != "ok":
        return Visibility(reply[0])
    visible_at = int(reply[1])
    return Visibility("ok", None if visible_at == NO_NEXT else visible_at)


def stats(store: Store, name: str, *, now_ms: int) -> Stats | None:
    """The queue's config and counts (expired locks returned first), or None without such a queue."""
    return _to_stats(_run_dead_lettering(store, _STATS, name, {"now_ms": now_ms}))


def stats_many(store: Store, names: list[str], *, now_ms: int) -> list[Stats | None]:
    pipe = store.pipeline()
    for name in names:
        _pipe_dead_lettering(store, _STATS, name, {"now_ms": now_ms}, pipe)
    return [_to_stats(_settled(store, _STATS, name, {"now_ms": now_ms}, reply))
            for name, reply in zip(names, pipe.execute(), strict=True)]


def _pipe_dead_lettering(store: Store, script: Script, name: str, args: dict, pipe: Any) -> None:
    """Queue a dead-lettering script on `pipe` with the guessed target (see _settled)."""
    target_keys, target_args = _dead_letter_inputs(name)
    store.run(script, keys={**keys.queue_keys(name), **target_keys}, args={**args, **target_args}, pipeline=pipe)


def _settled(store: Store, script: Script, name: str, args: dict, reply: Any) -> Any:
    """A pipelined reply, or the script run again alone when it refused the guessed target."""
    target = _redirect(reply)
    if target is None:
        return reply
    _dead_letter_queues[name] = target
    return _run_dead_lettering(store, script, name, args)


def _to_stats(reply: list) -> Stats | None:
    if not reply:
        return None
    flat = reply[0]
    config = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
    return Stats(config, int(reply[1]), int(reply[2]), int(reply[3]), int(reply[4]))


def names(store: Store) -> list[str]:
    return sorted(store.redis.smembers(keys.queues()))


def iter_names(store: Store, count: int = 500) -> Iterator[str]:
    """Every queue name, without loading a huge registry at once."""
    yield from store.redis.sscan_iter(keys.queues(), count=count)


def delete(store: Store, name: str) -> bool:
    _dead_letter_queues.pop(name, None)
    return bool(store.run(_DELETE, keys={**keys.queue_keys(name), "registry": keys.queues()},
                          args={"name": name, "channel": channel(name)}))


def sweep_many(store: Store, names: list[str], *, now_ms: int, drop_limit: int) -> list[Swept]:
    """Sweep several queues in one round trip."""
    pipe = store.pipeline()
    args = [{"now_ms": now_ms, "channel": channel(name), "drop_limit": drop_limit} for name in names]
    for name, script_args in zip(names, args, strict=True):
        _pipe_dead_lettering(store, _SWEEP, name, script_args, pipe)
    replies = [_settled(store, _SWEEP, name, script_args, reply)
               for name, script_args, reply in zip(names, args, pipe.execute(), strict=True)]
    return [Swept(int(returned), int(dropped)) for returned, dropped in replies]


def redrive(store: Store, name: str, *, now_ms: int, limit: int) -> int | None:
    """Move up to `limit` dead letters back to the queue; None without such a queue."""
    moved = int(store.run(_REDRIVE, keys=keys.queue_keys(name),
                          args={"now_ms": now_ms, "limit": limit, "channel": channel(name)}, durable=True))
    return None if moved < 0 else moved


def dead(store: Store, name: str, *, limit: int) -> list[StoredMessage]:
    """The oldest dead letters, read-only (a message acknowledged meanwhile is left out)."""
    entries = store.redis.zrange(keys.queue_dead(name), 0, limit - 1, withscores=True)
    if not entries:
        return []
    ids = [message_id for message_id, _ in entries]
    pipe = store.pipeline()
    pipe.hmget(keys.queue_bodies(name), ids)
    pipe.hmget(keys.queue_meta(name), ids)
    bodies, metas = pipe.execute()
    messages = []
    for (message_id, dead_ms), body, meta in zip(entries, bodies, metas, strict=True):
        if body is None or meta is None:
            continue
        avail, enq, count, receipt = parse_meta(meta)
        messages.append(StoredMessage(message_id, body, count, enq, avail, receipt, int(dead_ms)))
    return messages


def purge(store: Store, name: str) -> bool:
    """Delete every message of the queue, keeping its config; False without such a queue."""
    return bool(store.run(_PURGE, keys=keys.queue_keys(name), args={}))


def config_fields(store: Store, name: str, *fields: str) -> list[str | None] | None:
    """Some fields of a queue's config, or None without such a queue; read-only."""
    values = store.redis.hmget(keys.queue(name), ["created_ms", *fields])
    return None if values[0] is None else values[1:]


def dead_letter_sources(store: Store, target: str) -> list[str]:
    """The queues whose config names `target` as dead_letter_queue, by name; read-only."""
    names = sorted(store.redis.smembers(keys.queues()))
    pipe = store.pipeline()
    for name in names:
        pipe.hget(keys.queue(name), "dead_letter_queue")
    return [name for name, named in zip(names, pipe.execute(), strict=True) if named == target]


def exists(store: Store, name: str) -> bool:
    return bool(store.redis.exists(keys.queue(name)))
