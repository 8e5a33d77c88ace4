"""Hostile and broken HTTP/1.1 origins at the protocol level, through the proxy.

Each origin is a raw socket on loopback (:class:`tests.proxy.test_origin_http.ScriptedOrigin`)
answering with exactly the bytes, or the behaviour, a case gives. The contract for every case:
the status and JSON error the product promises (502 a bad answer, 504 the deadline, 413 a size
cap, 403 a redirect the policy refuses), within the fetch deadline, every connection closed
(the process has no more descriptors than before), nothing stored, and a failure remembered by
the negative cache exactly when its status is one of ``NEGATIVE_CACHEABLE``.

Covered elsewhere: redirects to private addresses (``test_ssrf``), content-coding bombs and
stacked codings (``test_hostile_origins``), the byte cap on identity bodies (``test_fetch``).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time
import zlib
from collections.abc import Callable

import pytest

from proxy.errors import NEGATIVE_CACHEABLE
from proxy.urls import cache_key
from proxy.variants import THUMB
from tests.proxy.conftest import running
from tests.proxy.test_origin_http import Script, ScriptedOrigin, reset, serve, until_closed
from tests.support import images
from tests.support.wait import wait_until
from thumbs.settings import Settings

__all__ = ["serve"]  # the raw-socket origins of the origin client's own tests

IMG = images.jpeg(images.photo(120, 80))
DEADLINE = 1.5  # fetch_timeout for every case: a case that waits for it is over in this long
SLACK = 1.0  # the render and the proxy's own work after the fetch, on a shared runner


def head(status: bytes, *headers: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(line + b"\r\n" for line in headers) + b"\r\n"


def ok(body: bytes = IMG) -> bytes:
    return head(b"200 OK", b"Content-Type: image/jpeg", b"Content-Length: %d" % len(body)) + body


def then_open(data: bytes) -> Script:
    """Send ``data``, then keep the connection open and silent."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await until_closed(reader)
    return answer


def endless(first: bytes, block: bytes, pause: float = 0.0) -> Script:
    """Send ``first``, then ``block`` again and again (every ``pause`` seconds) until the proxy hangs up.
    Each block yields to the loop the proxy shares: ``drain()`` does not until the socket's buffer is
    full, so a small block was sent some 75,000 times (4 MB, 0.37 s under load) before the proxy read
    a byte, and the endless-interim case was a 504 after the deadline now and then, not its 502."""
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(first)
        while True:
            writer.write(block)
            await writer.drain()
            await asyncio.sleep(pause)
    return answer


def dribble(data: bytes, every: float) -> Script:
    """One byte every ``every`` seconds: never idle for long, never done within the deadline."""
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for index in range(len(data)):
            writer.write(data[index : index + 1])
            await writer.drain()
            await asyncio.sleep(every)
    return answer


def then_reset(data: bytes) -> Script:
    """Send ``data``, then hang up with a TCP reset."""
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.05)
        await reset(writer)
    return answer


def chunked(body: bytes) -> bytes:
    return b"%x\r\n" % len(body) + body + b"\r\n"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


Replies = list[bytes | Script]


async def _check(make_settings: Callable[..., Settings], serve, replies: Replies, status: int, error: str | None,
                 *, within: float = SLACK, may_keep_alive: bool = False, remembered: bool | None = None,
                 **overrides: object) -> None:
    """One case through a fresh proxy: its answer, its time, and what it left behind.
    ``may_keep_alive``: the failure is the proxy's rule (redirects), not a broken exchange.
    ``remembered``: whether the negative cache keeps the failure (by default: its status is one
    it keeps)."""
    origin, port = await serve(replies)
    assert isinstance(origin, ScriptedOrigin)
    settings = make_settings(allowed_sources=[f"127.0.0.1:{port}"], fetch_timeout=DEADLINE, **overrides)
    source = f"http://127.0.0.1:{port}/a.jpg"
    async with running(settings) as proxy:
        service = proxy.proxy.service
        before = _fds()
        started = time.monotonic()
        response = await proxy.thumb(source)
        elapsed = time.monotonic() - started
        assert response.status_code == status, response.text
        if error is None:
            assert response.headers["content-type"] == "image/jpeg"
        else:
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"] == error, response.json()
        assert elapsed < within, f"answered after {elapsed:.2f} s"
        key = cache_key(source, THUMB)
        stored = service.store.path(key).is_file()  # type: ignore[attr-defined]
        assert stored == (status == 200) and (service.memory.get(key) is not None) == (status == 200)
        kept = service.negative.get_local(key)
        expected = status in NEGATIVE_CACHEABLE if remembered is None else remembered
        assert (kept.status if kept else None) == (status if expected else None)
        if status != 200 and not may_keep_alive:  # a broken exchange's connection is never reused
            assert not service.fetcher.pool._idle
        service.fetcher.pool.close()
        # Both ends of every connection closed: the proxy's, and the origin's once it saw the hang-up.
        await wait_until(lambda: _fds() <= before, 5, what=f"descriptors back to {before} (now {_fds()})")


