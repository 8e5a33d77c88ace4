"""The picker's square cell variants: 1x and 2x, centre-cropped, signed like the thumbnail,
and made together with it when an image is warmed, from one origin download."""

from __future__ import annotations

from collections.abc import Callable

import pyvips

from proxy.pipeline import render
from proxy.urls import ThumbnailRequest, cache_key, thumbnail_path
from proxy.variants import CELL, CELL_2X, DEFAULT_VARIANT, VARIANTS
from tests.proxy.conftest import Running
from tests.support import images
from tests.support.origin import Origin


def test_cells_are_squares_at_1x_and_2x_and_small_sources_are_not_upscaled() -> None:
    wide = images.jpeg(images.photo(1792, 1024))
    assert (render(wide, CELL, 50_000_000).output_width, render(wide, CELL, 50_000_000).output_height) == (200, 200)
    double = render(wide, CELL_2X, 50_000_000)
    assert (double.output_width, double.output_height) == (400, 400)
    assert len(double.data) <= CELL_2X.max_bytes
    # The source's own size is still reported (the API's width/height).
    assert (double.width, double.height) == (1792, 1024)
    small = render(images.png(images.photo(150, 90)), CELL_2X, 50_000_000)
    assert (small.output_width, small.output_height) == (90, 90)
    decoded = pyvips.Image.new_from_buffer(double.data, "")
    assert decoded.width == decoded.height == 400


def test_variants_are_named_in_urls_and_cached_apart() -> None:
    assert {"thumb", "cell", "cell2x"} <= set(VARIANTS)
    source = "https://cdn.example/a.png"
    paths = {variant.name: thumbnail_path(source, "k", variant) for variant in (DEFAULT_VARIANT, CELL, CELL_2X)}
    assert len(set(paths.values())) == 3 and all(f"/{name}/" in path for name, path in paths.items())
    assert len({cache_key(source, variant) for variant in (DEFAULT_VARIANT, CELL, CELL_2X)}) == 3


async def test_warming_makes_the_cells_from_one_download(proxy: Running, origin: Origin,
                                                         unique: Callable[[str], str]) -> None:
    path = unique("cells.jpg")
    source = origin.add(path, images.jpeg(images.photo(1024, 768)), content_type="image/jpeg")
    response = await proxy.client.post("/warm", json={"sources": [source], "wait": True},
                                       headers={"authorization": "Bearer warm-token"})
    assert response.status_code == 200 and response.json()["results"][0]["ok"], response.text
    store = proxy.proxy.service.store
    for variant in (DEFAULT_VARIANT, CELL, CELL_2X):
        assert await store.exists(ThumbnailRequest(source, variant).cache_key), variant.name
    assert origin.hits[path] == 1
    # A page view of a cell is then a stored hit, not a render.
    cell = await proxy.client.get(thumbnail_path(source, "test-secret", CELL_2X))
    assert cell.status_code == 200 and cell.headers["x-thumb-tier"] in ("memory", "redis", "disk")
    assert origin.hits[path] == 1
