"""HTTP/1.1 to origins: one GET at a time per kept-alive connection, parsed by httptools.

Why not httpx: for a cold thumbnail the origin fetch was half of the event loop's work
(httpx -> httpcore -> h11, all Python, several objects and locks per request). An asyncio
protocol fed straight into llhttp (httptools, C; uvicorn's own parser) does the same GET
for about an eighth of the CPU on a 290 KB source (``bench/NOTES.md``, "origin client").

What it guarantees, whatever an origin sends:
- the status line and headers together are at most :data:`MAX_HEAD_BYTES`, and so is anything
  between body bytes (chunk framing, extensions, trailers), to within two :data:`FEED_SLICE`
  pieces (what the parser is fed at once): a 502 otherwise, so the parser never holds more than
  that plus one socket read;
- at most :data:`HIGH_WATER` body bytes wait unread: reading pauses until the consumer
  (the fetcher, which applies the byte cap and content decoding) has taken them;
- a response cut short (closed before its declared length or last chunk), malformed, or
  with bytes after it is an :class:`OriginProtocolError`; only a connection whose response
  was read whole, that the origin keeps alive and that stays silent, is reused.

Dialing, and so the SSRF guard, is not here: :class:`OriginPool` is given the dial.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import httptools

MAX_HEAD_BYTES = 64 * 1024
# What the parser is fed at once, so that bytes between body bytes are bounded to within
# 2 x FEED_SLICE of MAX_HEAD_BYTES, however the origin's bytes fall into socket reads.
FEED_SLICE = 16 * 1024
HIGH_WATER = 1024 * 1024
KEEPALIVE_SECONDS = 5.0
MAX_IDLE = 20
_NO_BODY_STATUSES = frozenset({204, 304})


class OriginProtocolError(Exception):
    """The origin's bytes are not a usable HTTP/1.1 response."""

    def __init__(self, message: str, *, before_response: bool = False) -> None:
        super().__init__(message)
        self.before_response = before_response  # nothing at all came back


@dataclass(frozen=True)
class ResponseHead:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header's values joined with ", "


class OriginConnection(asyncio.Protocol):
    """One connection; :meth:`send` a request head, then read :meth:`body`."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._state = "idle"  # idle -> head -> body -> done; "closed" once the connection is gone
        self._unproductive = 0
        self._headers: dict[str, str] = {}
        self._head: asyncio.Future[ResponseHead] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: OriginProtocolError | None = None
        self._close_delimited = False
        self._junk = False
        self._keep_alive = False
        self.received_any = False
        self.idle_since = time.monotonic()

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._state not in ("head", "body"):
            self._stray()
            return
        self.received_any = True
        # Fed FEED_SLICE bytes at a time: a body byte anywhere in what is fed forgives all of it,
        # so one socket read fed whole (up to 256 KiB, more bytes per read the busier the loop)
        # let a chunk extension of 4 x MAX_HEAD_BYTES through whenever a body byte came with it.
        view = memoryview(data)
        for start in range(0, len(view), FEED_SLICE):
            piece = view[start : start + FEED_SLICE]
            # Bytes since the head ended or the last body byte: what the parser may be holding.
            self._unproductive += len(piece)
            try:
                self._parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                self._fail("the origin switched protocols")
                return
            except httptools.HttpParserError as exc:
                self._fail(f"malformed response from the origin ({exc})")
                return
            if self._state == "head" and self._unproductive > MAX_HEAD_BYTES:
                self._fail(f"the origin's response head is over {MAX_HEAD_BYTES} bytes")
                return
            if self._state == "body" and self._unproductive > MAX_HEAD_BYTES:
                self._fail(f"over {MAX_HEAD_BYTES} bytes from the origin without any body (trailers, chunk extensions)")
                return

    def eof_received(self) -> bool:
        self._ended()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._state in ("head", "body"):
            # A reset (or any error) is never the end of a body framed by the connection's end.
            before = self._state == "head" and not self.received_any
            self._fail(f"the connection to the origin was reset ({type(exc).__name__})", before)
            return
        self._ended()

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._state == "done":
            self._stray()  # a second response in the same bytes: ignored, connection dropped

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._state != "head":
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        if self._state != "head":
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._headers = {}  # an interim response: the real one follows
            return
        self._state = "body"
        self._unproductive = 0
        self._keep_alive = self._parser.should_keep_alive()  # read here: later it reflects parser state
        headers, self._headers = self._headers, {}
        self._close_delimited = (
            "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in _NO_BODY_STATUSES
        )
        if self._head is not None and not self._head.done():
            self._head.set_result(ResponseHead(status, headers))

    def on_body(self, body: bytes) -> None:
        if self._state != "body":
            return
        self._unproductive = 0
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._state == "body":
            self._state = "done"
            self._wake()

    # -- the consumer's side ----------------------------------------------------------
    async def send(self, request_head: bytes) -> ResponseHead:
        """Write a request head; the response's status and headers."""
        if self._state != "idle" or self._transport is None or self._transport.is_closing():
            raise OriginProtocolError("the connection is closed", before_response=True)
        self._state = "head"
        self._parser = httptools.HttpResponseParser(self)
        self._unproductive = 0
        self.received_any = False
        self._head = asyncio.get_running_loop().create_future()
        self._transport.write(request_head)
        return await self._head

    async def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked coding undone, content coding left as sent)."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= HIGH_WATER // 2 and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                yield chunk
            elif self._state == "done":
                return
            elif self._error is not None:
                raise self._error
            else:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None

    @property
    def reusable(self) -> bool:
        return (
            self._state == "done" and not self._junk and not self._chunks and self._transport is not None
            and not self._transport.is_closing() and self._keep_alive
        )

    @property
    def reusable_idle(self) -> bool:
        return (self._state == "idle" and not self._junk and self._transport is not None
                and not self._transport.is_closing())

    def ready(self) -> None:
        """Back to idle after a response read whole (the pool calls this before reuse)."""
        self._state = "idle"
        self.idle_since = time.monotonic()

    def close(self) -> None:
        """Close at once. Not ``transport.close()``: over TLS that waits for the origin's
        close_notify (asyncio's ssl_shutdown_timeout, 30 s), so an origin that never answers
        kept each finished fetch's socket that long. Nothing is left to send (the request was
        written whole before any answer) and a response is judged on its framing, never on how
        the connection ends after it."""
        if self._transport is not None:
            self._transport.abort()

    def abandon(self) -> None:
        """Close, dropping the body bytes the consumer will never read: this protocol and its
        parser refer to each other, so a closed connection is freed only by the cyclic GC, and
        until then it kept up to :data:`HIGH_WATER` unread bytes of each failed fetch."""
        self._chunks.clear()
        self._buffered = 0
        self.close()

    # -- internals ------------------------------------------------------------------
    def _ended(self) -> None:
        """The origin closed its side: the end of a close-delimited body, or an error."""
        if self._state == "body" and self._close_delimited:
            self._state = "done"
        elif self._state in ("head", "body"):
            before = self._state == "head" and not self.received_any
            self._fail("the origin closed the connection before the response was complete", before)
            return
        self._wake()

    def _stray(self) -> None:
        """Bytes the origin sent outside any response: this connection is never reused."""
        self._junk = True
        self.close()

    def _fail(self, message: str, before_response: bool = False) -> None:
        if self._error is None:
            self._error = OriginProtocolError(message, before_response=before_response)
        self._state = "closed"
        if self._head is not None and not self._head.done():
            self._head.set_exception(self._error)
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