@pytest.mark.parametrize(
    ("replies", "status", "error"),
    [
        pytest.param([head(b"100 Continue") + ok()], 200, None, id="100-continue"),
        pytest.param([head(b"103 Early Hints", b"Link: </a.css>; rel=preload") + ok()], 200, None, id="103"),
        pytest.param([head(b"100 Continue") + head(b"102 Processing") + head(b"103 Early Hints") + ok()], 200, None,
                     id="three-interim"),
        pytest.param([endless(b"", head(b"103 Early Hints", b"Link: </a.css>; rel=preload"))], 502, "origin_error",
                     id="endless-interim"),
        pytest.param([endless(b"", head(b"103 Early Hints"), pause=0.1)], 504, "origin_timeout",
                     id="slow-endless-interim"),
    ],
)
async def test_interim_responses(replies: Replies, status: int, error: str | None,
                                 make_settings: Callable[..., Settings], serve) -> None:
    await _check(make_settings, serve, replies, status, error, within=DEADLINE + SLACK)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(head(b"204 No Content"), id="204"),
        pytest.param(head(b"304 Not Modified", b'ETag: "x"'), id="304"),
        pytest.param(head(b"206 Partial Content", b"Content-Range: bytes 0-99/%d" % len(IMG), b"Content-Length: 100")
                     + IMG[:100], id="206-partial"),
        pytest.param(head(b"206 Partial Content", b"Content-Range: bytes 0-%d/%d" % (len(IMG) - 1, len(IMG)),
                          b"Content-Length: %d" % len(IMG)) + IMG, id="206-whole"),
        pytest.param(head(b"999 Odd", b"Content-Length: %d" % len(IMG)) + IMG, id="999"),
        pytest.param(head(b"600 Odd", b"Content-Length: %d" % len(IMG)) + IMG, id="600"),
        pytest.param(head(b"2000 Odd", b"Content-Length: %d" % len(IMG)) + IMG, id="four-digits"),
        pytest.param(IMG, id="http-0.9-no-status-line"),
        pytest.param(b"HTPT/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(IMG) + IMG, id="garbage-status-line"),
        pytest.param(bytes(range(256)) * 16, id="binary-garbage"),
        pytest.param(b"HTTP/2 200\r\ncontent-length: %d\r\n\r\n" % len(IMG) + IMG, id="http-2-status-line"),
        pytest.param(head(b"101 Switching Protocols", b"Upgrade: websocket", b"Connection: upgrade"), id="101"),
        # Refused by the parser's strictness, not by a rule of ours: a bare LF ends no line, and a
        # Connection: close on an interim response ends the exchange (llhttp, no leniency flags).
        pytest.param(b"HTTP/1.1 200 OK\nContent-Length: %d\n\n" % len(IMG) + IMG, id="bare-lf-lines"),
        pytest.param(head(b"100 Continue", b"Connection: close") + ok(), id="interim-with-connection-close"),
    ],
)
async def test_answers_that_are_no_image_response(reply: bytes, make_settings: Callable[..., Settings],
                                                  serve) -> None:
    await _check(make_settings, serve, [then_open(reply)], 502, "origin_error")


