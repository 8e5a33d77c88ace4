"""The thumbnail endpoint's HTTP contract: signatures, errors, caching headers, tiers."""

from __future__ import annotations

from collections.abc import Callable

import pyvips

from proxy.storage import DiskStore
from proxy.urls import encode_source, sign, thumbnail_path, thumbnail_url
from tests.proxy.conftest import Running, running
from tests.support import images
from tests.support.origin import Origin
from thumbs.settings import Settings


async def test_thumbnail_answer_headers_and_body(proxy: Running, origin: Origin, unique) -> None:
    source = origin.add(unique("a.jpg"), images.jpeg(images.photo(800, 600)), content_type="image/jpeg")
    response = await proxy.thumb(source)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-thumb-tier"] == "generated"
    etag = response.headers["etag"]
    assert etag.startswith('"') and not etag.startswith('W/')
    image = pyvips.Image.new_from_buffer(response.content, "")
    assert (image.width, image.height) == (200, 150)


async def test_etag_304_and_head(proxy: Running, origin: Origin, unique) -> None:
    source = origin.add(unique("b.png"), images.png(images.photo(300, 300)), content_type="image/png")
    first = await proxy.thumb(source)
    etag = first.headers["etag"]
    again = await proxy.thumb(source, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await proxy.thumb(source, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content
    head = await proxy.client.head(proxy.path(source))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first.content))
    assert head.headers["x-thumb-tier"] == "memory"


async def test_bad_signatures_are_403_json(proxy: Running, origin: Origin, unique) -> None:
    source = origin.add(unique("c.jpg"), images.jpeg(images.photo(100, 100)))
    path = proxy.path(source)
    _, _, signature, variant, filename = path.split("/")
    tampered_sig = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_source = encode_source(source + "?x") + ".jpg"
    for bad in (
        f"/t/{tampered_sig}/{variant}/{filename}",
        f"/t/{signature[:-2]}/{variant}/{filename}",
        f"/t/{signature}/{variant}/{other_source}",
        f"/t/{sign('another-key', variant, encode_source(source))}/{variant}/{filename}",
    ):
        response = await proxy.client.get(bad)
        assert response.status_code == 403, bad
        assert response.json()["error"] == "bad_signature"
    assert origin.hits[unique("c.jpg")] == 0


async def test_previous_secret_still_verifies(make_settings: Callable[..., Settings], origin: Origin, unique) -> None:
    source = origin.add(unique("d.jpg"), images.jpeg(images.photo(100, 100)))
    old_path = thumbnail_path(source, "old-key")
    async with running(make_settings(secret="new-key", previous_secrets=["old-key"])) as proxy:
        old = await proxy.client.get(old_path)
        new = await proxy.client.get(thumbnail_path(source, "new-key"))
        assert old.status_code == 200 and new.status_code == 200
        # One cache entry for both URLs: the signature is not part of the key.
        assert new.headers["x-thumb-tier"] == "memory"
    async with running(make_settings(secret="new-key")) as proxy:
        assert (await proxy.client.get(old_path)).status_code == 403


async def test_url_is_deterministic(origin: Origin) -> None:
    one = thumbnail_url("https://img.example.com/a.jpg", "k", "http://edge")
    assert one == thumbnail_url("https://img.example.com/a.jpg", "k", "http://edge")
    assert one.startswith("http://edge/t/") and one.endswith(".jpg")


async def test_unknown_paths_and_methods_are_json(proxy: Running) -> None:
    signature = "A" * 43
    for path in ("/t/", "/t/abc", "/t/a/b/c/d", f"/t/{signature}/huge/abc.jpg", f"/t/{signature}/thumb/abc.png"):
        response = await proxy.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = await proxy.client.request(method, "/t/anything")
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"
    response = await proxy.client.get("/warm")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


