"""Per-user abuse limits on chat turns, shared by every worker and replica.

Two limits: turns started per fixed window (``CHAT_RATE_LIMIT`` per
``CHAT_RATE_WINDOW_SECONDS``), and turns running at once (``CHAT_MAX_CONCURRENT``; each holds a
worker thread for as long as the model and the tools take, streamed or not). Both answer 429
with ``Retry-After``. The counters live in PostgreSQL, or in Redis when ``REDIS_URL`` is set;
Redis is optional, and when it fails the limits are skipped (logged) rather than the chat.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import case, delete, func, select, text
from sqlalchemy.dialects import postgresql

from gateway.database import unit_of_work
from gateway.errors import GatewayError
from gateway.extensions import db
from gateway.models import RateWindow, TurnLease, utcnow
from gateway.services import get_services

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# Namespace of the per-user transaction locks that make "count, then insert" atomic.
LEASE_LOCK_CLASS = 0x6C6D74  # "lmt"
# A turn usually ends within seconds: that is when a slot is likely to free up.
CONCURRENCY_RETRY_AFTER = 5
REDIS_TIMEOUT = 1.0
T = TypeVar("T")


class ChatRateLimited(GatewayError):
    code = 429
    error_type = "rate_limited"
    description = "Too many chat messages; slow down and retry after the given delay."

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)})


class TooManyConcurrentTurns(GatewayError):
    code = 429
    error_type = "too_many_concurrent_turns"
    description = "Too many of your chat turns are running at once; wait for one to finish."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER)})


class Counters(Protocol):
    """Where the limits are counted."""

    def hit(self, key: str, limit: int, window: int) -> int | None:
        """Count one request; the seconds to wait when it is over ``limit``, else None."""

    def acquire(self, user_id: uuid.UUID, cap: int, ttl: int) -> str | None:
        """A lease id for one more running turn, or None when ``cap`` are running."""

    def release(self, user_id: uuid.UUID, lease: str) -> None: ...


class DatabaseCounters:
    """Counters in the gateway's own database: nothing more to run."""

    @unit_of_work()
    def hit(self, key: str, limit: int, window: int) -> int | None:
        now = utcnow()
        expired = RateWindow.window_start <= now - timedelta(seconds=window)
        statement = (
            postgresql.insert(RateWindow)
            .values(key=key, count=1, window_start=now)
            .on_conflict_do_update(
                index_elements=[RateWindow.key],
                set_={
                    "count": case((expired, 1), else_=RateWindow.count + 1),
                    "window_start": case((expired, now), else_=RateWindow.window_start),
                },
            )
            .returning(RateWindow.count, RateWindow.window_start)
        )
        count, started = db.session.execute(statement).one()
        if count <= limit:
            return None
        remaining = (started + timedelta(seconds=window) - now).total_seconds()
        return max(1, math.ceil(remaining))

    @unit_of_work()
    def acquire(self, user_id: uuid.UUID, cap: int, ttl: int) -> str | None:
        now = utcnow()
        # Held to the commit: two workers cannot both see the last free slot.
        lock = zlib.crc32(user_id.bytes) - 2**31
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :key)"),
            {"cls": LEASE_LOCK_CLASS, "key": lock},
        )
        db.session.execute(
            delete(TurnLease).where(TurnLease.user_id == user_id, TurnLease.expires_at < now)
        )
        running = db.session.scalar(
            select(func.count()).select_from(TurnLease).where(TurnLease.user_id == user_id)
        )
        if (running or 0) >= cap:
            return None
        # The id made here: reading lease.id after the commit would load the row again.
        lease_id = uuid.uuid4()
        db.session.add(
            TurnLease(id=lease_id, user_id=user_id, expires_at=now + timedelta(seconds=ttl))
        )
        return str(lease_id)

    @unit_of_work()
    def release(self, user_id: uuid.UUID, lease: str) -> None:
        db.session.execute(delete(TurnLease).where(TurnLease.id == uuid.UUID(lease)))


# Drop expired leases, then add one if there is room; atomic inside Redis.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisCounters:
    """Counters in Redis, for deployments that already run one."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._acquire = self._redis.register_script(_ACQUIRE)

    def hit(self, key: str, limit: int, window: int) -> int | None:
        name = f"gateway:rate:{key}"
        pipe = self._redis.pipeline()
        pipe.set(name, 0, ex=window, nx=True)  # the window starts with the first request
        pipe.incr(name)
        pipe.ttl(name)
        _, count, ttl = pipe.execute()
        return None if count <= limit else max(1, int(ttl))

    def acquire(self, user_id: uuid.UUID, cap: int, ttl: int) -> str | None:
        now = utcnow().timestamp()
        lease = uuid.uuid4().hex
        keys = [f"gateway:turns:{user_id}"]
        added = self._acquire(keys=keys, args=[now, cap, now + ttl, lease, ttl])
        return lease if added else None

    def release(self, user_id: uuid.UUID, lease: str) -> None:
        self._redis.zrem(f"gateway:turns:{user_id}", lease)

    def close(self) -> None:
        self._redis.close()


class TurnSlot:
    """A running turn's place under the concurrency cap; release it exactly once."""

    def __init__(self, counters: Counters | None, user_id: uuid.UUID, lease: str | None) -> None:
        self._counters = counters
        self._user_id = user_id
        self._lease = lease
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is None or self._counters is None:
            return
        try:
            self._counters.release(self._user_id, lease)
        except Exception:  # the lease expires on its own; the turn's answer matters more
            log.warning("could not release turn lease %s; it will expire", lease, exc_info=True)


def admit_turn(user_id: uuid.UUID) -> TurnSlot:
    """Refuse (429) a turn over the user's rate or concurrency limit, else hold a slot for it."""
    services = get_services()
    settings = services.settings.limits
    counters = services.counters
    if settings.chat_rate_limit:
        wait = _guarded(
            lambda: counters.hit(
                f"chat:{user_id}", settings.chat_rate_limit, settings.chat_rate_window_seconds
            ),
            counters,
        )
        if wait is not None:
            raise ChatRateLimited(retry_after=wait)
    if not settings.chat_max_concurrent:
        return TurnSlot(None, user_id, None)
    lease = _guarded(
        lambda: counters.acquire(
            user_id, settings.chat_max_concurrent, settings.chat_lease_seconds
        ),
        counters,
        skipped="",
    )
    if lease is None:
        raise TooManyConcurrentTurns()
    return TurnSlot(counters, user_id, lease or None)


def _guarded(call: Callable[[], T], counters: Counters, skipped: Any = None) -> T:
    """Database errors propagate (503); a failing Redis is logged and the limit skipped."""
    if isinstance(counters, DatabaseCounters):
        return call()
    try:
        return call()
    except Exception:
        log.warning("rate limiter (Redis) unavailable; limit skipped", exc_info=True)
        return skipped


def counters_for(redis_url: str | None) -> Counters:
    """Redis counters when REDIS_URL is set, else PostgreSQL ones (one per process: a Redis
    client is not shared across a fork; gateway.services holds it)."""
    return RedisCounters(redis_url) if redis_url else DatabaseCounters()


def hit_rate_limit(key: str, limit: int, window: int) -> int | None:
    """Count one request under ``key``; the seconds to wait when over ``limit``, else None.

    Shares the chat limits' counters (PostgreSQL, or Redis when set); a failing Redis skips it.
    """
    counters = get_services().counters
    return _guarded(lambda: counters.hit(key, limit, window), counters)