Dial = Callable[[str, str, int], Awaitable[OriginConnection]]  # (scheme, host, port)


class OriginPool:
    """Kept-alive connections by (scheme, host, port), reused for :data:`KEEPALIVE_SECONDS`."""

    def __init__(self, dial: Dial) -> None:
        self._dial = dial
        self._idle: dict[tuple[str, str, int], list[OriginConnection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    @contextlib.asynccontextmanager
    async def get(
        self, scheme: str, host: str, port: int, request_head: bytes
    ) -> AsyncIterator[tuple[ResponseHead, OriginConnection]]:
        """Send one GET; the response's head and its connection, given back (or closed) after."""
        key = (scheme, host, port)
        connection = self._take(key)
        reused = connection is not None
        if connection is None:
            connection = await self._dial(scheme, host, port)
        try:
            head = await connection.send(request_head)
        except OriginProtocolError as exc:
            connection.close()
            if not (reused and exc.before_response):
                raise
            # A kept-alive connection the origin had already dropped: once more, on a new one.
            connection = await self._dial(scheme, host, port)
            try:
                head = await connection.send(request_head)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        try:
            yield head, connection
        except BaseException:
            connection.abandon()
            raise
        self._sweep()
        if connection.reusable and sum(map(len, self._idle.values())) < MAX_IDLE:
            connection.ready()
            self._idle.setdefault(key, []).append(connection)
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS, self._swept)
        else:
            connection.close()

    def _take(self, key: tuple[str, str, int]) -> OriginConnection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < KEEPALIVE_SECONDS and connection.reusable_idle:
                return connection
            connection.close()
        return None

    def _sweep(self) -> None:
        """Close the idle connections past :data:`KEEPALIVE_SECONDS` or no longer usable, of
        every host: left to the next request to their own host, they held their sockets open
        indefinitely and, once :data:`MAX_IDLE` of them piled up, no connection to any other
        host was kept alive again."""
        now = time.monotonic()
        for key in list(self._idle):
            kept = []
            for connection in self._idle[key]:
                if now - connection.idle_since < KEEPALIVE_SECONDS and connection.reusable_idle:
                    kept.append(connection)
                else:
                    connection.close()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    def _swept(self) -> None:
        """The timer's sweep (no request may come to do it); again while anything is idle."""
        self._sweeper = None
        self._sweep()
        if self._idle:
            self._sweeper = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS, self._swept)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
