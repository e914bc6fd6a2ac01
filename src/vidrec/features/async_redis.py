"""Raw pipelined reads on the event loop: packed commands out to each node, replies back.

The request path reads Redis from an asyncio loop. redis-py's blocking client there needs a
worker thread per call, and that hop (executor, futures, a wake-up of the loop, the GIL going
back and forth) cost a quarter of a millisecond of a 500-key read's ~1 ms. These pools speak
the same protocol through ``redis.asyncio`` connections (AUTH and TLS from the same
:class:`~vidrec.config.RedisConfig`), so a read is one write and a few reads per node, all on
the loop. Pools belong to the loop that made them: a new loop (tests) gets new pools.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import hiredis
import redis
import redis.asyncio

from vidrec.config import RedisConfig


async def _read_replies(conn: Any, n: int) -> list[Any]:
    """``n`` replies parsed by one ``hiredis.Reader`` straight from the connection's stream:
    ``read_response`` awaits once per reply, and 64 MGET replies paid that 64 times. Between
    commands the connection's own parser holds no buffered bytes, so nothing is skipped."""
    stream: asyncio.StreamReader = conn._reader
    parser = hiredis.Reader()
    replies: list[Any] = []
    while len(replies) < n:
        data = await stream.read(1 << 16)
        if not data:
            raise redis.ConnectionError("connection closed by the server while reading")
        parser.feed(data)
        reply = parser.gets()
        while reply is not False:
            if isinstance(reply, hiredis.ReplyError):
                raise redis.ResponseError(str(reply))  # MOVED/ASK too: the caller falls back
            replies.append(reply)
            if len(replies) == n:
                break
            reply = parser.gets()
    return replies


class AsyncPools:
    """Idle ``redis.asyncio`` connections by node address (``"host:port"``).

    redis-py's asyncio pool takes a lock, records pool metrics and polls the socket on every
    checkout, and its ``send_packed_command`` wraps each write in ``wait_for`` (a task); on a
    read of a millisecond that was a fifth of the client's CPU. The connections here come
    from redis-py (so AUTH, TLS and the handshake are its own) but are kept in a plain list
    and written to directly: a read's deadline is the caller's, which cancels it.
    """

    def __init__(self, cfg: RedisConfig) -> None:
        from vidrec.security.redis_conn import connection_kwargs

        self._scheme = "rediss" if cfg.tls else "redis"
        self._kwargs: dict[str, Any] = {
            "socket_timeout": cfg.socket_timeout_s,
            **connection_kwargs(cfg),
        }
        self._max_idle = cfg.max_concurrency
        self._factories: dict[str, redis.asyncio.ConnectionPool] = {}
        self._idle: dict[str, list[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _acquire(self, address: str) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._idle, self._loop = {}, loop
        idle = self._idle.setdefault(address, [])
        while idle:
            conn = idle.pop()
            reader = conn._reader
            if reader is not None and not reader.at_eof() and not reader._buffer:
                return conn
            await conn.disconnect(nowait=True)  # closed by the server, or bytes left over
        factory = self._factories.get(address)
        if factory is None:
            url = f"{self._scheme}://{address}/0"
            factory = self._factories[address] = redis.asyncio.ConnectionPool.from_url(
                url, **self._kwargs
            )
        conn = factory.make_connection()
        await conn.connect()
        return conn

    async def exchange(self, sends: Mapping[str, tuple[bytes, int]]) -> dict[str, list[Any]]:
        """Write ``packed`` to each address, then read its ``n`` replies: ``{address: replies}``.

        Every node gets its commands before any reply is read, so the nodes work in parallel.
        A connection whose replies were not all read (an error, a cancelled request) is
        closed, never kept with replies pending.
        """
        held: list[tuple[str, Any]] = []
        clean = False
        try:
            for address, (packed, _) in sends.items():
                conn = await self._acquire(address)
                held.append((address, conn))
                conn._writer.write(packed)
            out = {}
            for (address, (_, n)), (_, conn) in zip(sends.items(), held, strict=True):
                await conn._writer.drain()
                out[address] = await _read_replies(conn, n)
            clean = True
            return out
        except OSError as e:
            raise redis.ConnectionError(f"Redis read failed: {e}") from e
        finally:
            for address, conn in held:
                idle = self._idle.get(address)
                if clean and idle is not None and len(idle) < self._max_idle:
                    idle.append(conn)
                else:
                    await conn.disconnect(nowait=True)
