"""Property-based fuzzing (hypothesis) of the URL parser, the signature checker, the source
policy, the decode entry point with mutated real images, and the proxy over real HTTP.

Bounded for ``make test``; ``make soak`` runs the same properties with THUMBS_SOAK_SCALE=20.
No timing assertions: a hang is caught by pytest-timeout.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxy.errors import ProxyError, SourceNotAllowed
from proxy.fetch import SourcePolicy
from proxy.pipeline import configure_libvips, render
from proxy.urls import BadThumbnailURL, SignatureMismatch, encode_source, parse_thumbnail_path, sign, thumbnail_path
from proxy.variants import THUMB
from tests.proxy.app_factory import create_proxy_app
from tests.support import images
from tests.support.origin import Origin
from tests.support.servers import serve_in_thread
from thumbs.configs import proxy_config
from thumbs.settings import Settings

SCALE = int(os.environ.get("THUMBS_SOAK_SCALE", "1"))
FUZZ = settings(max_examples=150 * SCALE, deadline=None, database=None, derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SECRETS = ["current-key", "retired-key"]
URL_ALPHABET = string.ascii_letters + string.digits + "-_=./%:@?#[]\\ \t\x00é☃\U0001f600"

segment = st.text(alphabet=URL_ALPHABET, max_size=60)
signature_like = st.one_of(st.text(alphabet=URL_ALPHABET, min_size=43, max_size=43), segment)


@FUZZ
@given(parts=st.lists(segment, max_size=6), prefix=st.booleans())
@example(parts=["é" * 43, "thumb", "aGVsbG8.jpg"], prefix=True)
@example(parts=["A" * 43, "thumb", "aGVsbG8é.jpg"], prefix=True)
def test_parser_only_raises_its_two_errors(parts: list[str], prefix: bool) -> None:
    path = ("/t/" if prefix else "/") + "/".join(parts)
    try:
        request = parse_thumbnail_path(path, SECRETS)
    except (BadThumbnailURL, SignatureMismatch):
        return
    # Anything accepted is exactly a URL we could have signed with one of our keys.
    given_parts = path.strip("/").split("/")
    given_parts = given_parts[1:] if given_parts[0] == "t" else given_parts
    assert any(thumbnail_path(request.source, key).split("/")[2:] == given_parts for key in SECRETS)


@FUZZ
@given(signature=signature_like, source=st.text(max_size=200))
def test_forged_signatures_never_verify(signature: str, source: str) -> None:
    encoded = encode_source(source)
    path = f"/t/{signature}/thumb/{encoded}.jpg"
    real = {sign(key, "thumb", encoded) for key in SECRETS}
    try:
        parse_thumbnail_path(path, SECRETS)
        accepted = True
    except (BadThumbnailURL, SignatureMismatch):
        accepted = False
    assert accepted == (signature in real)


@FUZZ
@given(source=st.text(min_size=1, max_size=300))
def test_signed_urls_round_trip_for_any_source(source: str) -> None:
    path = thumbnail_path(source, SECRETS[1])
    assert parse_thumbnail_path(path, SECRETS).source == source


POLICY = SourcePolicy(("img.example.com", "*.cdn.example.net", "127.0.0.1:8080"), allow_private=False)


@FUZZ
@given(url=st.one_of(
    st.text(max_size=200),
    st.builds(lambda scheme, host, rest: f"{scheme}://{host}{rest}",
              st.sampled_from(["http", "https", "HTTP", "file", "gopher", "ftp", "", "http:", "javascript"]),
              st.sampled_from(["img.example.com", "a.cdn.example.net", "127.0.0.1:8080", "user@img.example.com",
                               "img.example.com@127.0.0.1", "[::1]", "0x7f.1", "img.example.com.", ""]),
              st.text(alphabet=URL_ALPHABET, max_size=40)),
))
def test_source_policy_only_raises_source_not_allowed(url: str) -> None:
    try:
        parsed = POLICY.check_url(url)
    except SourceNotAllowed:
        return
    assert parsed.scheme in ("http", "https") and not parsed.userinfo
    assert POLICY.host_allowed(parsed.host, parsed.port or {"http": 80, "https": 443}[parsed.scheme])


def _seeds() -> dict[str, bytes]:
    configure_libvips()
    photo = images.photo(48, 32)
    return {
        "jpeg": images.jpeg(photo), "png": images.png(photo), "gif": photo.gifsave_buffer(),
        "webp": photo.webpsave_buffer(Q=70), "tiff": photo.tiffsave_buffer(),
        "webp-lossless": photo.webpsave_buffer(lossless=True), "jpeg-progressive": images.jpeg(photo, interlace=True),
        "png-bomb": images.png_bomb(),
    }


SEEDS = _seeds()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        else:
            other = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
            data[at:] = other[draw(st.integers(0, len(other) - 1)):]
    return bytes(data)


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated_images())
def test_decode_entry_point_raises_only_contract_errors(data: bytes) -> None:
    try:
        rendered = render(data, THUMB, 50_000_000)
    except ProxyError as error:
        assert error.status in (413, 415, 422), error
        return
    assert rendered.data.startswith(b"\xff\xd8") and rendered.data.endswith(b"\xff\xd9")
    assert 1 <= max(rendered.output_width, rendered.output_height) <= THUMB.max_side


@pytest.fixture(scope="module")
def live_proxy(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[tuple[httpx.Client, Settings]]:
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("fuzz"), secret=SECRETS[0],
                        previous_secrets=[SECRETS[1]], allowed_sources=[origin.base_url.removeprefix("http://")],
                        allow_private_sources=True, warm_token="warm-token", negative_ttl=0)
    with serve_in_thread(create_proxy_app(proxy_config(settings), warm_consumer=False)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        yield client, settings


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated_images(), raw_path=st.text(alphabet=URL_ALPHABET, max_size=80))
def test_over_real_http_nothing_is_a_500(live_proxy: tuple[httpx.Client, Settings], origin: Origin,
                                        data: bytes, raw_path: str) -> None:
    client, settings = live_proxy
    source = origin.add(f"/fuzz/{abs(hash(data))}.img", data)
    response = client.get(thumbnail_path(source, settings.secret))
    assert response.status_code in (200, 413, 415, 422), response.text
    forged = client.get("/t/" + quote(raw_path, safe="/%:@[]"))
    # "/t/." is normalised to "/t/" by the client and Starlette redirects it; otherwise a JSON 4xx.
    assert forged.status_code in (307, 403, 404, 405), (raw_path, forged.status_code, forged.text)
    if forged.status_code != 307:
        assert set(forged.json()) == {"error", "detail"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@pytest.mark.timeout(300)
@FUZZ
@given(body=st.one_of(json_values.map(lambda v: httpx.Request("POST", "/", json=v).content),
                      st.binary(max_size=300),
                      st.fixed_dictionaries({"sources": st.lists(st.text(max_size=60), max_size=4),
                                             "wait": st.booleans()}).map(
                          lambda v: httpx.Request("POST", "/", json=v).content)))
def test_warm_body_fuzz_is_never_a_500(live_proxy: tuple[httpx.Client, Settings], body: bytes) -> None:
    client, _ = live_proxy
    response = client.post("/warm", content=body, headers={"authorization": "Bearer warm-token",
                                                           "content-type": "application/json"})
    assert response.status_code in (200, 202, 400, 413), (body, response.status_code, response.text)
    assert isinstance(response.json(), dict)
