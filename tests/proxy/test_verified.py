"""The verified-path memo: only good signatures are remembered, and it stays bounded."""

from __future__ import annotations

import pytest

from proxy.urls import BadThumbnailURL, SignatureMismatch, cache_key, thumbnail_path
from proxy.variants import THUMB
from proxy.verified import VerifiedPaths


def test_memo_returns_the_verified_request_and_never_remembers_failures() -> None:
    paths = VerifiedPaths(["k1"], capacity=4)
    good = thumbnail_path("http://127.0.0.1/a.jpg", "k1")
    request = paths.parse(good)
    assert request.source == "http://127.0.0.1/a.jpg" and request.cache_key == cache_key(request.source, THUMB)
    assert paths.parse(good) is request
    forged = thumbnail_path("http://127.0.0.1/a.jpg", "other-key")
    for _ in range(2):  # a failure is checked again every time, never memoised
        with pytest.raises(SignatureMismatch):
            paths.parse(forged)
        with pytest.raises(BadThumbnailURL):
            paths.parse("/t/x/thumb/y.png")
    assert len(paths) == 1


def test_memo_is_bounded_and_drops_the_oldest() -> None:
    paths = VerifiedPaths(["k1"], capacity=3)
    urls = [thumbnail_path(f"http://127.0.0.1/{n}.jpg", "k1") for n in range(5)]
    for url in urls:
        paths.parse(url)
    assert len(paths) == 3
    assert paths.parse(urls[-1]).source == "http://127.0.0.1/4.jpg"
    assert paths.parse(urls[0]).source == "http://127.0.0.1/0.jpg"  # re-verified after eviction
    assert len(paths) == 3
