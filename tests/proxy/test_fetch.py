"""Origin policy: allowlist, private addresses at connect time, redirects, byte cap, timeouts."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from proxy import fetch as fetch_module
from proxy.errors import OriginUnreachable, SourceNotAllowed
from proxy.fetch import OriginFetcher, SourcePolicy, is_public_address
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Handler, Origin
from tests.support.servers import free_port
from tests.support.wait import wait_until
from thumbs.settings import Settings


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
     "::ffff:8.8.8.8", "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b:1::1",
     "fec0::1", "feff::1", "64:ff9b::a00:1", "64:ff9b::7f00:1"],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_allowlist_matching() -> None:
    policy = SourcePolicy(("img.example.com", "*.cdn.example.net", "pics.example.org:8443"), False)
    assert policy.check_url("https://img.example.com/a.jpg").host == "img.example.com"
    assert policy.check_url("http://IMG.example.com:8080/a.jpg")
    assert policy.check_url("https://a.b.cdn.example.net/x.png")
    assert policy.check_url("https://pics.example.org:8443/x.png")
    for refused in (
        "https://cdn.example.net/x.png",  # the wildcard needs a subdomain
        "https://evilimg.example.com/a.jpg",
        "https://img.example.com.evil.org/a.jpg",
        "https://pics.example.org/x.png",  # wrong port
        "ftp://img.example.com/a.jpg",
        "file:///etc/passwd",
        "https://user:pw@img.example.com/a.jpg",
        "not a url",
        "https://img.example.com/" + "a" * 5000,
    ):
        with pytest.raises(SourceNotAllowed):
            policy.check_url(refused)


@pytest.mark.parametrize("entry", ["xn--xample-ova.com", "\u00ebxample.com", "XN--XAMPLE-OVA.COM", "\u00cbxample.com."])
def test_an_idn_entry_matches_every_spelling_of_its_host(entry: str) -> None:
    """httpx's URL.host is Unicode only when the whole name starts with "xn--": the punycode entry
    (the form DNS uses) matched no spelling at all, and a Unicode `*.` entry no subdomain."""
    policy = SourcePolicy((entry, "*." + entry), False)
    for url in ("http://xn--xample-ova.com/a.jpg", "http://\u00ebxample.com/a.jpg", "http://\u00cbXAMPLE.com/a.jpg",
                "http://img.xn--xample-ova.com/a.jpg", "http://img.\u00ebxample.com/a.jpg"):
        assert policy.check_url(url)
    for refused in ("http://example.com/a.jpg", "http://xn--xample-ova.com.evil.org/a.jpg"):
        with pytest.raises(SourceNotAllowed):
            policy.check_url(refused)


async def test_the_dial_resolves_the_name_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """faß.de is xn--fa-hia.de (IDNA 2008, what the Host header says); handing Unicode to
    getaddrinfo let Python's IDNA 2003 codec make it fass.de, another domain."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[object]:
        asked.append(host)
        raise OriginUnreachable(f"cannot resolve {host}")

    monkeypatch.setattr(fetch_module, "_resolve", resolve)
    fetcher = OriginFetcher(SourcePolicy(("fa\u00df.de",), False), max_bytes=1000, connect_timeout=1.0,
                            total_timeout=2.0, max_redirects=0)
    try:
        for url in ("http://fa\u00df.de/a.jpg", "https://xn--fa-hia.de/a.jpg"):
            with pytest.raises(OriginUnreachable):
                await fetcher.fetch(url)
    finally:
        await fetcher.close()
    assert asked == ["xn--fa-hia.de", "xn--fa-hia.de"]


def test_empty_allowlist_allows_nothing() -> None:
    with pytest.raises(SourceNotAllowed):
        SourcePolicy((), True).check_url("https://img.example.com/a.jpg")


async def test_host_not_allowed_is_403_and_never_fetched(make_settings: Callable[..., Settings], origin: Origin,
                                                         unique) -> None:
    source = origin.add(unique("a.jpg"), images.jpeg(images.solid(20, 20)))
    async with running(make_settings(allowed_sources=["img.example.com"])) as proxy:
        response = await proxy.thumb(source)
    assert response.status_code == 403 and response.json()["error"] == "source_not_allowed"
    assert origin.hits[unique("a.jpg")] == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_address_refused_at_connect(make_settings: Callable[..., Settings], origin: Origin, unique,
                                                  host: str) -> None:
    port = origin.base_url.rsplit(":", 1)[1]
    origin.add(unique("a.jpg"), images.jpeg(images.solid(20, 20)))
    settings = make_settings(allowed_sources=[f"{host}:{port}"], allow_private_sources=False)
    async with running(settings) as proxy:
        response = await proxy.thumb(f"http://{host}:{port}{unique('a.jpg')}")
    assert response.status_code == 403 and response.json()["error"] == "source_not_allowed"
    assert "non-public" in response.json()["detail"]
    assert origin.hits[unique("a.jpg")] == 0


async def test_content_type_is_not_trusted(proxy, origin: Origin, unique) -> None:
    source = origin.add(unique("a.bin"), images.png(images.solid(20, 20)), content_type="text/html")
    assert (await proxy.thumb(source)).status_code == 200


