"""Hostile origins (issue 11 §1): content-coding bombs, bursts of big misses, decode-memory
bombs, and the per-item warm contract. Bounded by what the proxy *did* (bytes the decoder
produced, origin request counters, pool and budget counters), never by wall time.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import subprocess
import sys
import threading
import time
import types
import zlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import pytest
import pyvips
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from proxy import admission, jpeg_header, tiff_header
from proxy.decode_memory import decode_cost
from proxy.urls import ThumbnailRequest, cache_key, thumbnail_path
from proxy.variants import CELL_2X, THUMB
from tests.proxy.conftest import running
from tests.support import images
from tests.support.images import _png_chunk
from tests.support.memory import RssWindow
from tests.support.origin import Handler, Origin
from tests.support.wait import ManualClock, holds_for, wait_until
from thumbs.settings import Settings

WARM_AUTH = {"authorization": "Bearer warm-token"}
MB = 1_000_000


def _png() -> bytes:
    return images.png(images.photo(120, 80))


@pytest.mark.parametrize(
    "coding", ["gzip, gzip", "gzip,gzip", "deflate, gzip", "gzip, deflate", "x-gzip, gzip", "gzip, identity, gzip"]
)
async def test_stacked_encodings_are_refused_before_inflating_anything(
    coding: str, make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    # The example: a tiny body that would inflate to gigabytes in two passes.
    inner = gzip.compress(gzip.compress(b"\0" * 50 * MB))
    source = origin.add(unique("stacked.png"), inner, headers={"content-encoding": coding})
    async with running(make_settings(negative_ttl=0)) as proxy:
        response = await proxy.thumb(source)
        assert response.status_code == 502, response.text
        assert response.json()["error"] == "stacked_encoding"
        assert response.headers["cache-control"] == "no-store"
        assert proxy.proxy.service.fetcher.decoded_bytes == 0  # refused on the header alone


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "x-compress", "bogus", "gzip;q=1", "\u00e9"])
async def test_unknown_encodings_are_refused(coding: str, make_settings: Callable[..., Settings], origin: Origin,
                                             unique) -> None:
    async def handler(_: Request) -> Response:
        return Response(_png(), headers={"content-encoding": coding.encode("utf-8").decode("latin-1")})

    source = origin.add_handler(unique("odd.png"), handler)
    async with running(make_settings(negative_ttl=0)) as proxy:
        response = await proxy.thumb(source)
    assert response.status_code == 502, response.text
    assert response.json()["error"] == "unsupported_encoding"


def _deflate(data: bytes, raw: bool = False) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "raw-deflate"])
async def test_one_honest_coding_is_undone_and_rendered(coding: str, make_settings: Callable[..., Settings],
                                                        origin: Origin, unique) -> None:
    png = _png()
    body = gzip.compress(png) if "gzip" in coding else _deflate(png, raw=coding == "raw-deflate")
    header = "deflate" if coding == "raw-deflate" else coding
    source = origin.add(unique("coded.png"), body, headers={"content-encoding": header})
    async with running(make_settings()) as proxy:
        response = await proxy.thumb(source)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert proxy.proxy.service.fetcher.decoded_bytes == len(png)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_single_coding_bomb_stops_at_the_byte_cap(coding: str, make_settings: Callable[..., Settings],
                                                          origin: Origin, unique) -> None:
    """~200 KB on the wire, 200 MB inflated: the decoder hands out at most cap + 1 bytes."""
    cap = 2 * MB
    zeros = b"\0" * 200 * MB
    bomb = gzip.compress(zeros, 9) if coding == "gzip" else _deflate(zeros)
    del zeros
    assert len(bomb) < 300_000
    source = origin.add(unique("bomb.png"), bomb, headers={"content-encoding": coding})
    async with running(make_settings(max_source_bytes=cap, negative_ttl=0)) as proxy:
        response = await proxy.thumb(source)
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"
        produced = proxy.proxy.service.fetcher.decoded_bytes
    assert cap < produced <= cap + 1  # nothing inflated past the cap (200 MB were on offer)


async def test_truncated_and_corrupt_compressed_bodies_are_clean_502s(make_settings: Callable[..., Settings],
                                                                      origin: Origin, unique) -> None:
    whole = gzip.compress(_png())
    truncated = origin.add(unique("cut.png"), whole[: len(whole) // 2], headers={"content-encoding": "gzip"})
    corrupt = origin.add(unique("junk.png"), b"this is not gzip at all", headers={"content-encoding": "gzip"})
    async with running(make_settings(negative_ttl=0)) as proxy:
        for source in (truncated, corrupt):
            response = await proxy.thumb(source)
            assert response.status_code == 502, response.text
            assert response.json()["error"] == "origin_error"


async def test_the_fetcher_asks_origins_for_identity_only(make_settings: Callable[..., Settings], origin: Origin,
                                                          unique) -> None:
    seen: list[str] = []

    async def handler(request: Request) -> Response:
        seen.append(request.headers.get("accept-encoding", ""))
        return Response(_png(), media_type="image/png")

    source = origin.add_handler(unique("ae.png"), handler)
    async with running(make_settings()) as proxy:
        assert (await proxy.thumb(source)).status_code == 200
    assert seen == ["identity"]


class Gate:
    """An origin handler that holds its answer until released, counting who arrived."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.arrived = 0
        self.release = asyncio.Event()

    async def __call__(self, _: Request) -> Response:
        self.arrived += 1
        await self.release.wait()
        return Response(self.body, media_type="image/png")


