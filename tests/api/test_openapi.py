"""GET /api/openapi.json describes every route; real responses validate against it; /docs renders it."""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.validators import Draft202012Validator
from starlette.routing import Route

from tests.api.conftest import Harness
from tests.api.seed import seed

ADMIN = {"authorization": "Bearer admin-token"}


def validate(spec: dict[str, Any], schema_name: str, instance: Any) -> None:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs resolve inside the whole document.
    schema = {"$ref": f"#/components/schemas/{schema_name}", **{"components": spec["components"]}}
    Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)


async def test_spec_lists_every_route_with_its_errors(harness: Harness) -> None:
    response = await harness.client.get("/api/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    routes = {route.path for route in harness.api.component.routes if isinstance(route, Route)}
    documented = set(spec["paths"])
    assert routes == documented
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert method.upper() in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
            assert operation["responses"], (path, method)
            for code, response_spec in operation["responses"].items():
                assert response_spec["description"]
                if int(code) >= 400:
                    assert response_spec["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"
                    }
    get = spec["paths"]["/library/images"]["get"]
    assert {parameter["name"] for parameter in get["parameters"]} == {
        "limit",
        "offset",
        "cursor",
        "until",
        "pipeline_id",
        "step",
        "newer_than",
    }
    assert "400" in get["responses"]
    assert {"400", "413"} <= set(spec["paths"]["/library/images"]["post"]["responses"])
    assert {"401", "403"} <= set(spec["paths"]["/library/generate-thumbnails"]["post"]["responses"])


async def test_real_responses_match_the_spec(harness: Harness, origin_url: Any) -> None:
    spec = (await harness.client.get("/api/openapi.json")).json()
    await seed(harness.api.database, origin_url(""), 5)
    created = await harness.client.post(
        "/api/library/images", json={"url": origin_url("/spec.jpg"), "pipeline_id": "p", "step": "s", "width": 3}
    )
    validate(spec, "Image", created.json())
    page = (await harness.client.get("/api/library/images", params={"limit": 2})).json()
    validate(spec, "ImagePage", page)
    newer = await harness.client.get("/api/library/images", params={"newer_than": page["next_cursor"]})
    assert newer.status_code == 200 and newer.json()["count"] == 1  # the ingested one, above the seeds
    validate(spec, "ImagePage", newer.json())
    validate(spec, "Error", (await harness.client.get("/api/library/images", params={"limit": "x"})).json())
    job = (await harness.client.post("/api/library/generate-thumbnails", headers=ADMIN)).json()
    validate(spec, "JobProgress", job)
    validate(spec, "JobProgress", (await harness.client.get(job["url"], headers=ADMIN)).json())


async def test_docs_page_is_self_contained(harness: Harness) -> None:
    response = await harness.client.get("/api/docs")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'fetch("openapi.json")' in html
    assert "http://" not in html and "https://" not in html  # no CDN assets
