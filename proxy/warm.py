"""Warm-up: validate sources, queue them, and make their thumbnails ahead of the first view.

The :class:`Warmer` is the in-process :class:`~proxy.warm_types.WarmClient`. With
``wait=True`` it generates through the same single-flight path as a page view and reports
source size and colour; without it, it queues. The queue is in-process, or a Redis Stream
with a consumer group when Redis is configured (see :mod:`proxy.warm_queue`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import httpx

from proxy.errors import BadSignature, Overloaded, ProxyError, Undecodable
from proxy.fetch import SourcePolicy
from proxy.service import ThumbnailService
from proxy.source_url import DEFAULT_PORTS, parse_source_url
from proxy.urls import BadThumbnailURL, SignatureMismatch, ThumbnailRequest, parse_thumbnail_path
from proxy.variants import DEFAULT_VARIANT, WARMED_WITH_DEFAULT, Variant
from proxy.warm_queue import Finished, WarmQueue
from proxy.warm_types import WarmOutcome

log = logging.getLogger("thumbs.proxy")

MAX_SOURCES_PER_CALL = 500
# Overloaded pools are retried this many times, with a short pause, when a caller waits.
OVERLOAD_RETRIES = 20


class Warmer:
    def __init__(
        self,
        service: ThumbnailService,
        policy: SourcePolicy,
        secrets: Sequence[str],
        queue: WarmQueue,
        concurrency: int,
        public_base_url: str = "",
    ) -> None:
        self.service = service
        self.policy = policy
        self.secrets = [secret for secret in secrets if secret]
        self.queue = queue
        self.concurrency = max(1, concurrency)
        self.public_origin = _origin_of(public_base_url)

    def resolve(self, source: str) -> ThumbnailRequest:
        """The thumbnail a source (origin URL, thumbnail URL or path) stands for, or why not.

        A source is a thumbnail URL only when it is a bare path, when its host is this proxy's
        public base, or when it verifies as a signed thumbnail URL: an origin's own ``/t/``
        path (``https://cdn.example/t/x.png``) is warmed as the origin image it is. Anything
        malformed is a refusal (:class:`ProxyError`), never another exception.
        """
        if not isinstance(source, str) or not source:
            raise ProxyError("the source must be a non-empty string", status=400, code="bad_request")
        if source.startswith("/") and not source.startswith("//"):
            try:
                return parse_thumbnail_path(source, self.secrets)
            except SignatureMismatch:
                raise BadSignature("the thumbnail URL's signature does not match") from None
            except BadThumbnailURL:
                raise ProxyError("not a thumbnail path", status=404, code="not_found") from None
        url = parse_source_url(source)  # the one parser: a refusal with a reason, or a URL
        path = url.raw_path.decode("ascii", "replace").split("?", 1)[0]
        if path.startswith("/t/"):
            ours = self.public_origin is not None and _origin_of_url(url) == self.public_origin
            try:
                return parse_thumbnail_path(path, self.secrets)
            except SignatureMismatch:
                if ours:
                    raise BadSignature("the thumbnail URL's signature does not match") from None
            except BadThumbnailURL:
                if ours:
                    raise ProxyError("not a thumbnail URL of this proxy", status=404, code="not_found") from None
        self.policy.check_url(source)
        return ThumbnailRequest(source=source, variant=DEFAULT_VARIANT)

    async def warm(
        self, sources: Sequence[str], *, wait: bool, tags: Sequence[str | None] | None = None
    ) -> list[WarmOutcome]:
        if len(sources) > MAX_SOURCES_PER_CALL:
            raise ProxyError(f"at most {MAX_SOURCES_PER_CALL} sources per call", status=413, code="too_large")
        if wait:
            limit = asyncio.Semaphore(self.concurrency)

            async def one(source: str) -> WarmOutcome:
                async with limit:
                    return await self.make(source)

            return list(await asyncio.gather(*(one(source) for source in sources)))
        outcomes: list[WarmOutcome] = []
        accepted: list[tuple[str, str, str | None]] = []
        for source, tag in zip(sources, tags or [None] * len(sources), strict=True):
            try:
                request = self.resolve(source)
            except ProxyError as error:
                outcomes.append(WarmOutcome(source, False, error.code, error.detail))
                continue
            except Exception as exc:  # never expected (resolve only refuses); still one item's answer
                log.exception("resolving one warm source failed unexpectedly")
                outcomes.append(WarmOutcome(source, False, "bad_request", f"invalid source ({type(exc).__name__})"))
                continue
            accepted.append((source, request.source, tag))
            # For accepted sources the detail carries the cache key (the 202 body's "key").
            outcomes.append(WarmOutcome(source, True, None, request.cache_key))
        try:
            await self.queue.put([origin for _, origin, _ in accepted], [tag for _, _, tag in accepted])
        except ProxyError as error:
            refused = {source for source, _, _ in accepted}
            outcomes = [
                WarmOutcome(o.source, False, error.code, error.detail) if o.source in refused else o
                for o in outcomes
            ]
        return outcomes

    async def make(self, source: str) -> WarmOutcome:
        """Generate (or find) one thumbnail and make sure it is in the disk store.

        Whatever goes wrong with this one source is its outcome, so a batch keeps the others."""
        try:
            request = self.resolve(source)
            for attempt in range(OVERLOAD_RETRIES + 1):
                try:
                    thumbnail = await self.service.ensure_stored(request, with_variants=companions(request))
                    break
                except Overloaded:
                    if attempt == OVERLOAD_RETRIES:
                        raise
                    await asyncio.sleep(0.1 * (attempt + 1))
        except ProxyError as error:
            return WarmOutcome(source, False, error.code, error.detail)
        except Exception as exc:  # a surprise with one item is that item's failure, not the batch's
            log.exception("warm-up of one source failed unexpectedly")
            failure = Undecodable(f"the source could not be warmed ({type(exc).__name__})")
            return WarmOutcome(source, False, failure.code, failure.detail)
        return WarmOutcome(source, True, None, None, thumbnail.width, thumbnail.height, thumbnail.color)

    async def consume(self, finished: Finished | None = None) -> None:
        """Work through the queue until cancelled; ``finished`` hears each entry's final outcome."""
        if finished is None:
            await self.queue.consume(self._handle_queued, self.concurrency)
        else:
            await self.queue.consume(self._handle_queued, self.concurrency, finished)

    async def _handle_queued(self, source: str) -> WarmOutcome:
        request = ThumbnailRequest(source=source, variant=DEFAULT_VARIANT)
        thumbnail = await self.service.ensure_stored(request, with_variants=companions(request))
        return WarmOutcome(source, True, None, None, thumbnail.width, thumbnail.height, thumbnail.color)


def companions(request: ThumbnailRequest) -> tuple[Variant, ...]:
    """Warming an image's default thumbnail makes the picker's cell variants too."""
    return WARMED_WITH_DEFAULT if request.variant == DEFAULT_VARIANT else ()


def _origin_of(base_url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of the public base URL, to recognise our own thumbnail URLs."""
    if not base_url:
        return None
    try:
        return _origin_of_url(httpx.URL(base_url))
    except Exception:  # a base URL httpx cannot parse matches nothing
        return None


def _origin_of_url(url: httpx.URL) -> tuple[str, str, int] | None:
    if url.scheme not in DEFAULT_PORTS or not url.host:
        return None
    return url.scheme, url.host.lower().rstrip("."), url.port or DEFAULT_PORTS[url.scheme]