@pytest.mark.parametrize(
    ("replies", "status", "error"),
    [
        pytest.param([head(b"200 OK", b"Content-Length: %d" % (len(IMG) + 1000)) + IMG], 502, "origin_error",
                     id="length-over-the-body-then-close"),
        pytest.param([then_open(head(b"200 OK", b"Content-Length: %d" % (len(IMG) + 1000)) + IMG)], 504,
                     "origin_timeout", id="length-over-the-body-kept-open"),
        pytest.param([then_open(head(b"200 OK", b"Content-Length: %d" % (len(IMG) // 2)) + IMG)], 502,
                     "origin_error", id="length-under-the-body"),
        pytest.param([head(b"200 OK", b"Content-Length: %d" % len(IMG), b"Content-Length: %d" % (len(IMG) + 7)) + IMG],
                     502, "origin_error", id="two-lengths"),
        pytest.param([head(b"200 OK", b"Content-Length: %d, %d" % (len(IMG), len(IMG))) + IMG], 502, "origin_error",
                     id="length-list"),
        pytest.param([head(b"200 OK", b"Content-Length: -1") + IMG], 502, "origin_error", id="negative-length"),
        pytest.param([head(b"200 OK", b"Content-Length: 99999999999999999999999") + IMG], 502, "origin_error",
                     id="overflowing-length"),
        pytest.param([head(b"200 OK", b"Content-Length: 10", b"Transfer-Encoding: chunked") + chunked(IMG)
                      + b"0\r\n\r\n"], 502, "origin_error", id="length-and-chunked"),
        pytest.param([then_open(head(b"200 OK", b"Transfer-Encoding: chunked, identity") + chunked(IMG)
                                + b"0\r\n\r\n")], 502, "unsupported_encoding", id="chunked-not-last"),
        pytest.param([head(b"200 OK", b"Transfer-Encoding: chunked") + b"zz\r\n" + IMG], 502, "origin_error",
                     id="bad-chunk-size"),
        pytest.param([head(b"200 OK", b"Transfer-Encoding: chunked") + b"f" * 40 + b"\r\n" + IMG], 502,
                     "origin_error", id="overflowing-chunk-size"),
        pytest.param([head(b"200 OK", b"Transfer-Encoding: chunked") + b"%x;a=b;c=\"d\"\r\n" % len(IMG) + IMG
                      + b"\r\n0;x=y\r\n\r\n"], 200, None, id="chunk-extensions"),
        pytest.param([endless(head(b"200 OK", b"Transfer-Encoding: chunked") + b"10;a=", b"b" * 65536)], 502,
                     "origin_error", id="endless-chunk-extension"),
        pytest.param([endless(head(b"200 OK", b"Transfer-Encoding: chunked") + chunked(IMG) + b"0\r\n",
                              b"X-Trailer: v\r\n" * 1000)], 502, "origin_error", id="endless-trailer"),
        pytest.param([head(b"200 OK", b"Transfer-Encoding: chunked") + chunked(IMG)], 502, "origin_error",
                     id="no-last-chunk-then-close"),
        pytest.param([then_open(head(b"200 OK", b"Transfer-Encoding: chunked") + chunked(IMG))], 504,
                     "origin_timeout", id="no-last-chunk-kept-open"),
        # Framed by the connection's end: a clean close is the end (a cut image is the decoder's 422),
        # a reset is not.
        pytest.param([b"HTTP/1.0 200 OK\r\n\r\n" + IMG], 200, None, id="close-delimited"),
        pytest.param([b"HTTP/1.0 200 OK\r\n\r\n" + IMG[: len(IMG) // 2]], 422, "undecodable",
                     id="close-delimited-cut-by-a-close"),
        pytest.param([then_reset(b"HTTP/1.0 200 OK\r\n\r\n" + IMG[: len(IMG) // 2])], 502, "origin_error",
                     id="close-delimited-cut-by-a-reset"),
    ],
)
async def test_body_framing(replies: Replies, status: int, error: str | None,
                            make_settings: Callable[..., Settings], serve) -> None:
    await _check(make_settings, serve, replies, status, error, within=DEADLINE + SLACK)


@pytest.mark.parametrize(
    ("replies", "status", "error"),
    [
        pytest.param([b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(100_000)) + ok()[17:]],
                     502, "origin_error", id="100000-headers"),
        pytest.param([b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n" + ok()[17:]], 502, "origin_error",
                     id="10-MB-header-line"),
        pytest.param([dribble(ok(), every=0.2)], 504, "origin_timeout", id="head-dribbled"),
        pytest.param([dribble(ok(), every=0.9)], 504, "origin_timeout", id="head-one-byte-per-0.9-s"),
        pytest.param([head(b"200 OK", b"Content-Length: %d" % len(IMG)) + IMG[:10], dribble(IMG[10:], every=0.9)],
                     504, "origin_timeout", id="body-one-byte-per-0.9-s"),
        pytest.param([then_open(b"")], 504, "origin_timeout", id="never-answers"),
        pytest.param([b""], 502, "origin_error", id="hangs-up-at-once"),
        pytest.param([then_open(ok())], 200, None, id="answers-then-keeps-the-socket-open"),
        pytest.param([then_open(head(b"200 OK") + IMG)], 504, "origin_timeout",
                     id="close-delimited-body-kept-open"),
    ],
)
async def test_floods_dribbles_and_silence(replies: Replies, status: int, error: str | None,
                                           make_settings: Callable[..., Settings], serve) -> None:
    await _check(make_settings, serve, replies, status, error, within=DEADLINE + SLACK)


def _redirect(location: bytes) -> bytes:
    return head(b"302 Found", b"Location: " + location, b"Content-Length: 0")


@pytest.mark.parametrize(
    ("replies", "status", "error"),
    [
        pytest.param([_redirect(b"/a.jpg")] * 5, 502, "origin_error", id="loop"),
        pytest.param([_redirect(b"/b"), _redirect(b"/c"), _redirect(b"/d"), ok()], 200, None, id="three-hops"),
        pytest.param([_redirect(b"/b"), _redirect(b"/c"), _redirect(b"/d"), _redirect(b"/e"), ok()], 502,
                     "origin_error", id="four-hops"),
        pytest.param([_redirect(b"ftp://127.0.0.1/x.jpg")], 403, "source_not_allowed", id="ftp"),
        pytest.param([_redirect(b"file:///etc/passwd")], 403, "source_not_allowed", id="file"),
        pytest.param([_redirect(b"data:image/png;base64,iVBORw0KGgo=")], 403, "source_not_allowed", id="data"),
        pytest.param([_redirect(b"http://127.0.0.1:1/x.jpg")], 403, "source_not_allowed", id="another-port"),
        pytest.param([head(b"302 Found", b"Content-Length: 0")], 502, "origin_error", id="no-location"),
        pytest.param([endless(head(b"302 Found", b"Location: /b"), b"x" * 65536), ok()], 200, None,
                     id="endless-redirect-body"),
    ],
)
async def test_redirects(replies: Replies, status: int, error: str | None, make_settings: Callable[..., Settings],
                         serve) -> None:
    # Every failure here is the origin's answer, a refused redirect's 403 too: remembered.
    await _check(make_settings, serve, replies, status, error, may_keep_alive=True, max_redirects=3,
                 remembered=status != 200)


def _sync_flushed_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj()
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


CAP = 2_000_000


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(endless(head(b"200 OK", b"Content-Encoding: gzip") + gzip.compress(IMG), b"\0" * 65536),
                     id="gzip-then-endless-padding"),
        pytest.param(endless(head(b"200 OK", b"Content-Encoding: gzip", b"Transfer-Encoding: chunked")
                             + chunked(gzip.compress(IMG)), chunked(b"\0" * 65536)),
                     id="gzip-then-endless-padding-chunked"),
        pytest.param(endless(head(b"200 OK", b"Content-Encoding: deflate") + _sync_flushed_deflate(IMG),
                             b"\0\0\0\xff\xff" * 13_107), id="deflate-endless-empty-blocks"),
    ],
)
async def test_coded_bytes_that_decode_to_nothing_are_capped_as_sent(reply: Script,
                                                                      make_settings: Callable[..., Settings],
                                                                      serve) -> None:
    """Past a gzip stream's end (ignored as padding) or in empty deflate blocks, an origin's bytes
    decode to nothing, so the decoded-size cap never came: read for the whole deadline (1.9 GB in
    5 s on loopback, one core busy), then a 504. The bytes as sent count against the cap too."""
    await _check(make_settings, serve, [reply], 413, "too_large", max_source_bytes=CAP)


@pytest.mark.parametrize(
    ("coding", "status", "error"),
    [("gzip", 200, None), ("br", 502, "unsupported_encoding"), ("x-bogus", 502, "unsupported_encoding")],
)
async def test_content_codings(coding: str, status: int, error: str | None, make_settings: Callable[..., Settings],
                               serve) -> None:
    body = gzip.compress(IMG) if coding == "gzip" else IMG
    reply = head(b"200 OK", b"Content-Encoding: " + coding.encode(), b"Content-Length: %d" % len(body)) + body
    await _check(make_settings, serve, [reply], status, error)
