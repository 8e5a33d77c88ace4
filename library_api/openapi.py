"""The API's OpenAPI 3.1 description (hand-written: it is the contract) and a docs page."""

from __future__ import annotations

from typing import Any

from library_api.backfill import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from library_api.images import NEWER_COUNT_CAP
from library_api.paging import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, MAX_OFFSET
from library_api.requests import MAX_BODY_BYTES
from library_api.sources import MAX_URL_LENGTH

MAX_LABEL_LENGTH = 200
CURSOR_EXAMPLE = "WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxMjMsMV0"
STABLE_EXAMPLE = (
    "GET /api/library/images?limit=50 -> head_cursor H; "
    "GET /api/library/images?until=H&offset=50&limit=50 (page 2, unchanged by new images); "
    "GET /api/library/images?newer_than=H&limit=50 -> the new ones and count"
)
MAX_SIDE = 1_000_000


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def json_body(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": ref(schema)}}}
    if headers:
        response["headers"] = headers
    return response


UNAVAILABLE = error("The database is unavailable; retry after the Retry-After seconds.")
UNAUTHORIZED = error("No bearer token (`Authorization: Bearer <THUMBS_ADMIN_TOKEN>`).")
FORBIDDEN = error("The token is wrong, or admin endpoints are disabled (no THUMBS_ADMIN_TOKEN).")
TOO_LARGE = error(f"The body is larger than {MAX_BODY_BYTES} bytes.")
ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]
INGEST: list[dict[str, list[str]]] = [{"ingestToken": []}, {}]  # required only when THUMBS_INGEST_TOKEN is set

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. `invalid_parameter`."},
            "detail": {"type": "string", "description": "What was wrong, for people."},
        },
    },
    "Image": {
        "type": "object",
        "required": [
            "id",
            "url",
            "thumbnail_url",
            "cell_thumbnail_url",
            "cell_thumbnail_url_2x",
            "created_at",
            "width",
            "height",
            "color",
            "pipeline_id",
            "step",
            "thumbnail_status",
        ],
        "properties": {
            "id": {"type": "integer"},
            "url": {
                "type": "string",
                "description": "The full image (load it only when chosen): an http(s) URL, or for a legacy row a "
                "path on this origin (`/...`), of at most 4,096 bytes. A legacy row holding anything else "
                "(`javascript:`, `file:`, a huge `data:` URL, junk) is kept but not listed and not counted.",
            },
            "thumbnail_url": {
                "type": ["string", "null"],
                "description": "Signed thumbnail URL on the proxy (JPEG, at most 200 px); the proxy makes the "
                "thumbnail on first request if it was never warmed. Null only for a legacy row whose url the proxy "
                "would refuse (not http(s), a host outside THUMBS_ALLOWED_SOURCES, unparseable): show `url` or a "
                "placeholder.",
            },
            "cell_thumbnail_url": {
                "type": ["string", "null"],
                "description": "The picker's square cell (centre crop, 200 px, JPEG q65), signed and cached like "
                "`thumbnail_url` and warmed with it. Null when `thumbnail_url` is.",
            },
            "cell_thumbnail_url_2x": {
                "type": ["string", "null"],
                "description": "The same cell at 400 px (JPEG q50) for high-density screens: "
                "`srcset=\"{cell_thumbnail_url} 200w, {cell_thumbnail_url_2x} 400w\"`. Null when `thumbnail_url` is.",
            },
            "created_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "UTC. Null for a legacy row whose date could not be read; those are listed after "
                "every dated image, newest id first.",
            },
            "width": {"type": ["integer", "null"], "description": "Source width in pixels, when known."},
            "height": {"type": ["integer", "null"], "description": "Source height in pixels, when known."},
            "color": {
                "type": ["string", "null"],
                "pattern": "^#[0-9a-f]{6}$",
                "description": "Dominant colour, to paint the cell before the thumbnail arrives.",
            },
            "pipeline_id": {"type": ["string", "null"]},
            "step": {"type": ["string", "null"]},
            "thumbnail_status": {"type": "string", "enum": ["pending", "ready", "failed"]},
        },
    },
    "ImagePage": {
        "type": "object",
        "required": ["images", "total", "limit", "offset", "next_cursor"],
        "properties": {
            "images": {"type": "array", "items": ref("Image"), "description": "Newest first, ties by id."},
            "total": {"type": "integer", "minimum": 0, "description": "Exact number of images in the library (the rows "
                          "listed: those without a url, or whose url is no web address, are not)."},
            "limit": {"type": "integer"},
            "offset": {
                "type": "integer",
                "description": "Position of the first image of this page (with a cursor: as of when the walk began).",
            },
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
            "head_cursor": {
                "type": ["string", "null"],
                "description": "The position of this page's FIRST image; null when the page is empty. Pass it as "
                "`until` to keep later pages fixed while images are added, and as `newer_than` to ask what "
                "arrived since.",
            },
            "until_total": {
                "type": "integer",
                "minimum": 0,
                "description": "Only with `until`: how many images are at or below that position now (`total` "
                "also counts those added above it). It drops only when images under the bound were deleted, "
                f"which shifts every later offset. Left out when more than {NEWER_COUNT_CAP:,} images are newer.",
            },
            "count": {
                "type": "integer",
                "minimum": 0,
                "maximum": NEWER_COUNT_CAP,
                "description": f"Only with `newer_than`: how many images are newer than that position in all "
                f"(not just this page). Exact up to {NEWER_COUNT_CAP:,}; at the cap it means that many or more.",
            },
            "count_capped": {
                "type": "boolean",
                "description": f"Only with `newer_than`: true when `count` stopped at {NEWER_COUNT_CAP:,}.",
            },
        },
    },
    "NewImage": {
        "type": "object",
        "required": ["url", "pipeline_id", "step"],
        "properties": {
            "url": {
                "type": "string",
                "maxLength": MAX_URL_LENGTH,
                "pattern": "^https?://[!-~]+$",
                "description": "http(s) URL on a host in THUMBS_ALLOWED_SOURCES; ASCII (percent-encoded). Stored "
                "and de-duplicated in its RFC 3986 normal form (scheme and host lower-case, default port, fragment "
                "and dot segments dropped, percent-encoding normalised; the query is never reordered): any "
                "equivalent spelling of a stored url answers 200 with that row.",
            },
            "pipeline_id": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_LENGTH},
            "step": {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_LENGTH},
            "width": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SIDE},
            "height": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SIDE},
        },
    },
    "StartJob": {
        "type": "object",
        "properties": {
            "batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE, "default": DEFAULT_BATCH_SIZE},
            "retry_failed": {
                "type": "boolean",
                "default": False,
                "description": "Also walk the images that failed before (a plain job walks only pending ones). "
                "Ignored while a job is already running (that job is returned).",
            },
        },
        "example": {"batch_size": 50, "retry_failed": True},
    },
    "JobProgress": {
        "type": "object",
        "required": [
            "id",
            "status",
            "total",
            "done",
            "failed",
            "remaining",
            "rate",
            "eta_seconds",
            "created_at",
            "updated_at",
            "finished_at",
            "last_error",
            "retry_failed",
            "url",
            "recent_failures",
        ],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": ["running", "done"]},
            "total": {"type": "integer", "description": "Images without a thumbnail when the job started."},
            "done": {"type": "integer", "description": "Thumbnails made (in the disk store)."},
            "failed": {
                "type": "integer",
                "description": "Images whose thumbnail could not be made, each with its reason: the origin's "
                "answer, a url the source parser refuses (`invalid_url`, `source_not_allowed`, `no_url`) or an "
                "image that made the warm path raise (`warm_error`). A finished job has done + failed == total.",
            },
            "remaining": {"type": "integer"},
            "rate": {"type": ["number", "null"], "description": "Images per second in the current run."},
            "eta_seconds": {"type": ["number", "null"], "description": "Estimated seconds left."},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "last_error": {
                "type": ["string", "null"],
                "description": "Why the last run paused (the warm path was down); it resumes by itself.",
            },
            "retry_failed": {"type": "boolean", "description": "Whether this job also walks failed images."},
            "url": {"type": "string", "description": "This job's progress URL."},
            "recent_failures": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["image_id", "url", "error", "detail"],
                    "properties": {
                        "image_id": {"type": "integer"},
                        "url": {"type": "string"},
                        "error": {"type": "string"},
                        "detail": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
}


def openapi_spec() -> dict[str, Any]:
    job_id = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Image library API",
            "version": "1.0.0",
            "description": "The picker's image listing (with thumbnail URLs), ingest from the pipeline, and "
            "the thumbnail backfill. Every error is JSON `{error, detail}`.",
        },
        "servers": [{"url": "/api"}],
        "paths": {
            "/library/images": {
                "get": {
                    "operationId": "listImages",
                    "summary": "A page of images, newest first",
                    "description": "Page by `offset` (the PRD's form; cost grows with the offset) or by `cursor` "
                    "(keyset on created_at and id: one index lookup per page at any depth). `until` fixes the top "
                    "of a walk and `newer_than` lists what arrived since (both take a `head_cursor`). Images whose "
                    "legacy date could not be read have `created_at: null` and come after all dated ones, newest id "
                    "first. Responses carry an ETag; send If-None-Match to get 304 when nothing changed. Example: "
                    + STABLE_EXAMPLE
                    + ".",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "description": "Not together with `cursor`.",
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "A `next_cursor` from a previous page, as is.",
                            "schema": {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
                        },
                        {
                            "name": "until",
                            "in": "query",
                            "description": "A `head_cursor` (or any cursor): only images at that position or older "
                            "(inclusive), newest first as usual. Combines with `offset` or `cursor`. With the "
                            "`head_cursor` of the first page, `?until=H&offset=N` pages never shift when images "
                            "are inserted at the top.",
                            "schema": {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
                            "example": CURSOR_EXAMPLE,
                        },
                        {
                            "name": "newer_than",
                            "in": "query",
                            "description": "A `head_cursor`: only images strictly newer than that position, newest "
                            "first, up to `limit`; the response then also has `count` (all of them, capped at "
                            f"{NEWER_COUNT_CAP:,}) and `count_capped`.",
                            "schema": {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
                            "example": CURSOR_EXAMPLE,
                        },
                        {
                            "name": "pipeline_id",
                            "in": "query",
                            "description": "Only images of this pipeline (exact match). With a filter `total` "
                            "counts the matching images.",
                            "schema": {"type": "string", "maxLength": 200},
                        },
                        {
                            "name": "step",
                            "in": "query",
                            "description": "Only images of this pipeline step (exact match); combines with "
                            "`pipeline_id`.",
                            "schema": {"type": "string", "maxLength": 200},
                        },
                    ],
                    "responses": {
                        "200": json_body(
                            "A page of images.",
                            "ImagePage",
                            {
                                "ETag": {"schema": {"type": "string"}},
                                "Cache-Control": {"schema": {"type": "string", "const": "no-cache"}},
                            },
                        ),
                        "304": {"description": "Not modified (If-None-Match matched the ETag)."},
                        "400": error(
                            "A bad limit or offset (`invalid_parameter`), a cursor, until or newer_than this API "
                            "did not return (`invalid_cursor`), or offset together with cursor."
                        ),
                        "503": UNAVAILABLE,
                    },
                },
                "post": {
                    "operationId": "createImage",
                    "summary": "Store a pipeline output and warm its thumbnail",
                    "description": "Stores the image (once per URL) and queues its thumbnail on the proxy's warm "
                    "path in the background. A URL already stored returns the stored image with 200.",
                    "security": INGEST,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": ref("NewImage")}}},
                    "responses": {
                        "201": json_body("Stored.", "Image"),
                        "401": error("THUMBS_INGEST_TOKEN is set and no bearer token was sent."),
                        "403": error("The ingest token is wrong."),
                        "200": json_body("This URL was already stored; nothing was added.", "Image"),
                        "400": error(
                            "Not a JSON object, a missing or invalid field, or a URL that is not "
                            "http(s) on an allowed source host."
                        ),
                        "413": TOO_LARGE,
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/library/generate-thumbnails": {
                "post": {
                    "operationId": "startBackfill",
                    "summary": "Start the thumbnail backfill (or get the running one)",
                    "description": "Warms, in batches, every pending image (with `retry_failed`, the failed ones "
                    "too). Resumable and one at a time: while a job runs, this returns it with 200. A row it cannot "
                    "process is marked failed with its reason and the job moves on.",
                    "security": ADMIN,
                    "requestBody": {"required": False, "content": {"application/json": {"schema": ref("StartJob")}}},
                    "responses": {
                        "202": json_body(
                            "A new job started.", "JobProgress", {"Location": {"schema": {"type": "string"}}}
                        ),
                        "200": json_body(
                            "A job was already running: this one.",
                            "JobProgress",
                            {"Location": {"schema": {"type": "string"}}},
                        ),
                        "400": error(
                            "A body that is not a JSON object, a bad batch_size or a non-boolean retry_failed."
                        ),
                        "401": UNAUTHORIZED,
                        "403": FORBIDDEN,
                        "413": TOO_LARGE,
                        "503": UNAVAILABLE,
                    },
                },
                "get": {
                    "operationId": "latestBackfill",
                    "summary": "The most recent backfill job",
                    "security": ADMIN,
                    "responses": {
                        "200": json_body("Its progress.", "JobProgress"),
                        "401": UNAUTHORIZED,
                        "403": FORBIDDEN,
                        "404": error("No job was ever started."),
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/library/generate-thumbnails/{job_id}": {
                "get": {
                    "operationId": "backfillProgress",
                    "summary": "Progress of one backfill job",
                    "security": ADMIN,
                    "parameters": [job_id],
                    "responses": {
                        "200": json_body("Its progress, with the most recent per-image failures.", "JobProgress"),
                        "401": UNAUTHORIZED,
                        "403": FORBIDDEN,
                        "404": error("No such job."),
                        "503": UNAVAILABLE,
                    },
                },
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
            "/docs": {
                "get": {
                    "operationId": "docs",
                    "summary": "This description as a page",
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "THUMBS_ADMIN_TOKEN"},
                "ingestToken": {"type": "http", "scheme": "bearer", "description": "THUMBS_INGEST_TOKEN"},
            },
        },
    }


# Self-contained (no CDN): renders openapi.json next to it.
DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Image library API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4rem;font-weight:700;text-transform:uppercase}
.get{color:#1565c0}.post{color:#2e7d32}code,pre{background:#f5f5f5;border-radius:4px}
pre{padding:.5rem;overflow:auto;font-size:13px}table{border-collapse:collapse}
td,th{border-bottom:1px solid #eee;padding:.2rem .6rem;text-align:left;vertical-align:top}
</style></head><body><h1>Image library API</h1><p id="intro"></p><div id="ops">Loading…</div>
<script>
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text) e.textContent = text;
  if (cls) e.className = cls; return e; };
fetch("openapi.json").then(r => r.json()).then(spec => {
  document.getElementById("intro").textContent = spec.info.description;
  const ops = document.getElementById("ops"); ops.textContent = "";
  const resolve = s => s && s.$ref ? spec.components.schemas[s.$ref.split("/").pop()] : s;
  for (const [path, item] of Object.entries(spec.paths)) for (const [method, op] of Object.entries(item)) {
    const box = el("div", null, "op"), head = el("div");
    head.append(el("span", method, "m " + method), el("code", "/api" + path));
    box.append(head, el("p", op.summary)); if (op.description) box.append(el("p", op.description));
    if (op.security) box.append(el("p", "Requires Authorization: Bearer <admin token>."));
    if (op.parameters) { const t = el("table"); t.append(el("tr")); t.rows[0].append(el("th", "parameter"),
        el("th", "in"), el("th", "schema"));
      for (const p of op.parameters) { const r = el("tr"); r.append(el("td", p.name), el("td", p.in),
        el("td", JSON.stringify(p.schema))); t.append(r); } box.append(t); }
    if (op.requestBody) { box.append(el("p", "Body:"));
      box.append(el("pre", JSON.stringify(resolve(op.requestBody.content["application/json"].schema), null, 2))); }
    const t = el("table");
    for (const [code, resp] of Object.entries(op.responses)) { const r = el("tr");
      r.append(el("td", code), el("td", resp.description)); t.append(r); }
    box.append(el("p", "Responses:"), t); ops.append(box);
  }
}).catch(e => { document.getElementById("ops").textContent = "Could not load openapi.json: " + e; });
</script></body></html>
"""
