"""The library API component: routes bound to a :class:`LibraryAPI`, its lifespan and errors.

Routes are relative to the ``/api`` mount of the composed app.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from httpkit.auth import require_bearer as check_bearer
from httpkit.component import Component
from httpkit.errors import HTTPError, handle_http_error, handle_starlette_error
from httpkit.etag import etag_matches
from library_api.backfill import DEFAULT_BATCH_SIZE, LEASE_SECONDS, MAX_BATCH_SIZE, Backfill, progress_of
from library_api.config import LibraryConfig
from library_api.db import UNAVAILABLE_ERRORS, create_database, is_sqlite
from library_api.errors import ApiError, JSONResponse, bad_request
from library_api.images import (
    NEWER_COUNT_CAP,
    count_filtered,
    count_newer,
    fetch_page,
    fetch_total,
    image_json,
    insert_image,
    position_of,
    resolve_request,
)
from library_api.ingest import IngestWarmer
from library_api.migrate import check_migrated, run_migrations
from library_api.openapi import DOCS_HTML, MAX_LABEL_LENGTH, MAX_SIDE, openapi_spec
from library_api.paging import encode_cursor, parse_id, parse_page_request
from library_api.requests import read_json_object
from library_api.schema import READY
from library_api.sources import check_source_url
from proxy.warm_types import WarmClient

Endpoint = Callable[[Request], Awaitable[Response]]


class LibraryAPI:
    def __init__(
        self,
        settings: LibraryConfig,
        warm_client: WarmClient,
        *,
        job_lease_seconds: float = LEASE_SECONDS,
        durable_warm: WarmClient | None = None,
    ) -> None:
        self.settings = settings
        self.warm_client = warm_client
        self.database = create_database(settings)
        self.ingest = IngestWarmer(self.database, settings, warm_client, durable=durable_warm)
        self.backfill = Backfill(self.database, settings, warm_client, lease_seconds=job_lease_seconds)
        self.component = Component(
            routes=[
                Route(
                    # OPTIONS reaches the CORS middleware (a preflight); without CORS it is a 405.
                    "/library/images", guarded(self.images),
                    methods=["GET", "POST", "OPTIONS"] if settings.cors_origins else ["GET", "POST"],
                    middleware=listing_cors(settings.cors_origins),
                ),
                Route("/library/generate-thumbnails", guarded(self.jobs), methods=["GET", "POST"]),
                Route("/library/generate-thumbnails/{job_id}", guarded(self.job), methods=["GET"]),
                Route("/openapi.json", self.openapi, methods=["GET", "HEAD"]),
                Route("/docs", self.docs, methods=["GET", "HEAD"]),
            ],
            lifespan=self.lifespan,
            exception_handlers={HTTPError: handle_http_error, HTTPException: handle_starlette_error},
        )

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        if is_sqlite(self.settings.database_url):
            # The embedded default migrates itself; PostgreSQL is migrated by `thumbs migrate`.
            await asyncio.to_thread(run_migrations, self.settings)
        await self.database.connect()
        try:
            await self.check_schema()
            self.ingest.start()
            supervisor = asyncio.create_task(self.backfill.supervise(), name="thumbs-backfill-supervisor")
            try:
                yield
            finally:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
                await self.backfill.stop()
                await self.ingest.stop()
        finally:
            await self.database.disconnect()
            close = getattr(self.warm_client, "aclose", None)
            if close is not None:
                await close()

    async def ping(self) -> None:
        """The database answers a query (readiness)."""
        await self.database.fetch_val("SELECT 1")

    async def check_schema(self) -> None:
        await check_migrated(self.database)

    # GET|POST /library/images

    async def images(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            return await self.list_images(request)
        return await self.create_image(request)  # POST: Route(methods=...) answers any other with 405

    async def list_images(self, request: Request) -> Response:
        body = orjson.dumps(await self.page_content(request.query_params))
        # The list changes under the client: cache it, but revalidate every time (cheap 304s).
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"etag": etag, "cache-control": "no-cache"}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    async def first_page(self, limit: int) -> dict[str, Any] | None:
        """The listing's first page, for the picker's HTML; None when the database is not answering."""
        try:
            return await self.page_content({"limit": str(limit)})
        except HTTPError:
            return None
        except DATABASE_ERRORS:
            return None

    async def page_content(self, params: Mapping[str, str]) -> dict[str, Any]:
        page_request = await resolve_request(self.database, parse_page_request(params))
        page = await fetch_page(self.database, page_request)
        total = await (count_filtered(self.database, page_request) if page_request.filtered
                       else fetch_total(self.database))
        next_cursor = head_cursor = None
        if page.has_more and page.rows:
            next_cursor = encode_cursor(position_of(page.rows[-1]), page_request.offset + len(page.rows))
        if page.rows:
            # `until=head_cursor` pins this page's top: later pages never shift under new inserts.
            head_cursor = encode_cursor(position_of(page.rows[0]), page_request.offset + 1)
        content: dict[str, Any] = {
            "images": [image_json(row, self.settings) for row in page.rows],
            "total": total,
            "limit": page_request.limit,
            "offset": page_request.offset,
            "next_cursor": next_cursor,
            "head_cursor": head_cursor,
        }
        if page_request.newer_than is not None:
            newer = await count_newer(self.database, page_request.newer_than, request=page_request)
            content["count"] = newer
            content["count_capped"] = newer >= NEWER_COUNT_CAP
        if page_request.until is not None:
            # `total` counts the images added above the bound too, so a client paging under it
            # cannot tell deletions from inserts that cancel them out; this count can.
            above = await count_newer(self.database, page_request.until, request=page_request)
            if above < NEWER_COUNT_CAP:  # at the cap the difference would not be exact
                content["until_total"] = max(total - above, 0)
        return content

    async def create_image(self, request: Request) -> Response:
        if self.settings.ingest_token:
            require_bearer(request, self.settings.ingest_token, "ingest")
        elif not self.settings.ingest_open:
            raise ApiError(403, "forbidden", "ingest is closed: set THUMBS_INGEST_TOKEN (or THUMBS_INGEST_OPEN=true)")
        body = await read_json_object(request)
        url = check_source_url(body.get("url"), self.settings.allowed_sources)
        # A row written straight into the table (no url_hash) may hold the url as the client spells it.
        spellings = [body["url"]] if body["url"] != url else []
        pipeline_id = label(body, "pipeline_id")
        step = label(body, "step")
        width, height = side(body, "width"), side(body, "height")
        row, created = await insert_image(
            self.database, url=url, pipeline_id=pipeline_id, step=step, width=width, height=height, spellings=spellings
        )
        if row["thumbnail_status"] != READY:
            # The stored spelling: a legacy row found by its canonical form keeps its own url,
            # which is what its thumbnail_url signs and the warm outcome is recorded against.
            await self.ingest.submit(int(row["id"]), row["url"] if isinstance(row["url"], str) else url)
        return JSONResponse(
            image_json(row, self.settings), status_code=201 if created else 200, headers={"cache-control": "no-store"}
        )

    # POST|GET /library/generate-thumbnails, GET /library/generate-thumbnails/{job_id}

    async def jobs(self, request: Request) -> Response:
        require_admin(request, self.settings.admin_token)
        if request.method in ("GET", "HEAD"):
            latest = await self.backfill.latest_job()
            if latest is None:
                raise ApiError(404, "not_found", "no backfill job has been started")
            return await self.job_response(request.url.path + f"/{latest['id']}", latest)
        body = await read_json_object(request) if await has_body(request) else {}
        batch_size = body.get("batch_size", DEFAULT_BATCH_SIZE)
        if type(batch_size) is not int or not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise bad_request("invalid_body", f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}")
        retry_failed = body.get("retry_failed", False)
        if type(retry_failed) is not bool:
            raise bad_request("invalid_body", "retry_failed must be true or false")
        claim = await self.backfill.start(batch_size, retry_failed=retry_failed)
        location = request.url.path + f"/{claim.job['id']}"
        return await self.job_response(location, claim.job, status=202 if claim.created else 200, location=True)

    async def job(self, request: Request) -> Response:
        require_admin(request, self.settings.admin_token)
        raw_id = request.path_params["job_id"]
        job_id = parse_id(raw_id)  # ASCII digits only: `str.isdigit` also accepts '²'
        job = await self.backfill.job(job_id) if job_id is not None else None
        if job is None:
            raise ApiError(404, "not_found", f"no backfill job {raw_id[:40]!r}")
        return await self.job_response(request.url.path, job)

    async def job_response(self, path: str, job: Any, *, status: int = 200, location: bool = False) -> Response:
        body = progress_of(job).as_json()
        body["url"] = path
        body["recent_failures"] = await self.backfill.recent_failures(int(job["id"]))
        headers = {"cache-control": "no-store"}
        if location:
            headers["location"] = path
        return JSONResponse(body, status_code=status, headers=headers)

    # GET /openapi.json, GET /docs

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_spec(), headers={"cache-control": "no-cache"})

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(DOCS_HTML, headers={"cache-control": "no-cache"})


def listing_cors(origins: Sequence[str]) -> list[Middleware]:
    """CORS for the listing only, for a Playground on another origin; nothing else gets CORS headers.

    Writes stay same-origin: a preflight for POST is refused, and ingest wants a token anyway.
    """
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware, allow_origins=list(origins), allow_methods=["GET", "HEAD"],
            allow_headers=["authorization", "if-none-match"], expose_headers=["etag"], max_age=600,
        )
    ]


def require_admin(request: Request, token: str) -> None:
    if not token:
        raise ApiError(403, "forbidden", "admin endpoints are disabled: set THUMBS_ADMIN_TOKEN")
    require_bearer(request, token, "admin")


def require_bearer(request: Request, token: str, role: str) -> None:
    check_bearer(request.headers.get("authorization"), token, role)


async def has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers


def label(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_request("invalid_body", f"{name} is required: a non-empty string")
    if len(value) > MAX_LABEL_LENGTH:
        raise bad_request("invalid_body", f"{name} is longer than {MAX_LABEL_LENGTH} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        # Labels are shown in the picker; PostgreSQL text cannot even hold NUL.
        raise bad_request("invalid_body", f"{name} contains control characters")
    return value


def side(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_SIDE:
        raise bad_request("invalid_body", f"{name} must be an integer from 1 to {MAX_SIDE}, or null")
    return value


def guarded(endpoint: Endpoint) -> Endpoint:
    """A database that is down or locked is a 503 the client may retry, never a 500."""

    async def guarded_endpoint(request: Request) -> Response:
        try:
            return await endpoint(request)
        except HTTPError:
            raise
        except DATABASE_ERRORS as exc:
            raise ApiError(
                503,
                "database_unavailable",
                f"the library database is unavailable ({type(exc).__name__})",
                {"retry-after": "2"},
            ) from exc

    return guarded_endpoint


DATABASE_ERRORS = UNAVAILABLE_ERRORS  # what `guarded` makes a 503 (library_api.db)


def create_api(
    settings: LibraryConfig,
    warm_client: WarmClient,
    *,
    job_lease_seconds: float = LEASE_SECONDS,
    durable_warm: WarmClient | None = None,
) -> LibraryAPI:
    """``durable_warm``: a warm client whose queue outlives this process (ingest enqueues there)."""
    return LibraryAPI(settings, warm_client, job_lease_seconds=job_lease_seconds, durable_warm=durable_warm)


def mount_api(api: LibraryAPI) -> Starlette:
    """A standalone app serving ``api`` under /api (tests, and running the API alone)."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with api.component.lifespan():
            yield

    return Starlette(
        routes=[Mount("/api", routes=list(api.component.routes))],
        exception_handlers=dict(api.component.exception_handlers),
        lifespan=lifespan,
    )


def create_api_app(settings: LibraryConfig, warm_client: WarmClient) -> Starlette:
    return mount_api(create_api(settings, warm_client))
