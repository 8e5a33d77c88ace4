"""HTTP endpoints of the proxy, bound to the objects they use (never to app.state)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from httpkit.auth import require_bearer
from httpkit.body import read_capped, require_json_content_type
from httpkit.etag import etag_matches
from proxy.errors import BadRequest, BadSignature, MethodNotAllowed, NotFound, ProxyError, TooLarge
from proxy.health import HealthCheck
from proxy.metrics import ProxyMetrics
from proxy.service import Found, ThumbnailService
from proxy.urls import BadThumbnailURL, SignatureMismatch, ThumbnailRequest
from proxy.verified import VerifiedPaths
from proxy.warm import MAX_SOURCES_PER_CALL, Warmer

CACHE_FOREVER = "public, max-age=31536000, immutable"
MAX_WARM_BODY = 1_000_000
_NOT_MODIFIED_DROPS = (b"content-type", b"content-length")


def _if_none_match(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return value.decode("latin-1")
    return None


class ThumbnailEndpoint:
    """``GET|HEAD /t/...`` as a plain ASGI app: a memory hit is a dict lookup and two sends.

    No Request or Response objects on this path: the verified-path memo replaces the HMAC,
    each cached entry carries its header block, and the metric children are bound once.
    """

    def __init__(self, service: ThumbnailService, metrics: ProxyMetrics, secrets: Sequence[str]) -> None:
        self.service = service
        self.metrics = metrics
        self.paths = VerifiedPaths([secret for secret in secrets if secret])
        self._counters: dict[tuple[str, str], Counter] = {}
        self._tier_headers: dict[str, tuple[bytes, bytes]] = {}

    def _count(self, status: str, tier: str) -> None:
        counter = self._counters.get((status, tier))
        if counter is None:
            counter = self._counters[(status, tier)] = self.metrics.requests.labels(status, tier)
        counter.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tier = "none"
        method = scope["method"]
        try:
            if method != "GET" and method != "HEAD":
                raise MethodNotAllowed("thumbnails answer GET and HEAD", headers={"Allow": "GET, HEAD"})
            try:
                thumb_request = self.paths.parse(scope["path"])
            except SignatureMismatch as exc:
                raise BadSignature(str(exc)) from None
            except BadThumbnailURL as exc:
                raise NotFound(f"not a thumbnail URL: {exc}") from None
            found = self.service.cached(thumb_request)
            if found is None:
                found = await self._generate_while_connected(thumb_request, receive)
                if found is None:
                    return  # the client left; nobody to answer
        except ProxyError as error:
            self._count(str(error.status), tier)
            await error.response()(scope, receive, send)
            return
        thumbnail, tier = found.thumbnail, found.tier
        tier_header = self._tier_headers.get(tier)
        if tier_header is None:
            tier_header = self._tier_headers[tier] = (b"x-thumb-tier", tier.encode())
        headers = [*thumbnail.answer_headers, tier_header]
        if_none_match = _if_none_match(scope)
        if if_none_match and etag_matches(if_none_match, thumbnail.etag):
            self._count("304", tier)
            headers = [header for header in headers if header[0] not in _NOT_MODIFIED_DROPS]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        self._count("200", tier)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else thumbnail.data})

    async def _generate_while_connected(self, request: ThumbnailRequest, receive: Receive) -> Found | None:
        """The miss path: the thumbnail, or None if the client disconnected first.

        Leaving drops this caller from the flight; if every caller has left before the
        render started, the flight stops (a fast scroll must not fill the pool).
        """
        work = asyncio.ensure_future(self.service.generate(request, abandonable=True))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
        if not work.done() or work.cancelled():
            # Wait for the cancelled caller to unwind (it only leaves the flight).
            await asyncio.gather(work, return_exceptions=True)
            return None
        try:
            return work.result()
        finally:
            # The task keeps its exception, whose traceback keeps this frame: a reference cycle
            # that held each failed miss's source body until the cyclic GC happened to run.
            del work, gone


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone. For a GET the request body is empty, so after the
    first ``http.request`` the server's ``receive()`` blocks until the connection closes."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ProxyEndpoints:
    def __init__(
        self,
        service: ThumbnailService,
        warmer: Warmer,
        health: HealthCheck,
        metrics: ProxyMetrics,
        warm_token: str,
    ) -> None:
        self.service = service
        self.warmer = warmer
        self.health_check = health
        self.metrics = metrics
        self.warm_token = warm_token

    async def warm(self, request: Request) -> Response:
        try:
            self._authorize(request)
            sources, wait = await self._warm_body(request)
            outcomes = await self.warmer.warm(sources, wait=wait)
        except ProxyError as error:
            return error.response()
        if wait:
            results = [
                {"source": o.source, "ok": o.ok, "error": o.error, "detail": o.detail,
                 "width": o.width, "height": o.height, "color": o.color}
                for o in outcomes
            ]
            return JSONResponse({"results": results}, status_code=200)
        accepted = [{"source": o.source, "key": o.detail} for o in outcomes if o.ok]
        refused = [{"source": o.source, "error": o.error, "detail": o.detail} for o in outcomes if not o.ok]
        return JSONResponse({"accepted": accepted, "refused": refused}, status_code=202)

    def _authorize(self, request: Request) -> None:
        require_bearer(request.headers.get("authorization"), self.warm_token, "warm")

    async def _warm_body(self, request: Request) -> tuple[list[str], bool]:
        body = await read_capped(request, MAX_WARM_BODY, too_large_code=TooLarge.code)
        require_json_content_type(request)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not JSON") from None
        if isinstance(payload, list):
            payload = {"sources": payload}
        if not isinstance(payload, dict) or not isinstance(payload.get("sources"), list):
            raise BadRequest('expected {"sources": [...], "wait": false}')
        sources = payload["sources"]
        if not all(isinstance(source, str) for source in sources):
            raise BadRequest("every source must be a string")
        if len(sources) > MAX_SOURCES_PER_CALL:
            raise TooLarge(f"at most {MAX_SOURCES_PER_CALL} sources per call")
        wait = payload.get("wait", False)
        if not isinstance(wait, bool):
            raise BadRequest('"wait" must be true or false')
        return sources, wait

    async def health(self, request: Request) -> Response:
        """Liveness: answers while the process serves, whatever its load."""
        return JSONResponse(self.health_check.live(), headers={"Cache-Control": "no-store"})

    async def ready(self, request: Request) -> Response:
        """Readiness: what a load balancer needs to route to this replica or not."""
        report = await self.health_check.ready()
        return JSONResponse(report, status_code=200 if report["status"] != "down" else 503,
                            headers={"Cache-Control": "no-store"})

    async def metrics_page(self, request: Request) -> Response:
        self.metrics.queue_depth.set(await self.warmer.queue.depth())
        self.metrics.pool_in_flight.set(self.service.pool.in_flight)
        self.metrics.pool_saturation.set(self.service.pool.saturation)
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8",
                        headers={"Cache-Control": "no-store"})
