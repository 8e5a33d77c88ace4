"""The one source parser: any text is a parsed URL or a refusal with a reason, nothing else.

Fuzzed with hypothesis over arbitrary text and over URL-shaped text built from the pieces
that broke it before (brackets, full-width slashes, ports, junk hosts); then the warm-up's
``resolve``, which sits on top of it, gets the same treatment.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from proxy.errors import ProxyError, SourceNotAllowed
from proxy.fetch import SourcePolicy
from proxy.source_url import parse_source_url
from proxy.urls import ThumbnailRequest, thumbnail_url
from proxy.variants import THUMB
from proxy.warm import Warmer

FUZZ = settings(max_examples=400, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
POLICY = SourcePolicy(("img.example.com", "*.cdn.example.net", "127.0.0.1:8080", "[::1]:8080"), allow_private=False)
PIECES = ["[", "]", "[x", "[object Object]", "\uff0f", "\u2044", "\uff1a", ":", "@", "%", "%2F", "%00", "#", "?",
          "\\", "..", ".", "::1", "0x7f.1", "99999", "-1", "\u00ad", "\u200b", "\u202e", "xn--", "\u0130", "é", " "]
url_like = st.builds(
    lambda scheme, sep, host, port, rest: f"{scheme}{sep}{host}{port}{rest}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "", "javascript", "h\u0074tp"]),
    st.sampled_from(["://", ":/", ":", "//", ":\\\\", "\uff1a\uff0f\uff0f"]),
    st.one_of(st.sampled_from(["img.example.com", "a.cdn.example.net", "127.0.0.1", "[::1]", "[x", "[object Object]",
                               "img.example.com\uff0f", "", "user@img.example.com"]),
              st.text(alphabet=string.printable + "".join(PIECES), max_size=30)),
    st.sampled_from(["", ":8080", ":0", ":65536", ":99999999999", ":-1", ":x", ":\u0662"]),
    st.lists(st.sampled_from([*PIECES, "/", "/t/", "x.png", "a"]), max_size=8).map("".join),
)


@FUZZ
@given(text=st.one_of(st.text(max_size=300), url_like))
@example(text="http://[x")
@example(text="http://[object Object]/x.png")
@example(text="http://img.example.com\uff0fx.png")
@example(text="http://img.example.com:99999/x.png")
@example(text="http://img.example.com:\u0662/x.png")
def test_the_parser_only_ever_refuses(text: str) -> None:
    try:
        parsed = POLICY.check_url(text)
    except SourceNotAllowed as refusal:
        assert refusal.status == 403 and refusal.detail  # a reason, in the error contract
        return
    assert parsed.scheme in ("http", "https") and not parsed.userinfo and parsed.host
    assert parsed.port is None or 0 < parsed.port <= 65535


@pytest.mark.parametrize("text", ["http://xn--ls8h.img.example.com/x.png", "http://xn--a.cdn.example.net/x.png",
                                  "http://xn--zz.cdn.example.net/", "https://xn--0.img.example.com/x.png"])
def test_malformed_idna_labels_are_refused(text: str) -> None:
    """Hosts the name regex accepts but idna cannot decode (emoji or junk punycode) are a 403
    refusal, not idna's InvalidCodepoint/IDNAError from ``URL.host`` later (a 422 before)."""
    with pytest.raises(SourceNotAllowed):
        parse_source_url(text)
    with pytest.raises(SourceNotAllowed):
        POLICY.check_url(text)


@pytest.mark.parametrize("value", [None, 1, b"http://img.example.com/x.png", ["x"], {"url": "x"}, ""])
def test_non_strings_are_refused_too(value: object) -> None:
    with pytest.raises(SourceNotAllowed):
        parse_source_url(value)


@pytest.mark.parametrize(
    "url",
    ["http://[x", "http://[object Object]/x.png", "http://img.example.com\uff0fx.png", "http://%41.com/x.png",
     "http://img.example.com:99999/x.png", "http://[fe80::1%25eth0]/x.png", "http://img.example.com/\x00",
     "http://img.example.com/a b.png", "http://a..b/x.png", "http://-/x.png", "http:///x.png"],
)
def test_the_issue_examples_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(SourceNotAllowed) as refusal:
        parse_source_url(url)
    assert refusal.value.code == "source_not_allowed" and refusal.value.detail


@pytest.mark.parametrize(
    "url",
    ["https://img.example.com/a.jpg", "http://IMG.example.com/x.png?w=1#f", "https://b\u00fccher.example/x.png",
     "http://127.0.0.1:8080/x", "http://[::1]:8080/x", "http://0x7f.1/x", "http://a_b.example/x", "http://x.com./a"],
)
def test_real_urls_parse(url: str) -> None:
    assert parse_source_url(url).host


class _NoQueue:
    async def put(self, sources: object) -> None:  # pragma: no cover - resolve never queues
        raise AssertionError


def _warmer() -> Warmer:
    return Warmer(service=None, policy=POLICY, secrets=["s3cret"], queue=_NoQueue(),  # type: ignore[arg-type]
                  concurrency=1, public_base_url="https://thumbs.example")


@FUZZ
@given(text=st.one_of(st.text(max_size=200), url_like, url_like.map(lambda u: "/t/" + u)))
def test_warm_resolve_only_ever_refuses(text: str) -> None:
    try:
        request = _warmer().resolve(text)
    except ProxyError as refusal:
        assert 400 <= refusal.status < 500 and refusal.code
        return
    assert isinstance(request, ThumbnailRequest)


def test_an_origin_path_under_t_is_an_origin_and_our_own_urls_are_thumbnails() -> None:
    warmer = _warmer()
    origin = "https://img.example.com/t/x.png"
    assert warmer.resolve(origin) == ThumbnailRequest(origin, THUMB)
    shaped = "https://img.example.com/t/" + "A" * 43 + "/thumb/aGVsbG8.jpg"  # a thumbnail's shape, not signed
    assert warmer.resolve(shaped).source == shaped
    ours = thumbnail_url(origin, "s3cret", "https://thumbs.example")
    assert warmer.resolve(ours).source == origin
    elsewhere = thumbnail_url(origin, "s3cret", "https://cdn.thumbs.example")  # signed: ours behind another name
    assert warmer.resolve(elsewhere).source == origin
    forged = thumbnail_url(origin, "wrong", "https://thumbs.example")
    with pytest.raises(ProxyError) as refusal:
        warmer.resolve(forged)
    assert refusal.value.code == "bad_signature"
