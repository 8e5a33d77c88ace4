"""The `thumbs` command: serve, url, migrate, backfill, worker, demo, stack."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from library_api.db import UNAVAILABLE_ERRORS, NotMigrated
from proxy.stores import BadStoreURL
from thumbs.settings import Settings

# What a command meets when the database, Redis or the data dir cannot be used: one line, exit 1.
# asyncpg's own (a read-only database under `thumbs backfill`) are the library's 503s.
UNAVAILABLE: tuple[type[Exception], ...] = (sqlite3.Error, SQLAlchemyError, RedisError, *UNAVAILABLE_ERRORS)

app = typer.Typer(
    help="Thumbnail proxy and image library API for the Playground picker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class SettingsError(Exception):
    """A missing or bad setting or argument: one line, exit 2."""


def fail(message: str) -> NoReturn:
    raise SettingsError(message)


def load_settings(**overrides: Any) -> Settings:
    """Read THUMBS_* once; a bad value is one clear line naming the variable, exit 2."""
    try:
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "THUMBS_" + str(error["loc"][0]).upper() if error["loc"] else "THUMBS_*"
        fail(f"bad setting {name}: {error['msg']}")
    return settings


def require_secret(settings: Settings) -> None:
    if not settings.secret:
        fail("THUMBS_SECRET is not set: thumbnail URLs cannot be signed (the demo makes one for you)")


def require_write_tokens(settings: Settings) -> None:
    """Closed by default: no write endpoint runs open outside `thumbs demo`."""
    missing = settings.missing_write_tokens()
    if missing:
        fail(
            f"{', '.join(missing)} not set: write endpoints would run open "
            "(set the tokens; THUMBS_INGEST_OPEN=true opens ingest on a trusted network)"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [THUMBS_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [THUMBS_PORT].")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes [THUMBS_WORKERS].")] = None,
    warm_consumer: Annotated[
        bool | None, typer.Option(help="Also consume the warm queue [THUMBS_WARM_CONSUMER].")
    ] = None,
) -> None:
    """Serve the picker, the library API and the thumbnail proxy on one port."""
    from thumbs.server import run_server

    settings = load_settings(host=host, port=port, workers=workers, warm_consumer=warm_consumer)
    require_secret(settings)
    require_write_tokens(settings)
    require_database(settings)
    run_server(settings)


@app.command()
def url(source: Annotated[str, typer.Argument(help="Origin URL of the full image.")]) -> None:
    """Print the signed thumbnail URL for SOURCE (the same one the API returns)."""
    from proxy.urls import thumbnail_url

    settings = load_settings()
    require_secret(settings)
    if not source.startswith(("http://", "https://")):
        fail(f"SOURCE must be an http(s) URL, got {source!r}")
    typer.echo(thumbnail_url(source, settings.secret, settings.public_base_url))


@app.command()
def migrate() -> None:
    """Create or upgrade the library schema (safe to run twice)."""
    from library_api.migrate import run_migrations

    settings = load_settings()
    run_migrations(settings)
    typer.echo(f"schema is up to date ({settings.database_url.split('@')[-1]})")


@app.command()
def backfill(
    batch_size: Annotated[int, typer.Option(min=1, max=500, help="Images per warm batch.")] = 50,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Also try again the images that failed before.")
    ] = False,
) -> None:
    """Generate thumbnails for every image that has none yet (resumable), with a progress bar."""
    from thumbs.backfill import backfill_with_progress

    settings = load_settings()
    require_secret(settings)
    asyncio.run(backfill_with_progress(settings, batch_size, retry_failed))


@app.command()
def worker() -> None:
    """Consume the warm queue (needs THUMBS_REDIS_URL; without Redis the queue lives in `serve`)."""
    from thumbs.worker import NO_REDIS, run_worker

    settings = load_settings()
    require_secret(settings)
    if not settings.redis_url:
        fail(NO_REDIS)  # a missing setting, like any other: one line, exit 2
    require_database(settings)  # it writes each outcome to the library's rows
    try:
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        pass


@app.command()
def demo(
    images: Annotated[int | None, typer.Option(help="Demo images [THUMBS_DEMO_IMAGES].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to serve on [THUMBS_PORT].")] = None,
    profile: Annotated[
        str, typer.Option(help="realistic: 1-5 MB AI-sized images; small: quick, for tests.")
    ] = "realistic",
) -> None:
    """Generate a stand-in origin, seed the library through the API and serve everything."""
    from thumbs.demo.run import run_demo

    if profile not in {"realistic", "small"}:
        fail(f"--profile must be 'realistic' or 'small', got {profile!r}")
    settings = load_settings(demo_images=images, port=port)
    run_demo(settings, profile)


@app.command()
def stack(
    workers: Annotated[int | None, typer.Option(help="uvicorn workers behind nginx.")] = None,
) -> None:
    """Run the production shape on this machine: nginx edge, app workers, warm worker."""
    from thumbs.stack import run_stack

    settings = load_settings(workers=workers)
    require_secret(settings)
    require_write_tokens(settings)
    # No require_database: the stack migrates PostgreSQL itself before any worker starts (an
    # unreachable one is still one line, exit 1, from main); checking first refused a fresh database.
    run_stack(settings)


def require_database(settings: Settings) -> None:
    """PostgreSQL reachable and migrated before any worker starts (SQLite is migrated by serve itself).

    Otherwise each worker's startup fails inside uvicorn: a traceback and exit 3.
    """
    from library_api.db import is_sqlite
    from library_api.migrate import require_migrated

    if not is_sqlite(settings.database_url):
        asyncio.run(require_migrated(settings))  # NotMigrated: one line, exit 1 (main)


def unavailable(exc: BaseException) -> str:
    """The first line of what went wrong, without SQLAlchemy's trailers."""
    inner = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return f"{type(inner).__name__}: {text} (check THUMBS_DATABASE_URL, THUMBS_REDIS_URL and THUMBS_DATA_DIR)"


def main() -> None:
    command = typer.main.get_command(app)
    try:
        command.main(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except SettingsError as exc:
        typer.echo(f"thumbs: error: {exc}", err=True)
        sys.exit(2)
    except BadStoreURL as exc:
        typer.echo(f"thumbs: error: bad setting THUMBS_STORE_URL: {exc}", err=True)
        sys.exit(2)
    except UNAVAILABLE as exc:
        typer.echo(f"thumbs: error: {unavailable(exc)}", err=True)
        sys.exit(1)
    except NotMigrated as exc:
        typer.echo(f"thumbs: error: {exc}", err=True)
        sys.exit(1)
    except typer.TyperException as exc:
        # One line naming what is wrong (a bad flag, a missing argument); no usage dump, no traceback.
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(f"thumbs: error: {message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
