"""SSRF battery: every way to reach a private address is a 403 and no connection reaches it.

Private sources are off (production policy). Each refused host is also put on the allowlist,
so what is tested is the address check at connect time, not the allowlist. The "private
target" is a real listener on several 127/8 addresses and ::1 that counts accepts; a control
test shows the same URLs *do* reach it when private sources are allowed, so a zero means the
guard refused, not that the listener was unreachable.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tests.proxy.conftest import running
from tests.reliability.conftest import PUBLIC_A, FakeNetwork, Listener
from tests.support import images
from tests.support.origin import Handler, Origin
from thumbs.settings import Settings

# Spellings of a loopback address, each dialled on the target's port.
LOOPBACK_SPELLINGS = [
    "127.0.0.1", "127.0.0.2", "127.1.2.3", "127.255.255.254",  # the whole 127/8
    "0.0.0.0",  # "this host": Linux connects it to loopback
    "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]",  # IPv6 and v4-mapped
    "2130706433", "0177.0.0.1", "0x7f000001", "0x7f.0.0.1", "0x7f.1", "127.1", "017700000001",  # encodings
    "localhost", "LocalHost",
]
PRIVATE_LITERALS = [
    "10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.254", "192.168.0.1", "192.168.255.254",
    "169.254.169.254", "100.64.0.1", "[fd00::1]", "[fe80::1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]",
    "[fd00:ec2::254]",  # AWS IMDS over IPv6
]
PRIVATE_ANSWERS = {
    "internal.test": ["10.0.0.5"],
    "corp.test": ["172.20.1.1"],
    "home.test": ["192.168.1.10"],
    "metadata.test": ["169.254.169.254"],
    "loop.test": ["127.0.0.1"],
    "loop6.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "zero.test": ["0.0.0.0"],
    "cgnat.test": ["100.100.100.200"],  # Alibaba Cloud's metadata address
    "mixed.test": [PUBLIC_A, "127.0.0.1"],  # one bad answer refuses the whole name
    "mixed-rev.test": ["10.1.1.1", PUBLIC_A],
}


def _url(host: str, port: int, path: str = "/secret.png") -> str:
    return f"http://{host}:{port}{path}"


def _allow(host: str, port: int) -> str:
    return f"{host.lower().rstrip('.')}:{port}"


async def _refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "source_not_allowed"


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_in_any_spelling_is_refused_before_connecting(
    host: str, strict_settings: Callable[..., Settings], target: Listener, network: FakeNetwork
) -> None:
    settings = strict_settings(allowed_sources=[_allow(host, target.port)])
    async with running(settings) as proxy:
        response = await proxy.thumb(_url(host, target.port))
    await _refused(response)
    assert target.accepts == 0
    assert network.dials == []


@pytest.mark.parametrize("host", ["127.0.0.2", "[::1]", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "0.0.0.0"])
async def test_control_the_same_urls_reach_the_target_when_private_sources_are_on(
    host: str, make_settings: Callable[..., Settings], target: Listener, network: FakeNetwork
) -> None:
    settings = make_settings(allowed_sources=[_allow(host, target.port)], allow_private_sources=True, negative_ttl=0)
    async with running(settings) as proxy:
        response = await proxy.thumb(_url(host, target.port))
    # The listener hangs up without an answer: the fetch fails, but it *did* connect.
    assert response.status_code == 502
    assert target.accepts >= 1


@pytest.mark.parametrize("host", PRIVATE_LITERALS)
async def test_private_ranges_and_metadata_literals_are_refused(
    host: str, strict_settings: Callable[..., Settings], network: FakeNetwork
) -> None:
    async with running(strict_settings(allowed_sources=[_allow(host, 80)])) as proxy:
        response = await proxy.thumb(_url(host, 80, "/latest/meta-data/"))
    await _refused(response)
    assert network.dials == []


@pytest.mark.parametrize("name", sorted(PRIVATE_ANSWERS))
async def test_hostnames_resolving_to_private_addresses_are_refused(
    name: str, strict_settings: Callable[..., Settings], target: Listener, network: FakeNetwork
) -> None:
    network.resolve(name, PRIVATE_ANSWERS[name])
    async with running(strict_settings(allowed_sources=[_allow(name, target.port)])) as proxy:
        response = await proxy.thumb(_url(name, target.port))
    await _refused(response)
    assert network.lookups[name] == 1  # refused on the real answer, not on a guess
    assert network.dials == [] and target.accepts == 0


def _redirect(location: str) -> Handler:
    async def handler(_: Request) -> Response:
        return RedirectResponse(location, status_code=302)

    return handler


async def test_redirects_from_an_allowed_origin_to_private_targets_are_refused(
    strict_settings: Callable[..., Settings], target: Listener, network: FakeNetwork, origin: Origin, unique
) -> None:
    origin_port = int(origin.base_url.rsplit(":", 1)[1])
    network.resolve("img.test", [PUBLIC_A])
    network.route(PUBLIC_A, origin_port)
    network.resolve("loop.test", ["127.0.0.1"])
    network.resolve("metadata.test", ["169.254.169.254"])
    port = target.port
    locations = {
        "loopback": f"http://127.0.0.1:{port}/x.png",
        "loopback-other": f"http://127.9.9.9:{port}/x.png",
        "v6": f"http://[::1]:{port}/x.png",
        "mapped": f"http://[::ffff:127.0.0.1]:{port}/x.png",
        "decimal": f"http://2130706433:{port}/x.png",
        "name": f"http://loop.test:{port}/x.png",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/",
        "metadata-name": "http://metadata.test/latest/meta-data/",
        "file": "file:///etc/passwd",
        "gopher": f"gopher://127.0.0.1:{port}/_SET%20x%201",
        "dict": f"dict://127.0.0.1:{port}/info",
        "userinfo": f"http://img.test:{origin_port}@127.0.0.1:{port}/x.png",
    }
    allowed = [f"img.test:{origin_port}", *(f"{h}:{port}" for h in (
        "127.0.0.1", "127.9.9.9", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "loop.test")),
        "169.254.169.254:80", "metadata.test:80"]
    paths = {name: origin.add_handler(unique(name), _redirect(location)) for name, location in locations.items()}
    async with running(strict_settings(allowed_sources=allowed)) as proxy:
        for name, local_url in paths.items():
            source = local_url.replace("127.0.0.1", "img.test", 1)
            response = await proxy.thumb(source)
            assert response.status_code == 403, (name, response.text)
            assert response.json()["error"] == "source_not_allowed", name
            assert origin.hits[unique(name)] == 1, name  # the allowed hop was made ...
    assert target.accepts == 0  # ... and nothing after it
    assert {host for host, _ in network.dials} == {PUBLIC_A}
    assert network.refused_dials == []


async def test_a_refused_redirect_is_remembered_so_repeats_do_not_contact_the_origin(
    strict_settings: Callable[..., Settings], target: Listener, network: FakeNetwork, origin: Origin, unique,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An allowed URL that redirects away is the origin's answer about that URL: forgotten, every
    # request for its thumbnail asked the origin again (an amplifier whoever owns the URL aims).
    origin_port = int(origin.base_url.rsplit(":", 1)[1])
    network.resolve("img.test", [PUBLIC_A])
    network.route(PUBLIC_A, origin_port)
    network.resolve("loop.test", ["127.0.0.1"])
    locations = {
        "ftp": "ftp://img.test/x.png",
        "file": "file:///etc/passwd",
        "data": "data:image/png;base64,iVBORw0KGgo=",
        "other-port": f"http://img.test:{origin_port + 1}/x.png",
        "other-host": f"http://elsewhere.test:{origin_port}/x.png",
        "private": f"http://loop.test:{target.port}/x.png",
    }
    paths = {name: origin.add_handler(unique(name), _redirect(location)) for name, location in locations.items()}
    now = [1000.0]
    monkeypatch.setattr("proxy.negative.time.monotonic", lambda: now[0])
    settings = strict_settings(allowed_sources=[f"img.test:{origin_port}", f"loop.test:{target.port}"],
                               negative_ttl=30)
    async with running(settings) as proxy:
        for round_ in range(5):
            for name, local_url in paths.items():
                response = await proxy.thumb(local_url.replace("127.0.0.1", "img.test", 1))
                assert response.status_code == 403, (name, round_, response.text)
                assert response.json()["error"] == "source_not_allowed", name
        assert {name: origin.hits[unique(name)] for name in paths} == dict.fromkeys(paths, 1)
        now[0] += 30  # THUMBS_NEGATIVE_TTL later the origin is asked again, once
        for _ in range(3):
            for local_url in paths.values():
                assert (await proxy.thumb(local_url.replace("127.0.0.1", "img.test", 1))).status_code == 403
        assert {name: origin.hits[unique(name)] for name in paths} == dict.fromkeys(paths, 2)
    assert target.accepts == 0


async def test_a_source_url_refused_by_the_policy_itself_is_not_remembered(
    make_settings: Callable[..., Settings], network: FakeNetwork, origin: Origin
) -> None:
    # No origin was asked, so refusing again costs nothing: the URLs a client makes up stay
    # out of the negative cache, where they would push out the failures worth keeping.
    network.resolve("loop.test", ["127.0.0.1"])
    sources = ["ftp://img.test/x.png", "http://elsewhere.test/x.png", "http://img.test:81/x.png",
               "http://loop.test/x.png", "http://10.0.0.1/x.png"]
    settings = make_settings(allow_private_sources=False, negative_ttl=30,
                             allowed_sources=["img.test:80", "loop.test", "10.0.0.1"])
    async with running(settings) as proxy:
        for _ in range(3):
            for source in sources:
                await _refused(await proxy.thumb(source))
        assert len(proxy.proxy.service.negative._local) == 0
    assert network.dials == []


async def test_redirect_loops_end_in_a_bounded_502(
    strict_settings: Callable[..., Settings], network: FakeNetwork, origin: Origin, unique
) -> None:
    origin_port = int(origin.base_url.rsplit(":", 1)[1])
    network.resolve("img.test", [PUBLIC_A])
    network.route(PUBLIC_A, origin_port)
    base = f"http://img.test:{origin_port}"
    origin.add_handler(unique("a"), _redirect(base + unique("b")))
    origin.add_handler(unique("b"), _redirect(base + unique("a")))
    origin.add_handler(unique("self"), _redirect(unique("self")))
    async with running(strict_settings(allowed_sources=[f"img.test:{origin_port}"], max_redirects=3)) as proxy:
        loop = await proxy.thumb(base + unique("a"))
        itself = await proxy.thumb(base + unique("self"))
    for response in (loop, itself):
        assert response.status_code == 502 and "redirects" in response.json()["detail"]
    assert origin.hits[unique("a")] + origin.hits[unique("b")] == 4  # max_redirects + 1 requests
    assert origin.hits[unique("self")] == 4


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/passwd", "file://localhost/etc/passwd", "FILE:///etc/passwd", "gopher://127.0.0.1:6379/_INFO",
        "ftp://127.0.0.1/x.jpg", "dict://127.0.0.1:11211/stats", "ldap://127.0.0.1/", "sftp://127.0.0.1/x",
        "tftp://127.0.0.1/x", "jar:http://127.0.0.1/x.jar!/", "netdoc:///etc/passwd", "ws://127.0.0.1/x",
        "data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)", "http+unix://%2Fvar%2Frun%2Fdocker.sock/info",
        "//127.0.0.1/x.jpg", "/etc/passwd", "127.0.0.1:6379", "http:/127.0.0.1/x", "http:///127.0.0.1/x",
    ],
)
async def test_other_schemes_and_malformed_urls_are_refused(
    source: str, strict_settings: Callable[..., Settings], network: FakeNetwork
) -> None:
    settings = strict_settings(allowed_sources=["127.0.0.1", "127.0.0.1:6379", "localhost", "127.0.0.1:11211"])
    async with running(settings) as proxy:
        response = await proxy.thumb(source)
    await _refused(response)
    assert network.dials == []


async def test_userinfo_and_parser_confusion_tricks_never_reach_the_target(
    strict_settings: Callable[..., Settings], target: Listener, network: FakeNetwork, origin: Origin, unique
) -> None:
    origin_port = int(origin.base_url.rsplit(":", 1)[1])
    network.resolve("img.test", [PUBLIC_A])
    network.route(PUBLIC_A, origin_port)
    good = f"img.test:{origin_port}"
    port = target.port
    tricks = [
        f"http://{good}@127.0.0.1:{port}/x.png",  # the classic
        f"http://{good}:pw@127.0.0.1:{port}/x.png",
        f"http://127.0.0.1:{port}#@{good}/x.png",
        f"http://127.0.0.1:{port}?@{good}/x.png",
        f"http://127.0.0.1:{port}\\@{good}/x.png",
        f"http://{good}%40127.0.0.1:{port}/x.png",
        f"http://{good}.127.0.0.1.nip.io:{port}/x.png",
        f"http://127.0.0.1:{port}%23@{good}/x.png",
        f"http://img.test\x00.127.0.0.1:{port}/x.png",
        f"http://img.test:{origin_port}:{port}/x.png",
        f"http://[::1]:{port}@{good}/x.png",
        f"http://{good} @127.0.0.1:{port}/x.png",
    ]
    async with running(strict_settings(allowed_sources=[good])) as proxy:
        for trick in tricks:
            response = await proxy.thumb(trick)
            assert response.status_code == 403, (trick, response.text)
            assert response.json()["error"] == "source_not_allowed", trick
    assert target.accepts == 0
    assert all(host == PUBLIC_A for host, _ in network.dials)


async def test_dns_rebinding_the_second_lookup_is_checked_too(
    strict_settings: Callable[..., Settings], network: FakeNetwork, origin: Origin, unique
) -> None:
    """First answer public (checked, served), every later answer loopback: refused, never dialled."""
    origin_port = int(origin.base_url.rsplit(":", 1)[1])
    network.resolve("rebind.test", lambda lookup: [PUBLIC_A] if lookup == 1 else ["127.0.0.1"])
    network.route(PUBLIC_A, origin_port)
    body = images.png(images.solid(24, 24))
    # The origin closes each connection, so the next request must resolve the name again.
    first = origin.add(unique("first.png"), body, headers={"connection": "close"})
    second = origin.add(unique("second.png"), body, headers={"connection": "close"})
    async with running(strict_settings(allowed_sources=[f"rebind.test:{origin_port}"])) as proxy:
        ok = await proxy.thumb(first.replace("127.0.0.1", "rebind.test"))
        rebound = await proxy.thumb(second.replace("127.0.0.1", "rebind.test"))
    assert ok.status_code == 200
    await _refused(rebound)
    assert network.lookups["rebind.test"] == 2
    assert network.dials == [(PUBLIC_A, origin_port)]  # one dial, to the checked public address
    assert origin.hits[unique("second.png")] == 0


async def test_warm_endpoint_is_not_an_ssrf_side_door(
    strict_settings: Callable[..., Settings], target: Listener, network: FakeNetwork
) -> None:
    network.resolve("loop.test", ["127.0.0.1"])
    sources = [_url("127.0.0.1", target.port), _url("loop.test", target.port), "file:///etc/passwd",
               _url("[::1]", target.port)]
    allowed = [f"127.0.0.1:{target.port}", f"loop.test:{target.port}", f"[::1]:{target.port}"]
    async with running(strict_settings(allowed_sources=allowed), warm_consumer=True) as proxy:
        headers = {"authorization": "Bearer warm-token"}
        waited = await proxy.client.post("/warm", json={"sources": sources, "wait": True}, headers=headers)
        assert waited.status_code == 200
        assert [r["error"] for r in waited.json()["results"]] == ["source_not_allowed"] * 4
    assert target.accepts == 0 and network.dials == []
