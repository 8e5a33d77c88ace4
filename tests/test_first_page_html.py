"""The picker's page carries the listing's first page and preloads its first thumbnails."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import orjson

from tests.support.origin import Origin
from thumbs.app import create_app
from thumbs.demo.images import demo_image
from thumbs.resources import frontend_dist
from thumbs.settings import Settings

FIRST_PAGE = re.compile(r'<script id="thumbs-first-page" type="application/json">(.*?)</script>', re.S)


async def test_index_inlines_the_first_page(make_settings: Callable[..., Settings], origin: Origin) -> None:
    assert (frontend_dist() / "index.html").is_file(), "run `make build` first"
    app = create_app(make_settings(), warm_consumer=False)
    sources = [origin.add(f"/first-page/{n}.png", demo_image(n, "small").data, content_type="image/png")
               for n in range(3)]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://thumbs.test") as http:
            for n, source in enumerate(sources):
                label = "</script><script>alert(1)</script>" if n == 0 else "p"
                response = await http.post("/api/library/images", json={"url": source, "pipeline_id": label,
                                                                           "step": "s"})
                assert response.status_code == 201, response.text
            listing = (await http.get("/api/library/images", params={"limit": 50})).json()
            page = await http.get("/")
            plain = await http.get("/?inline=0")
            themed = await http.get("/?theme=dark")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    match = FIRST_PAGE.search(page.text)
    assert match is not None, page.text
    assert "</script><script>" not in match.group(1)  # the label cannot end the element early
    inline = orjson.loads(match.group(1))
    # The same page as the API's (statuses may move on as warm-ups finish in between).
    assert [image["id"] for image in inline["images"]] == [image["id"] for image in listing["images"]]
    assert inline["images"][-1]["pipeline_id"] == "</script><script>alert(1)</script>"
    assert {key: inline[key] for key in ("total", "limit", "offset", "head_cursor")} == {
        key: listing[key] for key in ("total", "limit", "offset", "head_cursor")}
    hints = re.search(r"sessionStorage.*\}\)\((\[\[.*?\]\])\)</script>", page.text)
    assert hints is not None, page.text
    preloads = [(cell, candidates) for cell, candidates, _ in orjson.loads(hints.group(1))]
    assert preloads == [(image["cell_thumbnail_url"], f"{image['cell_thumbnail_url']} 200w, "
                         f"{image['cell_thumbnail_url_2x']} 400w") for image in listing["images"][:12]]
    assert FIRST_PAGE.search(plain.text) is None
    assert FIRST_PAGE.search(themed.text) is not None
    # The page's own hint to fetch the first listing page goes: the data is inline.
    assert 'as="fetch"' not in page.text and 'as="fetch"' in plain.text