async def test_redirects_are_followed_and_rechecked(make_settings: Callable[..., Settings], origin: Origin,
                                                    unique) -> None:
    target = origin.add(unique("final.png"), images.png(images.solid(20, 20)))

    def redirect_to(url: str) -> Handler:
        async def handler(_: Request) -> Response:
            return RedirectResponse(url, status_code=302)
        return handler

    hop1 = origin.add_handler(unique("hop1"), redirect_to(target))
    hop2 = origin.add_handler(unique("hop2"), redirect_to(hop1))
    hop3 = origin.add_handler(unique("hop3"), redirect_to(hop2))
    hop4 = origin.add_handler(unique("hop4"), redirect_to(hop3))
    outside = origin.add_handler(unique("outside"), redirect_to("http://img.example.com/x.png"))
    relative = origin.add_handler(unique("relative"), redirect_to(unique("final.png")))
    async with running(make_settings(max_redirects=3)) as proxy:
        assert (await proxy.thumb(hop3)).status_code == 200
        assert (await proxy.thumb(relative)).status_code == 200
        too_many = await proxy.thumb(hop4)
        assert too_many.status_code == 502 and "redirects" in too_many.json()["detail"]
        escaped = await proxy.thumb(outside)
        assert escaped.status_code == 403 and escaped.json()["error"] == "source_not_allowed"


async def test_declared_oversize_body_is_refused(make_settings: Callable[..., Settings], origin: Origin,
                                                 unique) -> None:
    source = origin.add(unique("big.png"), images.png(images.photo(300, 300)))
    async with running(make_settings(max_source_bytes=10_000)) as proxy:
        response = await proxy.thumb(source)
    assert response.status_code == 413 and response.json()["error"] == "too_large"


def _loopback_buffering() -> int:
    """The most bytes a loopback TCP connection can hold unread: both ends' socket buffers at their
    kernel maxima. Whatever the origin writes beyond what the proxy read waits there, so this bounds
    the overshoot however fast either side runs (no sleep decides the bound)."""
    total = 0
    for name in ("tcp_wmem", "tcp_rmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            total += 32 * 2**20  # not Linux: a generous stand-in
    return total


async def test_oversize_stream_is_cut_off_while_reading(make_settings: Callable[..., Settings], origin: Origin,
                                                        unique) -> None:
    cap, chunk = 1_000_000, 65536
    # The cap, the socket buffers, and a MiB for the origin's and the proxy's own buffers.
    bound = (cap + _loopback_buffering() + 2**20) // chunk + 1
    total = 2 * bound  # read to the end, the stream would be twice the bound
    produced: list[int] = []
    ended = threading.Event()  # the origin runs in its own thread

    async def endless(_: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield images.png(images.solid(20, 20))[:100]
                for index in range(total):  # as fast as the proxy takes it
                    produced.append(index)
                    yield b"\0" * chunk
                    # A yield point, no wait: the origin's server sees the hang-up and stops this stream
                    # (its sends to a closed connection return without an error).
                    await asyncio.sleep(0)
            finally:
                ended.set()  # the proxy hung up (or, wrongly, read it all)

        return StreamingResponse(chunks(), media_type="image/png")  # no Content-Length

    source = origin.add_handler(unique("endless.png"), endless)
    async with running(make_settings(max_source_bytes=cap)) as proxy:
        response = await proxy.thumb(source)
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    await wait_until(ended.is_set, what="the origin's stream to end")
    assert len(produced) <= bound, (len(produced), bound)  # the proxy stopped reading at the cap


async def test_slow_origin_is_504(make_settings: Callable[..., Settings], origin: Origin, unique) -> None:
    slow = origin.add(unique("slow.png"), images.png(images.solid(20, 20)), delay=2.0)
    trickle = origin.add(unique("trickle.png"), images.png(images.photo(200, 200)) + b"\0" * 300_000,
                         chunk_delay=0.5)
    async with running(make_settings(fetch_timeout=0.5, negative_ttl=0)) as proxy:
        for source in (slow, trickle):
            response = await proxy.thumb(source)
            assert response.status_code == 504, source
            assert response.json()["error"] == "origin_timeout"


async def test_unreachable_origin_is_502(make_settings: Callable[..., Settings]) -> None:
    port = free_port()
    async with running(make_settings(allowed_sources=[f"127.0.0.1:{port}"])) as proxy:
        response = await proxy.thumb(f"http://127.0.0.1:{port}/a.jpg")
    assert response.status_code == 502 and response.json()["error"] == "origin_unreachable"


async def test_origin_error_status_is_502(proxy, origin: Origin, unique) -> None:
    source = origin.add(unique("boom.jpg"), b"oops", status=500)
    response = await proxy.thumb(source)
    assert response.status_code == 502 and response.json()["error"] == "origin_error"
    assert "500" in response.json()["detail"]


async def test_svg_is_refused_without_any_request(proxy, origin: Origin, unique) -> None:
    svg = images.SVG_WITH_REFERENCES.replace(b"ORIGIN", origin.base_url.encode() + unique("").encode().rstrip(b"/"))
    source = origin.add(unique("x.svg"), svg, content_type="image/svg+xml")
    response = await proxy.thumb(source)
    assert response.status_code == 415 and response.json()["error"] == "unsupported_type"
    assert origin.hits[unique("svg-css")] == 0 and origin.hits[unique("svg-href.png")] == 0
