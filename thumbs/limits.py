"""Bounds on slow and greedy clients for `thumbs serve` without nginx in front.

- Header timeout: a connection must finish its request line and headers within
  THUMBS_HEADER_TIMEOUT seconds of connecting (or of starting its next request), or it is
  closed. uvicorn has no such timer of its own (its keep-alive timer only runs between
  requests), so this is a small subclass of its httptools protocol.
- Body timeouts: each chunk of a request body must arrive within THUMBS_BODY_TIMEOUT seconds,
  and the whole body within THUMBS_BODY_DEADLINE (a client dripping a byte just inside the chunk
  timeout would otherwise hold a request slot for days), or the request is answered 408 in the
  JSON contract.
- Concurrency: at most THUMBS_MAX_CONCURRENT_REQUESTS requests are handled at once per
  worker; the next ones get a JSON 503 with Retry-After at once instead of queueing.

nginx in front (the stack, compose) adds its own: client_header_timeout and
client_body_timeout (60 s), client_max_body_size (1 KB public, 1 MB internal) and buffering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from thumbs.settings import Settings


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers do not arrive in time.

    A module-level class (uvicorn hands it to worker processes by reference); the limit is a
    class attribute each process sets from its settings (:func:`apply_header_timeout`).
    """

    timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request the parser refuses (a broken request line, Content-Length and Transfer-Encoding
        together, a bad length) is answered in the JSON contract too, not uvicorn's plain text."""
        body = orjson.dumps({"error": "bad_request", "detail": msg})
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"cache-control: no-store\r\n",
                 b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def apply_header_timeout(seconds: float) -> type[HttpToolsProtocol]:
    HeaderTimeoutProtocol.timeout = seconds
    return HeaderTimeoutProtocol


def _json(status: int, error: str, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()) -> tuple[Message, Message]:
    body = orjson.dumps({"error": error, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *extra]
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})


class ClientLimits:
    """ASGI middleware: per-chunk and whole-body deadlines and a cap on requests in progress."""

    def __init__(self, app: ASGIApp, *, body_timeout: float, max_concurrent: int, body_deadline: float = 60.0) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.body_deadline = body_deadline
        self.max_concurrent = max_concurrent
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.max_concurrent:
            for message in _json(503, "overloaded", "too many requests in progress; retry shortly",
                                 [(b"retry-after", b"1")]):
                await send(message)
            return
        self.in_progress += 1
        started = False  # the app began its answer
        timed_out = False  # we answered 408 ourselves; the app is told the client left
        body_done = False
        body_ends_by: float | None = None  # set at the first read of the body

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out, body_ends_by
            if body_done or timed_out:
                return await receive() if not timed_out else {"type": "http.disconnect"}
            now = asyncio.get_running_loop().time()
            if body_ends_by is None:
                body_ends_by = now + self.body_deadline
            chunk_wait = min(self.body_timeout, max(0.0, body_ends_by - now))
            try:
                message = await asyncio.wait_for(receive(), chunk_wait)
            except TimeoutError:
                if started:
                    return {"type": "http.disconnect"}
                timed_out = True
                detail = (f"the request body stalled for more than {self.body_timeout:g} s"
                          if chunk_wait == self.body_timeout
                          else f"the request body took more than {self.body_deadline:g} s")
                for reply in _json(408, "request_timeout", detail, [(b"connection", b"close")]):
                    await send(reply)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the 408 went out already
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out:
                raise
            # The app met the disconnect we reported (e.g. ClientDisconnect); the client has its 408.
        finally:
            self.in_progress -= 1


def limited(app: ASGIApp, settings: Settings) -> ClientLimits:
    return ClientLimits(app, body_timeout=settings.body_timeout, body_deadline=settings.body_deadline,
                        max_concurrent=settings.max_concurrent_requests)