async def test_error_contract_over_http(proxy: Running, origin: Origin, unique) -> None:
    whole = images.jpeg(images.photo(600, 400))
    cases = {
        "empty.jpg": (b"", 415, "unsupported_type"),
        "random.jpg": (images.random_bytes(), 415, "unsupported_type"),
        "page.jpg": (images.HTML, 415, "unsupported_type"),
        "bomb.png": (images.png_bomb(), 413, "too_many_pixels"),
        "cut.jpg": (whole[: len(whole) // 2], 422, "undecodable"),
    }
    for name, (body, status, code) in cases.items():
        source = origin.add(unique(name), body, content_type="image/jpeg")
        response = await proxy.thumb(source)
        assert response.status_code == status, name
        assert response.json() == {"error": code, "detail": response.json()["detail"]}
        assert response.headers["cache-control"] == "no-store"
    missing = origin.base_url + unique("missing.jpg")
    response = await proxy.thumb(missing)
    assert response.status_code == 502 and response.json()["error"] == "origin_error"


async def test_avif_and_heic_over_http(proxy: Running, origin: Origin, unique) -> None:
    """The fetcher's body is a bytearray: the ISO-BMFF brand sniff must take it (AVIF was a
    422 "could not be processed (TypeError)", an undecodable HEIC the same instead of a 415)."""
    avif = origin.add(unique("a.avif"), images.photo(400, 300).heifsave_buffer(compression="av1"))
    response = await proxy.thumb(avif)
    assert response.status_code == 200, response.text
    image = pyvips.Image.new_from_buffer(response.content, "")
    assert (image.width, image.height) == (200, 150)
    heic = origin.add(unique("a.heic"), images.FAKE_HEIC)
    response = await proxy.thumb(heic)
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_type"


async def test_failures_are_negatively_cached(proxy: Running, origin: Origin, unique) -> None:
    source = origin.add(unique("broken.jpg"), images.HTML, content_type="image/jpeg")
    for _ in range(3):
        assert (await proxy.thumb(source)).status_code == 415
    assert origin.hits[unique("broken.jpg")] == 1


async def test_negative_cache_can_be_off(make_settings: Callable[..., Settings], origin: Origin, unique) -> None:
    source = origin.add(unique("broken.jpg"), images.HTML)
    async with running(make_settings(negative_ttl=0)) as proxy:
        for _ in range(2):
            assert (await proxy.thumb(source)).status_code == 415
    assert origin.hits[unique("broken.jpg")] == 2


async def test_one_bad_image_does_not_affect_another(proxy: Running, origin: Origin, unique) -> None:
    bad = origin.add(unique("bad.jpg"), images.jpeg_bomb())
    good = origin.add(unique("good.jpg"), images.jpeg(images.photo(300, 200)))
    assert (await proxy.thumb(bad)).status_code == 413
    assert (await proxy.thumb(good)).status_code == 200


async def test_disk_tier_after_restart(make_settings: Callable[..., Settings], origin: Origin, unique) -> None:
    settings = make_settings()
    source = origin.add(unique("e.jpg"), images.jpeg(images.photo(300, 200)))
    async with running(settings) as proxy:
        first = await proxy.thumb(source)
        assert first.headers["x-thumb-tier"] == "generated"
        assert (await proxy.thumb(source)).headers["x-thumb-tier"] == "memory"
    async with running(settings) as proxy:
        from_disk = await proxy.thumb(source)
        assert from_disk.headers["x-thumb-tier"] == "disk"
        assert from_disk.content == first.content and from_disk.headers["etag"] == first.headers["etag"]
        assert (await proxy.thumb(source)).headers["x-thumb-tier"] == "memory"
    assert origin.hits[unique("e.jpg")] == 1


async def test_corrupt_disk_entry_is_regenerated(
    make_settings: Callable[..., Settings], origin: Origin, unique
) -> None:
    settings = make_settings()
    source = origin.add(unique("f.jpg"), images.jpeg(images.photo(300, 200)))
    async with running(settings) as proxy:
        await proxy.thumb(source)
        request_key = next(iter(proxy.proxy.service.memory._entries))
        store = proxy.proxy.service.store
        assert isinstance(store, DiskStore)  # the default store_url: files under the data dir
        path = store.path(request_key)
    path.write_bytes(b"half a fi")
    async with running(settings) as proxy:
        response = await proxy.thumb(source)
        assert response.status_code == 200 and response.headers["x-thumb-tier"] == "generated"
    assert origin.hits[unique("f.jpg")] == 2


async def test_redis_tier_fills_memory(redis_settings: Callable[..., Settings], origin: Origin, unique,
                                       tmp_path) -> None:
    settings = redis_settings()
    source = origin.add(unique("g.jpg"), images.jpeg(images.photo(300, 200)))
    async with running(settings) as proxy:
        assert (await proxy.thumb(source)).headers["x-thumb-tier"] == "generated"
    # Another host: same Redis, empty disk.
    elsewhere = settings.model_copy(update={"data_dir": tmp_path / "other-host"})
    async with running(elsewhere) as proxy:
        assert (await proxy.thumb(source)).headers["x-thumb-tier"] == "redis"
        assert (await proxy.thumb(source)).headers["x-thumb-tier"] == "memory"
    assert origin.hits[unique("g.jpg")] == 1