async def test_a_full_pool_is_503_before_the_origin_is_contacted(make_settings: Callable[..., Settings],
                                                                 origin: Origin, unique) -> None:
    held = [Gate(_png()) for _ in range(2)]
    busy = [origin.add_handler(unique(f"busy{index}.png"), gate) for index, gate in enumerate(held)]
    extra = origin.add(unique("extra.png"), _png())
    settings = make_settings(processing_threads=1, processing_queue=1, negative_ttl=0)  # two places
    async with running(settings) as proxy:
        first = [asyncio.create_task(proxy.thumb(source)) for source in busy]
        await wait_until(lambda: sum(gate.arrived for gate in held) == 2)  # both downloading, each with a place
        refused = await proxy.thumb(extra)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "overloaded"
        assert int(refused.headers["retry-after"]) >= 1
        assert origin.hits[unique("extra.png")] == 0  # refused before any request to the origin
        for gate in held:
            gate.release.set()
        assert [r.status_code for r in await asyncio.gather(*first)] == [200, 200]
        again = await proxy.thumb(extra)  # the retry, once there is room
        assert again.status_code == 200
        assert proxy.proxy.service.pool.in_flight == 0
    assert origin.hits[unique("extra.png")] == 1


async def test_downloads_beyond_the_budget_wait_without_contacting_the_origin(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    held = [Gate(_png()) for _ in range(3)]
    sources = [origin.add_handler(unique(f"b{index}.png"), gate) for index, gate in enumerate(held)]
    async with running(make_settings(max_concurrent_fetches=2, negative_ttl=0)) as proxy:
        budget = proxy.proxy.service.budget
        tasks = [asyncio.create_task(proxy.thumb(source)) for source in sources]
        # Two tickets out are not yet two requests at the origin (it serves them on its own
        # thread, later under load): the window below starts once both have arrived there.
        await wait_until(lambda: budget.fetches == 2 and budget.waiting == 1
                         and sum(gate.arrived for gate in held) == 2, what="two at the origin, one waiting")
        # The third waits for a ticket, not on the origin: nothing else reaches it over a window.
        await holds_for(lambda: sum(gate.arrived for gate in held) == 2, 0.1, what="two downloads at the origin")
        for gate in held:
            gate.release.set()
        assert [r.status_code for r in await asyncio.gather(*tasks)] == [200, 200, 200]
        assert budget.fetches == 0 and budget.bytes == 0  # every ticket given back
    assert sum(gate.arrived for gate in held) == 3


async def test_bytes_in_flight_bound_how_many_big_sources_download_at_once(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    """Budget = 2 x the byte cap: sources with no declared length reserve the whole cap each."""
    cap = 1 * MB
    arrived: list[str] = []
    release = asyncio.Event()

    def streaming(name: str) -> Handler:
        async def handler(_: Request) -> Response:
            arrived.append(name)

            async def body() -> AsyncIterator[bytes]:
                yield _png()
                await release.wait()

            return StreamingResponse(body(), media_type="image/png")  # chunked: no Content-Length
        return handler

    sources = [origin.add_handler(unique(f"s{index}.png"), streaming(str(index))) for index in range(4)]
    settings = make_settings(max_source_bytes=cap, max_fetch_bytes_in_flight=2 * cap, negative_ttl=0)
    async with running(settings) as proxy:
        budget = proxy.proxy.service.budget
        tasks = [asyncio.create_task(proxy.thumb(source)) for source in sources]
        await wait_until(lambda: budget.waiting == 2 and len(arrived) == 2, what="two downloading, two waiting")
        # Two reservations of the cap; the other two wait, over a window, without reaching the origin.
        await holds_for(lambda: len(arrived) == 2 and budget.bytes == 2 * cap, 0.1, what="two downloads, 2 x cap")
        release.set()
        assert [r.status_code for r in await asyncio.gather(*tasks)] == [200] * 4
        assert budget.bytes == 0
    assert len(arrived) == 4


class BlockedPool:
    """Occupies the only processing thread until released."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def block(self) -> None:
        self.event.wait(10)


async def test_a_source_fetched_for_a_request_that_left_is_not_fetched_again_for_its_retry(
    make_settings: Callable[..., Settings], origin: Origin, unique, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = origin.add(unique("kept.png"), _png())
    path = unique("kept.png")
    async with running(make_settings(processing_threads=1, processing_queue=4)) as proxy:
        service = proxy.proxy.service
        blocker = BlockedPool()
        occupied = asyncio.ensure_future(service.pool.run(blocker.block))
        request = ThumbnailRequest(source, THUMB)
        waiting = asyncio.create_task(service.generate(request, abandonable=True))
        await wait_until(lambda: service.pool.queued == 1)  # downloaded, its render queued behind the blocker
        assert origin.hits[path] == 1
        waiting.cancel()  # the client left: the queued render is dropped ...
        await asyncio.gather(waiting, return_exceptions=True)
        await wait_until(lambda: len(service.hold) == 1)  # ... but the download is kept
        blocker.event.set()
        await occupied
        retry = await proxy.thumb(source)
        assert retry.status_code == 200 and retry.headers["x-thumb-tier"] == "generated"
        assert origin.hits[path] == 1  # the retry used the held source
        assert len(service.hold) == 0 and service.hold.bytes == 0

        # After the window, a held source is gone: a new miss downloads again.
        other = origin.add(unique("expires.png"), _png())
        clock = ManualClock()
        monkeypatch.setattr(admission, "time", clock)  # the hold's clock only
        service.hold.put(other, _png())
        clock.advance(service.hold.seconds + 0.001)
        assert (await proxy.thumb(other)).status_code == 200
    assert origin.hits[unique("expires.png")] == 1


def _interlaced_rgba16(side: int, interlace: bool = True) -> bytes:
    """A 16-bit RGBA PNG made with pyvips (``pngsave(interlace=..., bitdepth=16)``)."""
    image = pyvips.Image.xyz(side, side)[0].cast("ushort") * 40
    image = image.bandjoin([image, image, image]).copy(interpretation="rgb16").cast("ushort")
    return image.pngsave_buffer(interlace=interlace, bitdepth=16, compression=9)


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def adam7_rgba16_bomb(side: int) -> bytes:
    """The issue's sample class: a valid interlaced 16-bit RGBA PNG of ``side`` x ``side`` zero
    pixels, compressed row by row (pyvips would hold the whole 392 MB image to write it)."""
    compressor = zlib.compressobj(9)
    parts: list[bytes] = []
    for x0, y0, dx, dy in ADAM7:
        width, height = -(-(side - x0) // dx), -(-(side - y0) // dy)
        row = b"\0" * (1 + width * 8)  # filter byte + RGBA x 16 bits
        for _ in range(height):
            parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    ihdr = side.to_bytes(4, "big") * 2 + bytes([16, 6, 0, 0, 1])  # 16-bit, RGBA, Adam7
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


@pytest.mark.timeout(120)
async def test_decode_budget_refuses_an_interlaced_16_bit_png_cheaply(make_settings: Callable[..., Settings],
                                                                       origin: Origin, unique) -> None:
    """The issue's sample: 7000x7000 RGBA 16-bit, interlaced, well under 1 MB; 392 MB to decode."""
    bomb = adam7_rgba16_bomb(7000)
    assert len(bomb) < 1 * MB
    header = pyvips.Image.new_from_buffer(bomb, "", access="sequential")
    assert (header.width, header.bands, header.format, header.get("interlaced")) == (7000, 4, "ushort", 1)
    source = origin.add(unique("adam7.png"), bomb)
    async with running(make_settings(negative_ttl=0)) as proxy:  # default budget: 256 MiB
        response = await proxy.thumb(source)
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "too_large"
    assert "446 MB" in body["detail"] and "268 MB decode budget" in body["detail"]  # the frame, 392 MB, and the resize
    assert "interlaced" in body["detail"]


async def test_the_same_image_streamed_fits_and_interlaced_does_not(make_settings: Callable[..., Settings],
                                                                    origin: Origin, unique) -> None:
    """Same pixels, two layouts: the budget counts what the decoder must hold, not the pixels."""
    streamed = origin.add(unique("plain.png"), _interlaced_rgba16(1200, interlace=False))
    interlaced = origin.add(unique("adam7.png"), _interlaced_rgba16(1200, interlace=True))
    progressive = origin.add(unique("prog.jpg"), images.jpeg(images.photo(1200, 1200), interlace=True))
    baseline = origin.add(unique("base.jpg"), images.jpeg(images.photo(1200, 1200)))
    # 1200 x 1200 RGBA 16-bit streamed: libvips' line caches and the resize, 17.5 MB (measured +12.8 to
    # +14.6 MB, fresh process per variant); interlaced: the 11.5 MB frame and the resize, 24.1 MB
    # (+18.9 to +20.3). A baseline JPEG is shrunk on load (0.9 MB); a progressive one, 8.6 MB.
    async with running(make_settings(max_decode_bytes=5 * MB, negative_ttl=0)) as proxy:
        assert (await proxy.thumb(baseline)).status_code == 200
        refused = await proxy.thumb(progressive)
        assert refused.status_code == 413 and refused.json()["error"] == "too_large", refused.text
    async with running(make_settings(max_decode_bytes=20 * MB, negative_ttl=0)) as proxy:
        assert (await proxy.thumb(streamed)).status_code == 200
        assert (await proxy.thumb(progressive)).status_code == 200
        refused = await proxy.thumb(interlaced)
        assert refused.status_code == 413 and refused.json()["error"] == "too_large", refused.text
    async with running(make_settings(max_decode_bytes=25 * MB, negative_ttl=0)) as proxy:
        assert (await proxy.thumb(interlaced)).status_code == 200


# One render in a fresh process (libvips' caches and the allocator's arenas as a worker's first
# render finds them), after a 16 x 16 one; VmHWM reset just before it. Prints the peak RSS growth.
_RENDER_ONCE = """
import sys
from pathlib import Path
import pyvips
from proxy import pipeline
from proxy.variants import VARIANTS
def kb(key):
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(key + ":"))
    return int(line.split()[1])
data = Path(sys.argv[1]).read_bytes()
pipeline.configure_libvips()
pipeline.render(pyvips.Image.black(16, 16, bands=3).cast("uchar").pngsave_buffer(), VARIANTS["cell2x"], 10**9)
Path("/proc/self/clear_refs").write_text("5")
before = kb("VmRSS")
pipeline.render(data, VARIANTS[sys.argv[2]], 10**12, 10**12)
print((kb("VmHWM") - before) * 1024)
"""


def _growth_in_a_fresh_process(data: bytes, variant: str, tmp_path: Path) -> int:
    source = tmp_path / "source"
    source.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", _RENDER_ONCE, str(source), variant], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).parents[2], check=True)
    return int(done.stdout.split()[-1])


STREAMED_SHAPES = {
    "1200x1200-rgba16": lambda: _interlaced_rgba16(1200, interlace=False),
    "1200x1200-rgba16-interlaced": lambda: _interlaced_rgba16(1200),
    "4000x3000-rgb8": lambda: _flat_png(4000, 3000),
    "3000x1000-rgba16": lambda: _flat_png(3000, 1000, colour_type=6, bands=4, depth=16),
    "600x20000-rgba8": lambda: _flat_png(600, 20000, colour_type=6, bands=4),  # the square crop reads down
    "6000x6000-grey8": lambda: _flat_png(6000, 6000, colour_type=0, bands=1),
    "40000x1250-rgb8": lambda: _flat_png(40_000, 1_250),  # wide: WIDE_ROWS
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shape", list(STREAMED_SHAPES))
def test_a_streamed_sources_growth_stays_within_its_counted_cost(shape: str, tmp_path: Path) -> None:
    """What the decode budget counts for a PNG bounds what rendering it grows a worker by, for each
    variant: libvips holds ~1,100 to 2,000 rows of the full width (line caches, the resize), not the
    256 the count once took (1200 x 1200 RGBA 16-bit: 2.5 MB counted, +12.8 to +14.6 MB measured)."""
    data = STREAMED_SHAPES[shape]()
    header = pyvips.Image.new_from_buffer(data, "", access="sequential")
    counted = decode_cost(data, "png", header).bytes
    for variant in ("thumb", "cell", "cell2x"):
        growth = _growth_in_a_fresh_process(data, variant, tmp_path)
        # Measured at most 0.94 of the count over 71 shapes; 5 % more for the allocator's noise.
        assert growth <= counted * 1.05, (shape, variant, growth / MB, counted / MB)


def _avif(side: int) -> bytes:
    flat = (pyvips.Image.black(side, side, bands=3) + 50).cast("uchar")
    try:
        return flat.heifsave_buffer(compression="av1", Q=50, effort=0)
    except pyvips.Error:
        pytest.skip("this libvips cannot write AVIF")


async def test_the_decode_budget_counts_what_libheif_holds_for_an_avif(make_settings: Callable[..., Settings],
                                                                       origin: Origin, unique) -> None:
    """libheif keeps the decoded planes and its own copy of the frame besides libvips': a 1.5 KB
    7000 x 7000 AVIF (a 147 MB frame, under the 268 MB budget) grew the worker by 716 MB, a 4000 x
    4000 one by 245 MB (4:2:0) to 293 MB (4:4:4). Counted as three frames plus 10 bytes a pixel."""
    big = origin.add(unique("big.avif"), _avif(4000))
    fits = origin.add(unique("fits.avif"), _avif(3000))
    async with running(make_settings(negative_ttl=0)) as proxy:
        refused = await proxy.thumb(big)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "too_large" and "4000x4000 avif" in refused.json()["detail"]
        assert "needs 304 MB" in refused.json()["detail"]
        with RssWindow() as window:
            answered = await proxy.thumb(fits)  # counted 171 MB; measured 141 MB
        assert answered.status_code == 200, answered.text
        assert window.growth_mb < 268, window.growth_mb
    async with running(make_settings(max_decode_bytes=320 * MB, negative_ttl=0)) as proxy:
        assert (await proxy.thumb(big)).status_code == 200


async def test_a_heic_is_checked_against_the_limits_before_it_is_decoded(make_settings: Callable[..., Settings],
                                                                        origin: Origin, unique) -> None:
    """Whether libvips can decode a HEIC was probed (one pixel, for which libheif decodes the whole
    image) before the pixel and memory checks: a 2 KB AV1 file branded heic, 10000 x 10000, took
    2.0 s and +1,451 MB before its 413. The limits come first now."""
    big = origin.add(unique("big.heic"), _avif(4000).replace(b"avif", b"heic"))
    small = origin.add(unique("small.heic"), _avif(640).replace(b"avif", b"heic"))
    async with running(make_settings(max_source_pixels=1_000_000, negative_ttl=0)) as proxy:
        with RssWindow() as window:
            started = time.process_time()
            refused = await proxy.thumb(big)
            cpu = time.process_time() - started
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "too_many_pixels" and "4000x4000" in refused.json()["detail"]
        assert cpu < 0.1 and window.growth_mb < 50, (cpu, window.growth_mb)  # was 0.4 s, +245 MB
        answered = await proxy.thumb(small)  # the probe still runs for what passes the limits
        assert answered.status_code == 200, answered.text


def _flat_png(width: int, height: int, colour_type: int = 2, bands: int = 3, depth: int = 8) -> bytes:
    """A valid PNG of black pixels, compressed a block of rows at a time (no pixels in memory)."""
    row = b"\0" * (width * bands * depth // 8 + 1)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * min(64, height - at)) for at in range(0, height, 64))
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, colour_type, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + \
        _png_chunk(b"IDAT", idat + compressor.flush()) + _png_chunk(b"IEND", b"")


def _gif_canvas(width: int, height: int, transparent: bool = False) -> bytes:
    """A 62-byte GIF: a ``width`` x ``height`` screen, one 1x1 frame in its far corner (libvips
    reports 3 bands, or 4 when the frame has a transparent colour)."""
    frame = b"\x2c" + (width - 1).to_bytes(2, "little") + (height - 1).to_bytes(2, "little") + b"\x01\0\x01\0\0"
    control = b"\x21\xf9\x04" + (b"\x01" if transparent else b"\0") + b"\0\0\0\0"
    return (b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\xf0\0\0\0\0\0\xff\xff\xff"
            + control + frame + b"\x02\x02\x4c\x01\0\x3b")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("width", "height", "transparent"), [(7000, 7000, False), (7000, 7000, True),
                                                              (4000, 3000, False), (2000, 8000, True)])
def test_a_gifs_growth_stays_within_its_counted_cost(width: int, height: int, transparent: bool,
                                                     tmp_path: Path) -> None:
    """libnsgif decodes into a frame of 4 bytes a pixel whatever libvips reports (3 bands without
    transparency), then libvips' rows of it stream into the resize as a PNG's do: a 7000 x 7000
    GIF counted 147 MB and grew a worker by 229-236 MB (245-254 MB transparent, counted 196)."""
    data = _gif_canvas(width, height, transparent)
    header = pyvips.Image.new_from_buffer(data, "", access="sequential")
    assert header.bands == (4 if transparent else 3)
    counted = decode_cost(data, "gif", header).bytes
    for variant in ("thumb", "cell", "cell2x"):
        growth = _growth_in_a_fresh_process(data, variant, tmp_path)
        assert growth <= counted * 1.05, (width, height, transparent, variant, growth / MB, counted / MB)


async def test_the_decode_budget_counts_the_rows_a_wide_source_holds(make_settings: Callable[..., Settings],
                                                                     origin: Origin, unique) -> None:
    """A wide PNG or GIF holds up to ~1,400 rows of its width while it is resized, not a 256-row
    window: a 146 KB 65535 x 762 RGB PNG (50 MB counted) grew the worker by 280 MB for the cell2x
    variant (a 16-bit RGBA one by 730 MB for cell), a 62-byte GIF canvas of that size by 450 MB."""
    wide = origin.add(unique("wide.png"), _flat_png(65_535, 762))
    canvas = origin.add(unique("canvas.gif"), _gif_canvas(65_535, 762))
    # The same pixels standing up, a wide grey strip, and a short wide one: within the budget.
    fits = [origin.add(unique(f"fits{index}.png"), body) for index, body in enumerate((
        _flat_png(762, 65_535), _flat_png(65_535, 762, colour_type=0, bands=1), _flat_png(16_000, 3_000),
        _flat_png(40_000, 1_250)))]  # 50 MP: +188 MB for cell2x, counted 204
    async with running(make_settings(negative_ttl=0)) as proxy:
        for source, need in ((wide, "331 MB"), (canvas, "531 MB")):
            with RssWindow() as window:
                refused = await proxy.client.get(thumbnail_path(source, proxy.settings.secret, CELL_2X))
            assert refused.status_code == 413, refused.text
            assert refused.json()["error"] == "too_large" and f"needs {need}" in refused.json()["detail"]
            assert window.growth_mb < 50, window.growth_mb
        for source in fits:
            with RssWindow() as window:
                answered = await proxy.client.get(thumbnail_path(source, proxy.settings.secret, CELL_2X))
            assert answered.status_code == 200, answered.text
            assert window.growth_mb < 268, window.growth_mb


async def test_a_progressive_scan_bomb_is_refused_before_decoding(make_settings: Callable[..., Settings],
                                                                   origin: Origin, unique) -> None:
    """Thousands of near-empty progressive scans: libjpeg decodes each over the whole frame, so 24 MB
    of them held a render thread for about half an hour (two held the pool). Counted and refused."""
    bomb = origin.add(unique("scans.jpg"), images.jpeg_scan_bomb(256, 300))
    few = origin.add(unique("few.jpg"), images.jpeg_scan_bomb(256, 200))
    real = origin.add(unique("real.jpg"), images.jpeg(images.photo(600, 400), interlace=True))
    async with running(make_settings(negative_ttl=0)) as proxy:
        refused = await proxy.thumb(bomb)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "too_large" and "301 scans" in refused.json()["detail"]
        for source in (few, real):
            answered = await proxy.thumb(source)
            assert answered.status_code == 200, answered.text


async def test_a_scan_bomb_inside_a_tiff_strip_is_refused(make_settings: Callable[..., Settings], origin: Origin,
                                                           unique) -> None:
    """libvips' TIFF reader: 200 near-empty scans in one 2048x2048 JPEG strip took 131 s (0.1 s as
    a JPEG file). A TIFF's JPEG data may have 16 scans per frame; real JPEG TIFFs keep rendering."""
    bomb = origin.add(unique("scans.tif"), images.tiff_with_jpeg_strip(images.jpeg_scan_bomb(512, 40), 512))
    few = origin.add(unique("few.tif"), images.tiff_with_jpeg_strip(images.jpeg_scan_bomb(512, 10), 512))
    photo = images.photo(600, 400)
    real = [origin.add(unique(f"real{index}.tif"), data) for index, data in enumerate((
        photo.tiffsave_buffer(compression="jpeg"), photo.tiffsave_buffer(compression="jpeg", tile=True),
        photo.tiffsave_buffer(compression="deflate"), photo.tiffsave_buffer(),
    ))]
    async with running(make_settings(negative_ttl=0)) as proxy:
        refused = await proxy.thumb(bomb)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "too_large" and "41 scans for 1 frames" in refused.json()["detail"]
        for source in (few, *real):
            answered = await proxy.thumb(source)
            assert answered.status_code == 200, answered.text


def test_random_tiff_data_never_looks_like_a_scan_bomb() -> None:
    """The counts run over the whole file: in non-JPEG strips the marker pairs are random, and
    frame markers (5 kinds) outnumber the scan marker, so such a TIFF is not refused."""
    noise = pyvips.Image.gaussnoise(3000, 3000, sigma=120, mean=128).cast("uchar")
    data = noise.tiffsave_buffer()
    assert data.count(b"\xff\xda") > 16  # enough random pairs to reach the ratio check
    assert jpeg_header.tiff_scans(data) is None


async def test_a_failed_miss_leaves_no_cycle_holding_its_source(make_settings: Callable[..., Settings],
                                                                 origin: Origin, unique) -> None:
    """A failure's exception is kept by the tasks and futures that carried it, and its traceback
    keeps the frames that awaited them: each failed miss was a reference cycle holding its body
    (the fetch buffer, or the source in the render thread's frames) until the cyclic GC ran. With
    a 10 MB cap and 50 MB in flight, a worker grew 571 -> 1,481 MB over 160 endless bodies."""
    endless = origin.add(unique("endless.jpg"), images.jpeg(images.photo(64, 64)) + b"\0" * (3 * MB))
    whole = images.jpeg(images.photo(1200, 900))
    cut = origin.add(unique("cut.jpg"), whole[: len(whole) // 2])
    names = {"_read_capped", "_fetch_and_render", "render", "make_thumbnail", "decode_reduced"}
    gc.collect()
    gc.disable()  # what a worker between collections holds
    try:
        async with running(make_settings(max_source_bytes=1 * MB, negative_ttl=0)) as proxy:
            for index in range(4):
                assert (await proxy.thumb(f"{endless}?{index}")).status_code == 413
                assert (await proxy.thumb(f"{cut}?{index}")).status_code == 422
            # A render thread may still be unwinding its last frames for a moment; a cycle holds them
            # until the collector runs, which is disabled here: so poll, briefly.
            deadline = time.monotonic() + 2.0
            while True:
                alive = [frame.f_code.co_name for frame in gc.get_objects()
                         if isinstance(frame, types.FrameType) and frame.f_code.co_name in names]
                if not alive or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
    finally:
        gc.enable()
    assert alive == []


async def test_the_pixel_cap_still_applies(make_settings: Callable[..., Settings], origin: Origin, unique) -> None:
    source = origin.add(unique("wide.png"), images.png(images.solid(400, 300)))
    async with running(make_settings(max_source_pixels=100_000, negative_ttl=0)) as proxy:
        response = await proxy.thumb(source)
    assert response.status_code == 413 and response.json()["error"] == "too_many_pixels"


MALFORMED = [
    "http://[x", "http://[object Object]/x.png", "http://img.example.com\uff0fx.png",
    "http:\uff0f\uff0fimg.example.com/x",
    "http://\uff0f\uff0f/x.png", "", " ", "http://", "http://x:99999/a.png", "http://%41.com/x.png", "http://a b/x",
    "http://[fe80::1%25eth0]/x.png", "\x00", "http://\u0000/", "https://[::1", "//", "/t/", "/t/x/y/z.jpg",
    "http://" + "a" * 300 + "/x.png", "http://\u00ad/x.png", "javascript:alert(1)", "http://x.test/\u202e.png",
]


@pytest.mark.parametrize("wait", [True, False])
async def test_a_warm_batch_answers_per_item_and_keeps_the_good_ones(
    wait: bool, make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    good = [origin.add(unique(f"good{index}.png"), _png()) for index in range(3)]
    # An origin whose own paths start with /t/ is an origin, not a thumbnail URL, even when
    # the path has a thumbnail URL's shape (signature/variant/file).
    t_path = origin.add("/t" + unique("x.png"), _png())
    t_shaped = origin.add("/t" + unique("thumb/aGVsbG8.jpg").replace("/thumb", "A" * 43 + "/thumb", 1), _png())
    good += [t_path, t_shaped]
    sources = [good[0], *MALFORMED[:10], good[1], *MALFORMED[10:], t_path, good[2], t_shaped]
    settings = make_settings()
    async with running(settings, warm_consumer=not wait) as proxy:
        response = await proxy.client.post("/warm", json={"sources": sources, "wait": wait}, headers=WARM_AUTH)
        store = proxy.proxy.service.store
        if wait:
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            assert [r["source"] for r in results] == sources
            by_source = {r["source"]: r for r in results}
            for source in good:
                assert by_source[source]["ok"] is True, by_source[source]
            for source in MALFORMED:
                assert by_source[source]["ok"] is False and by_source[source]["error"], source
                assert by_source[source]["error"] in {"source_not_allowed", "not_found", "bad_request"}, source
        else:
            assert response.status_code == 202, response.text
            body = response.json()
            assert [item["source"] for item in body["accepted"]] == [good[0], good[1], t_path, good[2], t_shaped]
            assert sorted(item["source"] for item in body["refused"]) == sorted(MALFORMED)
        for source in good:
            await wait_until(partial(store.exists, cache_key(source, THUMB)))


async def test_a_tiff_of_many_pages_is_refused_before_libvips_walks_them(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    """libtiff walks every page on each header read: 200,000 one-pixel pages (20 MB) took 5.9 s of
    render CPU for a 1x1 thumbnail. Past 1,000 pages a TIFF is a 413; real multi-page TIFFs render."""
    bomb = origin.add(unique("pages.tif"), images.tiff_page_bomb(tiff_header.MAX_PAGES + 1))
    pages = images.photo(300, 200).tiffsave_buffer()
    stack = origin.add(unique("stack.tif"), pyvips.Image.arrayjoin([images.photo(300, 200)] * 12, across=1)
                       .copy().tiffsave_buffer(page_height=200))
    at_limit = origin.add(unique("limit.tif"), images.tiff_page_bomb(tiff_header.MAX_PAGES))
    async with running(make_settings(negative_ttl=0)) as proxy:
        refused = await proxy.thumb(bomb)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "too_large" and "more than 1000 pages" in refused.json()["detail"]
        for source in (stack, at_limit, origin.add(unique("one.tif"), pages)):
            answered = await proxy.thumb(source)
            assert answered.status_code == 200, answered.text


def _tiled(width: int, height: int, side: int = 16) -> bytes:
    flat = (pyvips.Image.black(width, height, bands=3) + 50).cast("uchar")
    return flat.tiffsave_buffer(tile=True, tile_width=side, tile_height=side, compression="jpeg", Q=50)


async def test_a_tiff_of_tiny_tiles_is_refused_from_its_header(make_settings: Callable[..., Settings],
                                                               origin: Origin, unique) -> None:
    """libtiff and libvips pay ~11 us a JPEG tile whatever its size: 7000 x 7000 in 16 x 16 tiles
    (191,844) was 2.2 s of render CPU against 0.075 s in strips. Past 16,384 tiles a TIFF is a 413."""
    bomb = origin.add(unique("tiles.tif"), _tiled(4096, 4096))  # 65,536 tiles
    over = origin.add(unique("over.tif"), _tiled(2064, 2048))  # 129 x 128 = 16,512
    at_limit = origin.add(unique("limit.tif"), _tiled(2048, 2048))  # 16,384
    real = origin.add(unique("real.tif"), _tiled(6000, 4000, side=256))
    async with running(make_settings(negative_ttl=0)) as proxy:
        started = time.process_time()
        refused = await proxy.thumb(bomb)
        cpu = time.process_time() - started
        assert refused.status_code == 413, refused.text
        assert refused.json() == {"error": "too_large",
                                  "detail": "the TIFF has 65536 tiles of 16x16, over the limit of 16384"}
        assert cpu < 0.3, cpu
        assert (await proxy.thumb(over)).status_code == 413
        for source in (at_limit, real):
            answered = await proxy.thumb(source)
            assert answered.status_code == 200, answered.text


@pytest.mark.parametrize("bigtiff", [False, True])
def test_the_page_walk_counts_what_libvips_counts(bigtiff: bool) -> None:
    for count in (1, 3, 17):
        stacked = pyvips.Image.arrayjoin([images.solid(8, 6)] * count, across=1).copy()
        data = stacked.tiffsave_buffer(page_height=6, bigtiff=bigtiff)
        expected = pyvips.Image.new_from_buffer(data, "").get("n-pages")
        assert tiff_header.page_count(data) == expected == count
    assert tiff_header.page_count(images.tiff_page_bomb(50), stop_after=10) == 11  # stops once over
    assert tiff_header.page_count(b"II*\x00\x08\x00\x00\x00") == 0  # a dangling first offset
    assert tiff_header.page_count(b"not a tiff") is None
