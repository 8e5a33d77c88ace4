"""Hostile images over HTTP: bombs, oversize and slow bodies, truncated and corrupt files,
polyglots and SVG. Each gets its documented status, bounded in time (pytest-timeout, not a
timing assertion) and in memory (peak RSS growth of this process, measured with getrusage).
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest
import pyvips

from proxy.pipeline import configure_libvips
from tests.proxy.conftest import Running, running
from tests.support import images
from tests.support.images import _png_chunk
from tests.support.memory import RssWindow
from tests.support.origin import Origin
from thumbs.settings import Settings

JPEG_END = b"\xff\xd9"
# Decoding any of these bombs at their declared size would need gigabytes.
MEMORY_BUDGET_MB = 200


def honest_zlib_bomb_png(side: int = 7000) -> bytes:
    """A real, valid PNG of ``side`` x ``side`` black pixels (147 MB raw), about 140 KB on the wire."""
    row = b"\0" + b"\0" * side * 3
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@pytest.mark.timeout(60)
async def test_pixel_bombs_are_413_and_memory_stays_bounded(make_settings: Callable[..., Settings],
                                                            origin: Origin, unique) -> None:
    bombs = {
        "png": images.png_bomb(), "jpeg": images.jpeg_bomb(), "gif": images.gif_bomb(), "webp": images.webp_bomb(),
        "png-wide": images.png_bomb(2_000_000, 30), "jpeg-wide": images.jpeg_bomb(65_000, 800),
        "tiff": _tiff_bomb(),
    }
    sources = {name: origin.add(unique(name), body) for name, body in bombs.items()}
    # VmRSS sampled over this test only (a lifetime peak could hide growth after a hungrier test).
    with RssWindow() as window:
        await _bombs_and_an_honest_png(make_settings, origin, unique, sources)
    assert window.growth_mb < MEMORY_BUDGET_MB, window.growth_mb


async def _bombs_and_an_honest_png(make_settings: Callable[..., Settings], origin: Origin, unique: Callable[[str], str],
                                   sources: dict[str, str]) -> None:
    async with running(make_settings(negative_ttl=0)) as proxy:
        responses = await asyncio.gather(*(proxy.thumb(source) for source in sources.values()))
        for name, response in zip(sources, responses, strict=True):
            assert response.status_code == 413, (name, response.text)
            assert response.json()["error"] == "too_many_pixels", name
        # An honest 49 MP PNG under the pixel cap is decoded in a stream, not into one buffer.
        honest = await proxy.thumb(origin.add(unique("honest.png"), honest_zlib_bomb_png()))
        assert honest.status_code == 200 and honest.content.endswith(JPEG_END)


def _tiff_bomb() -> bytes:
    data = bytearray(images.solid(16, 16).tiffsave_buffer())
    # Little-endian TIFF: patch ImageWidth (256) and ImageLength (257) in the first IFD.
    ifd = int.from_bytes(data[4:8], "little")
    for index in range(int.from_bytes(data[ifd : ifd + 2], "little")):
        entry = ifd + 2 + index * 12
        tag, kind = int.from_bytes(data[entry : entry + 2], "little"), int.from_bytes(data[entry + 2 : entry + 4],
                                                                                      "little")
        if tag in (256, 257):
            size = 4 if kind == 4 else 2
            data[entry + 8 : entry + 8 + size] = (60_000).to_bytes(size, "little")
    return bytes(data)


def grey_png(width: int, height: int) -> bytes:
    """A real, valid 8-bit grey PNG of black pixels, compressed a block of rows at a time: a
    1 x 50,000,000 one is 97 KB and a 50,000,000 x 1 one 49 KB (0.3 s each to build)."""
    row = b"\0" * (width + 1)
    per_block = max(1, (1 << 20) // len(row))
    compressor = zlib.compressobj(9)
    parts, left = [], height
    while left:
        count = min(per_block, left)
        parts.append(compressor.compress(row * count))
        left -= count
    parts.append(compressor.flush())
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts)) + \
        _png_chunk(b"IEND", b"")


async def measured_thumb(proxy: Running, source: str) -> tuple[httpx.Response, float, float]:
    """One thumbnail request: its response, the CPU seconds and the peak RSS growth (MB) it cost."""
    with RssWindow() as window:
        started = time.process_time()
        response = await proxy.thumb(source)
        cpu = time.process_time() - started
    return response, cpu, window.growth_mb


@pytest.mark.timeout(60)
async def test_a_side_over_the_limit_is_413_from_the_header(make_settings: Callable[..., Settings],
                                                            origin: Origin, unique) -> None:
    """Within the pixel, byte and decode caps, a 97 KB 1 x 50,000,000 PNG took 6.35 s of render CPU
    (rows cost ~130 ns each) and a 48.7 KB 50,000,000 x 1 one took a worker from 122 to 599 MB
    (libvips' row buffers follow the width). THUMBS_MAX_SOURCE_SIDE, 65,535 by default, refuses
    a longer side from the header, before any decoding."""
    shapes = [(1, 50_000_000), (50_000_000, 1), (1, 65_536), (65_536, 1)]
    sources = {shape: origin.add(unique(f"{shape[0]}x{shape[1]}.png"), grey_png(*shape)) for shape in shapes}
    async with running(make_settings(negative_ttl=0)) as proxy:
        for (width, height), source in sources.items():
            response, cpu, growth_mb = await measured_thumb(proxy, source)
            assert response.status_code == 413, (width, height, response.text)
            assert response.json() == {"error": "too_many_pixels",
                                       "detail": f"{width}x{height} has a side over the 65535 pixel limit"}
            assert cpu < 1.0 and growth_mb < 50, (width, height, cpu, growth_mb)


@pytest.mark.timeout(60)
async def test_a_side_at_the_limit_is_still_rendered_and_cheap(make_settings: Callable[..., Settings],
                                                               origin: Origin, unique) -> None:
    """The boundary: 65,535 is accepted; the tall and wide shapes it allows cost 0.02 s or less each."""
    shapes = [(1, 65_535), (200, 65_535), (65_535, 1)]
    sources = {shape: origin.add(unique(f"{shape[0]}x{shape[1]}.png"), grey_png(*shape)) for shape in shapes}
    async with running(make_settings(negative_ttl=0)) as proxy:
        for (width, height), source in sources.items():
            response, cpu, growth_mb = await measured_thumb(proxy, source)
            assert response.status_code == 200, (width, height, response.text)
            assert response.content.endswith(JPEG_END)
            assert cpu < 1.0 and growth_mb < 50, (width, height, cpu, growth_mb)
    # The setting reaches the proxy: a lower cap refuses what the default renders.
    async with running(make_settings(max_source_side=1_000, negative_ttl=0)) as proxy:
        refused = await proxy.thumb(origin.add(unique("1001.png"), grey_png(1, 1_001)))
        assert refused.status_code == 413 and "over the 1000 pixel limit" in refused.json()["detail"]
        assert (await proxy.thumb(origin.add(unique("1000.png"), grey_png(1, 1_000)))).status_code == 200


def _with_chunks(png: bytes, chunks: bytes, after_image: bool = False) -> bytes:
    """``chunks`` right after IHDR (what libvips reads with the header), or just before IEND."""
    return png[:-12] + chunks + png[-12:] if after_image else png[:33] + chunks + png[33:]


def _inflating(size: int, fill: bytes = b"A") -> bytes:
    compressor = zlib.compressobj(9)
    block = fill * (1 << 20)
    return b"".join(compressor.compress(block) for _ in range(size >> 20)) + \
        compressor.compress(fill * (size & 0xFFFFF)) + compressor.flush()


@pytest.mark.timeout(60)
async def test_png_text_chunk_bombs_are_refused_before_libvips_reads_them(make_settings: Callable[..., Settings],
                                                                          origin: Origin, unique) -> None:
    """libvips inflates and keeps every compressed text chunk ahead of the pixels: 1,000 zTXt chunks of
    10 MB of text each (a 10 MB file) took 11.8 s of render CPU and 2,970 MB for a 64 x 64 thumbnail."""
    base = images.png(images.photo(64, 64))
    ten_mb = _inflating(10 << 20)
    bombs = {
        "ztxt": _with_chunks(base, _png_chunk(b"zTXt", b"Comment\0\0" + ten_mb) * 1000),
        "itxt": _with_chunks(base, _png_chunk(b"iTXt", b"Comment\0\x01\0en\0\0" + ten_mb) * 1000),
        "one-9-mb": _with_chunks(base, _png_chunk(b"zTXt", b"Comment\0\0" + _inflating(9 << 20))),
        "65-texts": _with_chunks(base, _png_chunk(b"tEXt", b"k\0v") * 65),
        "1001-chunks": _with_chunks(base, _png_chunk(b"prIv", b"x") * 1001),
    }
    sources = {name: origin.add(unique(f"{name}.png"), body) for name, body in bombs.items()}
    honest = {
        # A comment, the software, an 8 MB EXIF-like dump in zTXt, XMP in iTXt, 60 more texts.
        "real-texts": _with_chunks(base, _png_chunk(b"tEXt", b"Comment\0hello") + _png_chunk(b"tEXt", b"Software\0x")
                                   + _png_chunk(b"zTXt", b"Raw profile type exif\0\0" + _inflating(8 << 20, b"0"))
                                   + _png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>")
                                   + _png_chunk(b"tEXt", b"k\0v") * 60),
        "after-the-pixels": _with_chunks(base, _png_chunk(b"zTXt", b"Comment\0\0" + ten_mb) * 1000, after_image=True),
    }
    answered = {name: origin.add(unique(f"{name}.png"), body) for name, body in honest.items()}
    async with running(make_settings(negative_ttl=0)) as proxy:
        for name, source in sources.items():
            response, cpu, growth_mb = await measured_thumb(proxy, source)
            assert response.status_code == 413, (name, response.text)
            assert response.json()["error"] == "too_large" and response.json()["detail"].startswith("the PNG has ")
            assert cpu < 1.0 and growth_mb < 100, (name, cpu, growth_mb)
        for name, source in answered.items():
            response = await proxy.thumb(source)
            assert response.status_code == 200 and response.content.endswith(JPEG_END), (name, response.text)


def _padded_profile_png(size: int) -> bytes:
    """A PNG whose iCCP is a real (Adobe RGB) profile padded with zeros to ``size`` bytes."""
    profile = bytearray(images.adobe_rgb_profile())
    padding = size - len(profile)
    profile[0:4] = size.to_bytes(4, "big")
    compressor = zlib.compressobj(9)
    packed = compressor.compress(bytes(profile)) + compressor.compress(b"\0" * padding) + compressor.flush()
    return _with_chunks(images.png(images.photo(64, 64)), _png_chunk(b"iCCP", b"icc\0\0" + packed))


@pytest.mark.timeout(60)
async def test_a_png_profile_that_inflates_past_8_mb_is_refused(make_settings: Callable[..., Settings],
                                                                origin: Origin, unique) -> None:
    """libvips inflates and copies an embedded profile: a 54 KB PNG whose profile inflates to 40 MB
    took 0.35 s of CPU and +200 MB for a 64 x 64 thumbnail. A profile may inflate to 8 MB."""
    bomb = origin.add(unique("icc-40mb.png"), _padded_profile_png(40 << 20))
    at_limit = origin.add(unique("icc-8mb.png"), _padded_profile_png(8 << 20))
    real = origin.add(unique("adobe.png"), images.png(images.with_icc(images.photo(64, 64),
                                                                       images.adobe_rgb_profile())))
    async with running(make_settings(negative_ttl=0)) as proxy:
        with RssWindow() as window:
            started = time.process_time()
            refused = await proxy.thumb(bomb)
            cpu = time.process_time() - started
        assert refused.status_code == 413, refused.text
        assert refused.json() == {"error": "too_large",
                                  "detail": "the PNG has an ICC profile that inflates to more than 8 MB"}
        assert cpu < 0.2 and window.growth_mb < 50, (cpu, window.growth_mb)
        for source in (at_limit, real):
            response = await proxy.thumb(source)
            assert response.status_code == 200 and response.content.endswith(JPEG_END), response.text


def _padded_profile_jpeg(size: int) -> bytes:
    """A 64 x 64 JPEG whose profile (Adobe RGB padded with zeros to ``size`` bytes) fills APP2
    ICC_PROFILE segments of 65,519 bytes each, numbered as libjpeg writes them."""
    profile = bytearray(images.adobe_rgb_profile())
    profile[0:4] = size.to_bytes(4, "big")
    profile += b"\0" * (size - len(profile))
    parts = [profile[at : at + 65_519] for at in range(0, size, 65_519)]
    segments = b"".join(b"\xff\xe2" + (16 + len(part)).to_bytes(2, "big") + b"ICC_PROFILE\0"
                        + bytes([(index + 1) & 0xFF, len(parts) & 0xFF]) + part for index, part in enumerate(parts))
    plain = images.jpeg(images.photo(64, 64), keep="none")
    return plain[:2] + segments + plain[2:]


@pytest.mark.timeout(60)
async def test_a_jpeg_profile_over_8_mb_is_refused(make_settings: Callable[..., Settings], origin: Origin,
                                                   unique) -> None:
    """libjpeg keeps every APP2 segment and libvips copies the profile out of the first 100: a 64 x 64
    JPEG with a 16 MB profile took 0.22 s and +52 MB (24 MB: 0.31 s, +68 MB). A profile may be 8 MB,
    as a PNG's may; the real ones are a few hundred bytes (sRGB, Display P3) to a few MB (print)."""
    bombs = [origin.add(unique(f"icc-{size}.jpg"), _padded_profile_jpeg(size)) for size in (16 << 20, (8 << 20) + 1)]
    photo = images.photo(64, 64)
    real = {
        "8-mb": _padded_profile_jpeg(8 << 20),
        "adobe": images.with_icc(photo, images.adobe_rgb_profile()).jpegsave_buffer(Q=90),
        "srgb": photo.icc_transform("srgb", input_profile="srgb").jpegsave_buffer(Q=90),
        "p3": photo.icc_transform("p3", input_profile="srgb").jpegsave_buffer(Q=90),
        "cmyk": photo.icc_transform("cmyk", input_profile="srgb").jpegsave_buffer(Q=90),  # a 962 KB profile
    }
    answered = {name: origin.add(unique(f"{name}.jpg"), body) for name, body in real.items()}
    async with running(make_settings(negative_ttl=0)) as proxy:
        for source in bombs:
            started = time.process_time()
            refused = await proxy.thumb(source)
            cpu = time.process_time() - started
            assert refused.status_code == 413, refused.text
            assert refused.json() == {"error": "too_large", "detail": "the JPEG has an ICC profile of more than 8 MB"}
            assert cpu < 0.2, cpu
        for name, source in answered.items():
            response = await proxy.thumb(source)
            assert response.status_code == 200 and response.content.endswith(JPEG_END), (name, response.text)


@pytest.mark.timeout(60)
async def test_over_the_byte_cap_is_stopped_while_streaming(make_settings: Callable[..., Settings],
                                                            origin: Origin, unique) -> None:
    body = images.png(images.photo(64, 64)) + b"\0" * 3_000_000
    declared = origin.add(unique("declared.png"), body)
    streamed = origin.add(unique("streamed.png"), body, chunk_delay=0.001)  # chunked, no Content-Length
    async with running(make_settings(max_source_bytes=500_000, negative_ttl=0)) as proxy:
        for source in (declared, streamed):
            response = await proxy.thumb(source)
            assert response.status_code == 413 and response.json()["error"] == "too_large", source


@pytest.fixture
def slow_loris() -> Iterator[tuple[int, list[int]]]:
    """A raw origin that sends a valid status line, then one header byte every 100 ms, forever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    stop = threading.Event()
    sent: list[int] = []

    def drip(conn: socket.socket) -> None:
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n")
            while not stop.is_set():
                conn.sendall(b"X")
                sent.append(1)
                stop.wait(0.1)
        except OSError:
            pass
        finally:
            conn.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], sent
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


@pytest.mark.timeout(30)
async def test_slow_loris_origins_hit_the_total_deadline(make_settings: Callable[..., Settings],
                                                         slow_loris: tuple[int, list[int]], origin: Origin,
                                                         unique) -> None:
    port, sent = slow_loris
    # The body variant: a valid image trickled 64 KiB every 0.3 s never trips a per-read timeout.
    trickle = origin.add(unique("trickle.png"), images.png(images.photo(64, 64)) + b"\0" * 2_000_000,
                         chunk_delay=0.3)
    settings = make_settings(allowed_sources=[f"127.0.0.1:{port}", origin.base_url.removeprefix("http://")],
                             fetch_timeout=1.5, negative_ttl=0)
    async with running(settings) as proxy:
        started = time.monotonic()
        headers = await proxy.thumb(f"http://127.0.0.1:{port}/x.png")
        waited = time.monotonic() - started
        body = await proxy.thumb(trickle)
    for response in (headers, body):
        assert response.status_code == 504 and response.json()["error"] == "origin_timeout"
    # It really was dripping, and the proxy gave up at the deadline, not earlier: both hold however
    # slowly the drip thread runs (a deadline never fires early), unlike counting drips per second.
    assert len(sent) >= 1
    assert waited >= settings.fetch_timeout, waited


def _truncations() -> dict[str, bytes]:
    photo = images.photo(120, 90)
    full = {
        "jpeg": images.jpeg(photo), "png": images.png(photo), "webp": photo.webpsave_buffer(Q=80),
        "gif": photo.gifsave_buffer(), "tiff": photo.tiffsave_buffer(compression="deflate"),
    }
    cases: dict[str, bytes] = {}
    for name, data in full.items():
        cases[f"{name}-header-only"] = data[:40]
        cases[f"{name}-half"] = data[: len(data) // 2]
    return cases


@pytest.mark.timeout(60)
async def test_truncated_files_are_422_and_never_half_rendered(make_settings: Callable[..., Settings],
                                                               origin: Origin, unique) -> None:
    cases = _truncations()
    sources = {name: origin.add(unique(name), body) for name, body in cases.items()}
    async with running(make_settings(negative_ttl=0)) as proxy:
        for name, source in sources.items():
            response = await proxy.thumb(source)
            assert response.status_code == 422, (name, response.status_code, response.text)
            assert response.json()["error"] == "undecodable", name


@pytest.mark.timeout(60)
async def test_corrupt_files_give_a_clean_image_or_a_clean_4xx(make_settings: Callable[..., Settings],
                                                                origin: Origin, unique) -> None:
    rng = random.Random(1234)
    photo = images.photo(96, 64)
    sources = []
    for fmt, data in (("jpeg", images.jpeg(photo)), ("png", images.png(photo)), ("gif", photo.gifsave_buffer()),
                      ("webp", photo.webpsave_buffer(Q=80))):
        for index in range(6):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 20)):
                mutated[rng.randrange(8, len(mutated))] = rng.randrange(256)
            sources.append(origin.add(unique(f"{fmt}-{index}"), bytes(mutated)))
    async with running(make_settings(negative_ttl=0)) as proxy:
        for source in sources:
            response = await proxy.thumb(source)
            assert response.status_code in (200, 413, 415, 422), (source, response.status_code)
            if response.status_code == 200:
                assert response.content.startswith(b"\xff\xd8") and response.content.endswith(JPEG_END)
            else:
                assert set(response.json()) == {"error", "detail"}


def _zip(name: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload).to_bytes(4, "little")
    size = len(payload).to_bytes(4, "little")
    local = b"PK\x03\x04" + b"\x14\x00" + b"\x00" * 6 + b"\x00\x00\x00\x00" + crc + size + size + \
        len(name).to_bytes(2, "little") + b"\x00\x00" + name + payload
    central = b"PK\x01\x02" + b"\x14\x00\x14\x00" + b"\x00" * 8 + crc + size + size + \
        len(name).to_bytes(2, "little") + b"\x00" * 12 + b"\x00\x00\x00\x00" + name
    end = b"PK\x05\x06" + b"\x00" * 4 + b"\x01\x00\x01\x00" + len(central).to_bytes(4, "little") + \
        len(local).to_bytes(4, "little") + b"\x00\x00"
    return local + central + end


@pytest.mark.timeout(60)
async def test_polyglots_come_out_as_one_fresh_jpeg(make_settings: Callable[..., Settings], origin: Origin,
                                                    unique) -> None:
    script = b"<script>alert(document.domain)</script>"
    zip_payload = _zip(b"evil.html", b"<html>" + script + b"</html>")
    photo = images.photo(300, 200)
    commented = bytearray(images.jpeg(photo))
    comment = b"\xff\xfe" + (len(script) + 2).to_bytes(2, "big") + script  # a COM segment after SOI
    commented[2:2] = comment
    polyglots = {
        "jpeg+zip": images.jpeg(photo) + zip_payload,
        "jpeg+html": images.jpeg(photo) + b"<html>" + script,
        "jpeg-comment-script": bytes(commented),
        "png+zip": images.png(photo) + zip_payload,
        "gif+zip": photo.gifsave_buffer() + zip_payload,  # GIFAR-style
    }
    sources = {name: origin.add(unique(name), body, content_type="text/html") for name, body in polyglots.items()}
    async with running(make_settings()) as proxy:
        for name, source in sources.items():
            response = await proxy.thumb(source)
            assert response.status_code == 200, (name, response.text)
            out = response.content
            assert response.headers["content-type"] == "image/jpeg"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert out.startswith(b"\xff\xd8\xff") and out.endswith(JPEG_END), name
            assert out.count(JPEG_END) >= 1 and b"PK\x03\x04" not in out and b"<script" not in out, name
            assert b"<html" not in out and out != polyglots[name], name
            # Nothing after the end marker: decoding and re-saving ends at the same byte.
            assert pyvips.Image.new_from_buffer(out, "").width <= 200


SVGS = {
    "xxe-file": b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&x;</text></svg>',
    "xxe-http": b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "ORIGIN/xxe">]>'
                b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&x;</text></svg>',
    "image-href": b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                  b'width="10" height="10"><image xlink:href="ORIGIN/href.png" width="10" height="10"/></svg>',
    "css-import": b'<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(ORIGIN/css);</style></svg>',
    "bom-whitespace": b'\xef\xbb\xbf \n\t<svg xmlns="http://www.w3.org/2000/svg"><image href="ORIGIN/bom.png"/></svg>',
    "comment-first": b'<!-- hi --><svg xmlns="http://www.w3.org/2000/svg"><image href="ORIGIN/comment.png"/></svg>',
    "svgz": b"\x1f\x8b" + b"\x08" + b"\0" * 20,
    "billion-laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                      + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10)
                                 for i in range(10))
                      + b']><svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>',
}


@pytest.mark.timeout(30)
async def test_svg_in_any_disguise_never_reaches_the_network_or_disk(proxy, origin: Origin, unique) -> None:
    base = (origin.base_url + unique("")).rstrip("/").encode()
    for name, svg in SVGS.items():
        source = origin.add(unique(name + ".svg"), svg.replace(b"ORIGIN", base), content_type="image/svg+xml")
        response = await proxy.thumb(source)
        assert response.status_code == 415, (name, response.text)
        assert response.json()["error"] == "unsupported_type"
    for path in ("xxe", "href.png", "css", "bom.png", "comment.png"):
        assert origin.hits[unique(path)] == 0, path


def test_libvips_svg_and_text_loaders_are_unreachable_even_if_the_sniffer_were_fooled() -> None:
    configure_libvips()
    for data in (SVGS["xxe-file"], SVGS["image-href"], b"2 2\n1 2\n3 4\n", b"SIMPLE  =  T" + b" " * 68):
        with pytest.raises(pyvips.Error):
            pyvips.Image.new_from_buffer(data, "")
        with pytest.raises(pyvips.Error):
            pyvips.Image.thumbnail_buffer(data, 200)
