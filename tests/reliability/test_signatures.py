"""Signed URLs: tampering of any part is a 403, retired keys stop working, comparison is constant-time."""

from __future__ import annotations

import hmac
from collections.abc import Callable

import pytest

from proxy import urls
from proxy.urls import encode_source, sign, thumbnail_path
from proxy.variants import THUMB, Variant
from tests.proxy.conftest import running
from tests.support import images
from tests.support.origin import Origin
from thumbs.settings import Settings

HUGE = Variant(name="huge", max_side=4000, quality=95)


def _swap_char(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


async def test_every_tampering_is_a_403_and_never_fetches(
    make_settings: Callable[..., Settings], origin: Origin, unique, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(urls.VARIANTS, HUGE.name, HUGE)  # a second real variant to swap to
    source = origin.add(unique("a.jpg"), images.jpeg(images.solid(40, 40)))
    other = origin.add(unique("other.jpg"), images.jpeg(images.solid(40, 40)))
    settings = make_settings()
    path = thumbnail_path(source, settings.secret)
    _, _, signature, variant, filename = path.split("/")
    encoded = filename.removesuffix(".jpg")
    tampered = {
        "source": f"/t/{signature}/{variant}/{encode_source(other)}.jpg",
        "source-one-char": f"/t/{signature}/{variant}/{_swap_char(encoded, len(encoded) - 3)}.jpg",
        "variant": f"/t/{signature}/{HUGE.name}/{encoded}.jpg",
        "signature-first-char": f"/t/{_swap_char(signature, 0)}/{variant}/{encoded}.jpg",
        "signature-last-char": f"/t/{_swap_char(signature, 42)}/{variant}/{encoded}.jpg",
        "truncated": f"/t/{signature[:42]}/{variant}/{encoded}.jpg",
        "truncated-half": f"/t/{signature[:21]}/{variant}/{encoded}.jpg",
        "padded": f"/t/{signature}=/{variant}/{encoded}.jpg",
        "empty": f"/t//{variant}/{encoded}.jpg",
        "hex-digest": f"/t/{hmac.new(b'test-secret', b'x', 'sha256').hexdigest()}/{variant}/{encoded}.jpg",
        "lowercased": f"/t/{signature.lower()}/{variant}/{encoded}.jpg",
        "other-key": thumbnail_path(source, "some-other-secret"),
        "empty-key": f"/t/{sign('', variant, encoded)}/{variant}/{encoded}.jpg",
    }
    async with running(settings) as proxy:
        assert (await proxy.client.get(path)).status_code == 200
        for name, bad in tampered.items():
            response = await proxy.client.get(bad)
            assert response.status_code in (403, 404), (name, response.status_code)
            assert response.json()["error"] in ("bad_signature", "not_found"), name
            if name != "empty":  # those are not even URL-shaped
                assert response.status_code == 403, name
    assert origin.hits[unique("a.jpg")] == 1 and origin.hits[unique("other.jpg")] == 0


async def test_retired_keys(make_settings: Callable[..., Settings], origin: Origin, unique) -> None:
    source = origin.add(unique("a.jpg"), images.jpeg(images.solid(40, 40)))
    old = thumbnail_path(source, "key-2023")
    older = thumbnail_path(source, "key-2022")
    settings = make_settings(secret="key-2024", previous_secrets=["key-2023"])
    async with running(settings) as proxy:
        assert (await proxy.client.get(old)).status_code == 200  # still accepted while listed
        retired = await proxy.client.get(older)  # dropped from the list: refused
        assert retired.status_code == 403 and retired.json()["error"] == "bad_signature"
    async with running(make_settings(secret="key-2024")) as proxy:
        rotated_out = await proxy.client.get(old)
        assert rotated_out.status_code == 403 and rotated_out.json()["error"] == "bad_signature"


def test_comparison_checks_every_key_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: whichever key matches (or none), every key is compared in constant time."""
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(urls.hmac, "compare_digest", spy)
    keys = ["k1", "k2", "k3"]
    encoded = encode_source("https://img.example.com/a.jpg")
    for signature, expected in ((sign("k1", "thumb", encoded), True), (sign("k3", "thumb", encoded), True),
                                (_swap_char(sign("k1", "thumb", encoded), 0), False),
                                (_swap_char(sign("k1", "thumb", encoded), 42), False)):
        calls.clear()
        assert urls.verify(signature, "thumb", encoded, keys) is expected
        assert len(calls) == len(keys)
        assert all(b == signature for _, b in calls)


@pytest.mark.parametrize(
    "path",
    [
        "/t/" + "é" * 43 + "/thumb/aGVsbG8.jpg",  # non-ASCII signature of the right length
        "/t/" + "A" * 42 + "\u00ff/thumb/aGVsbG8.jpg",
        "/t/" + "A" * 43 + "/thumb/aGVsbG8é.jpg",  # non-ASCII source
        "/t/" + "A" * 43 + "/thumb/\u2603.jpg",
        "/t/" + "A" * 43 + "/thumb/%00.jpg",
        "/t/" + "A" * 43 + "/thumb/..%2F..%2Fetc%2Fpasswd.jpg",
    ],
)
async def test_non_ascii_and_odd_paths_are_4xx_not_500(proxy, path: str) -> None:
    response = await proxy.client.get(path)
    assert response.status_code in (403, 404), response.text
    assert response.json()["error"] in ("bad_signature", "not_found")


@pytest.mark.parametrize("source", ["/t/" + "é" * 43 + "/thumb/aGVsbG8.jpg", "/t/" + "A" * 43 + "/thumb/aGVsbG8é.jpg"])
async def test_non_ascii_thumbnail_paths_in_warm_are_refused_not_500(proxy, source: str) -> None:
    response = await proxy.client.post("/warm", json={"sources": [source], "wait": True},
                                       headers={"authorization": "Bearer warm-token"})
    assert response.status_code == 200
    assert response.json()["results"][0]["ok"] is False


def test_signature_length_matches_the_contract() -> None:
    assert len(sign("k", THUMB.name, encode_source("https://a.example/x.jpg"))) == urls.SIGNATURE_CHARS
