"""`thumbs demo`: a stand-in origin, a seeded library and the whole product on one port.

Everything lives under the data dir, so a second run reuses it and is up in seconds.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from rich.progress import Progress

from thumbs.app import create_app
from thumbs.demo.origin import create_origin_app, generate_origin
from thumbs.limits import apply_header_timeout, limited
from thumbs.server import server_options
from thumbs.settings import Settings

console = Console()


def _kept_secret(path: Path) -> str:
    """A random value made once and kept in the data dir (the demo's signing key and tokens)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def demo_settings(settings: Settings) -> Settings:
    """The embedded default plus what the demo needs: its origin allowed, keys kept on disk."""
    origin_host = f"127.0.0.1:{settings.demo_origin_port}"
    keys = settings.data_dir / "demo-keys"
    return settings.model_copy(
        update={
            "secret": settings.secret or _kept_secret(keys / "secret"),
            "admin_token": settings.admin_token or _kept_secret(keys / "admin-token"),
            "warm_token": settings.warm_token or _kept_secret(keys / "warm-token"),
            "ingest_token": settings.ingest_token or _kept_secret(keys / "ingest-token"),
            "allowed_sources": [*settings.allowed_sources, origin_host],
            # The origin runs on loopback: allowed explicitly, through the normal origin checks.
            "allow_private_sources": True,
        }
    )


def start_origin(settings: Settings, directory: Path) -> uvicorn.Server:
    app = create_origin_app(directory, settings.demo_origin_latency_ms)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.demo_origin_port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="demo-origin", daemon=True).start()
    return server


async def seed_library(base_url: str, origin_url: str, names: list[str], ingest_token: str) -> int:
    """Put every origin image in the library through the public API (as the pipeline would)."""
    headers = {"authorization": f"Bearer {ingest_token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as client:
        listing = await client.get("/api/library/images", params={"limit": 1})
        listing.raise_for_status()
        if listing.json()["total"] >= len(names):
            return 0
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in names:
            queue.put_nowait(name)
        added = 0

        async def post_some() -> None:
            nonlocal added
            while not queue.empty():
                name = queue.get_nowait()
                body = {"url": f"{origin_url}/images/{name}", "pipeline_id": "demo", "step": "generate"}
                response = await client.post("/api/library/images", json=body)
                if response.status_code == 201:
                    added += 1
                elif response.status_code != 200:  # 200: already in the library
                    raise RuntimeError(f"seeding {name}: {response.status_code} {response.text}")

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Seeding the library", total=len(names))

            async def report() -> None:
                while not queue.empty():
                    progress.update(task, completed=len(names) - queue.qsize())
                    await asyncio.sleep(0.2)

            await asyncio.gather(report(), *(post_some() for _ in range(8)))
        return added


def run_demo(settings: Settings, profile: str) -> None:
    settings = demo_settings(settings)
    origin_dir = settings.data_dir / "origin" / profile
    count = settings.demo_images
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"Generating {count} demo images ({profile})", total=count)
        names = generate_origin(origin_dir, count, profile, lambda n: progress.advance(task, n))
    origin_server = start_origin(settings, origin_dir)
    origin_url = f"http://127.0.0.1:{settings.demo_origin_port}"
    app = limited(create_app(settings), settings)
    protocol = apply_header_timeout(settings.header_timeout)
    server = uvicorn.Server(uvicorn.Config(app, http=protocol, **server_options(settings)))

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                await serving  # raises why it could not start (port taken, …)
                return
            await asyncio.sleep(0.05)
        local_url = f"http://{settings.host}:{settings.port}"
        added = await seed_library(local_url, origin_url, names, settings.ingest_token)
        console.print(
            f"\n[bold green]thumbs demo[/] is serving {count} images"
            f"{f' ({added} just added)' if added else ''}\n"
            f"  picker          {local_url}/\n"
            f"  library API     {local_url}/api/library/images?limit=5\n"
            f"  API docs        {local_url}/api/docs\n"
            f"  one thumbnail   THUMBS_SECRET=$(cat {settings.data_dir.resolve() / 'demo-keys/secret'}) "
            f".venv/bin/thumbs url {origin_url}/images/{names[0]}\n"
            f"  health/metrics  {local_url}/healthz  {local_url}/metrics\n"
            f"  stand-in origin {origin_url}/images/ (files in {origin_dir.resolve()})\n"
            "Press Ctrl-C to stop."
        )
        await serving

    try:
        asyncio.run(main())
    finally:
        origin_server.should_exit = True
