"""The demo's stand-in origin: generated images on disk, served like a storage bucket.

The proxy treats it as any origin; the demo allows its host through settings
(`THUMBS_ALLOWED_SOURCES`, `THUMBS_ALLOW_PRIVATE_SOURCES`), not through a bypass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from thumbs.demo.images import demo_image


def _write_one(directory: Path, index: int, profile: str) -> str:
    image = demo_image(index, profile)
    target = directory / image.name
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(image.data)
    partial.replace(target)  # atomic: an interrupted run never leaves a half image
    return image.name


def existing_names(directory: Path) -> dict[int, str]:
    names: dict[int, str] = {}
    for path in directory.glob("img-*.*"):
        if path.suffix in {".png", ".jpg"}:
            names[int(path.stem.removeprefix("img-"))] = path.name
    return names


def generate_origin(
    directory: Path,
    count: int,
    profile: str,
    on_progress: Callable[[int], None] | None = None,
    processes: int = 2,
) -> list[str]:
    """Make sure ``count`` demo images exist in ``directory``; returns their names in order."""
    directory.mkdir(parents=True, exist_ok=True)
    names = existing_names(directory)
    missing = [index for index in range(count) if index not in names]
    if missing:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            futures = {pool.submit(_write_one, directory, index, profile): index for index in missing}
            for future, index in futures.items():
                names[index] = future.result()
                if on_progress:
                    on_progress(1)
    return [names[index] for index in range(count)]


class Latency:
    """Delays every response, to imitate a remote bucket (default off)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.seconds:
            await asyncio.sleep(self.seconds)
        await self.app(scope, receive, send)


def create_origin_app(directory: Path, latency_ms: int = 0) -> ASGIApp:
    app = Starlette(routes=[Mount("/images", app=StaticFiles(directory=directory))])
    return Latency(app, latency_ms / 1000)
