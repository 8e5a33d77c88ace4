"""One configuration object, read once from ``THUMBS_*`` environment variables.

Every component receives a :class:`Settings` instance; nothing else reads the
environment. The README's configuration table mirrors the fields below.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
DATABASE_SCHEMES = ("sqlite:", "sqlite+aiosqlite:", "postgresql:", "postgres:", "postgresql+asyncpg:")


def _shown(url: str) -> str:
    """A URL for an error message, without its password."""
    parts = urlsplit(url)
    if parts.password:
        url = url.replace(f":{parts.password}@", ":***@", 1)
    return repr(url[:200])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="THUMBS_", env_file=".env", extra="ignore", validate_default=True
    )

    # Where things live
    data_dir: Path = Field(Path("var"), description="Disk store, SQLite file, demo origin, logs.")
    store_url: str = Field(
        "",
        description="Thumbnail store: `file:///path` or `s3://bucket/prefix?endpoint=…&region=…`. "
        "Default: DATA_DIR/thumbs.",
    )
    database_url: str = Field(
        "", description="Default: SQLite under the data dir. `postgresql://…` uses asyncpg."
    )
    redis_url: str | None = Field(
        None, description="Unset: in-process cache and warm queue (single process only)."
    )
    redis_prefix: str = Field("thumbs:", description="Prefix for every Redis key this service writes.")

    # Serving
    host: str = Field("127.0.0.1", description="Address `thumbs serve` binds.")
    port: int = Field(8080, ge=1, le=65535, description="Port of `thumbs serve` / the stack's edge.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    public_base_url: str = Field(
        "", description="Base of thumbnail URLs (the edge or CDN). Default http://HOST:PORT."
    )

    # Signing
    secret: str = Field("", description="HMAC key for thumbnail URLs. Required outside the demo.")
    previous_secrets: CommaList = Field(
        default_factory=list, description="Retired keys still accepted (comma-separated)."
    )

    # Origins and limits
    allowed_sources: CommaList = Field(
        default_factory=list, description="Origin hosts: `host`, `host:port` or `*.suffix` (comma-separated)."
    )
    allow_private_sources: bool = Field(
        False, description="Allow origins on private/loopback addresses (the local demo needs it)."
    )
    max_source_bytes: int = Field(25_000_000, ge=1, description="Byte cap on an origin body, enforced while streaming.")
    max_source_pixels: int = Field(50_000_000, ge=1, description="Pixel cap, checked from the header before decoding.")
    max_source_side: int = Field(
        65_535, ge=1, description="Cap on a source's width and on its height (JPEG's own limit), checked from "
        "the header before decoding; over it is a 413.",
    )
    max_decode_bytes: int = Field(
        256 * 1024 * 1024, ge=1,
        description="Decode memory per image: width x height x bands x bytes per sample, full size when "
        "the format cannot stream (interlaced PNG, progressive JPEG, GIF, WebP, AVIF/HEIC, TIFF); over it is a 413.",
    )
    max_concurrent_fetches: int = Field(
        16, ge=1, description="Origin downloads one worker runs at once; more wait (bounded), then 503."
    )
    max_fetch_bytes_in_flight: int = Field(
        200_000_000, ge=1,
        description="Source bytes one worker holds between download and render (each download reserves "
        "the byte cap until its length is known).",
    )
    fetch_connect_timeout: float = Field(3.0, gt=0, description="Seconds to connect to an origin.")
    fetch_timeout: float = Field(10.0, gt=0, description="Seconds for a whole origin fetch.")
    max_redirects: int = Field(3, ge=0, le=10, description="Redirects followed, each re-checked.")

    # Slow and greedy clients (`thumbs serve` without nginx in front)
    header_timeout: float = Field(10.0, gt=0, description="Seconds a client has to send its request headers.")
    body_timeout: float = Field(15.0, gt=0, description="Seconds between chunks of a request body before a 408.")
    body_deadline: float = Field(
        60.0, gt=0, description="Seconds for a whole request body, however steadily it trickles, before a 408."
    )
    max_concurrent_requests: int = Field(
        1000, ge=1, description="Requests one worker handles at once; more get a JSON 503 + Retry-After."
    )
    shutdown_timeout: float = Field(
        8.0, gt=0, description="Seconds a stopping worker (SIGTERM) waits for requests in flight, then as long "
        "for renders still running, before it exits without them.",
    )

    # Tokens
    admin_token: str = Field("", description="Bearer token for admin endpoints (backfill).")
    warm_token: str = Field("", description="Bearer token for POST /warm.")
    ingest_token: str = Field("", description="Bearer token for POST /api/library/images.")
    ingest_open: bool = Field(
        False, description="Accept ingest without a token (only on a trusted internal network). Off: closed."
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        description="Origins allowed to read the listing cross-origin, e.g. `https://app.example` (comma-separated).",
    )

    # Tiers and processing
    memory_cache_bytes: int = Field(64 * 1024 * 1024, ge=0, description="In-process LRU size for thumbnails.")
    redis_ttl: int = Field(7 * 24 * 3600, ge=1, description="Seconds a thumbnail stays in Redis.")
    negative_ttl: int = Field(60, ge=0, description="Seconds a failed source is remembered.")
    processing_threads: int = Field(
        0, ge=0, description="Render threads (0: one per core this process may use: its CPU affinity or cpuset)."
    )
    processing_queue: int = Field(64, ge=1, description="Waiting jobs before 503 + Retry-After.")
    warm_consumer: bool = Field(True, description="`thumbs serve` also consumes the warm queue.")
    warm_url: str = Field(
        "", description="Where the API sends warm requests (another host's /warm). Empty: in-process."
    )

    # Demo
    demo_images: int = Field(1200, ge=1, description="Images the demo origin generates.")
    demo_origin_port: int = Field(8090, ge=1, le=65535, description="Port of the demo's stand-in origin.")
    demo_origin_latency_ms: int = Field(0, ge=0, description="Artificial latency of the demo origin.")

    # The production shape on one machine (`thumbs stack`)
    stack_app_port: int = Field(0, ge=0, le=65535, description="Port of the app workers behind nginx (0: PORT+1).")
    edge_internal_port: int = Field(
        0, ge=0, le=65535,
        description="The stack's internal edge port on 127.0.0.1 (ingest, warm, admin, health, metrics; 0: PORT+2).",
    )
    edge_cache_size: str = Field("2g", pattern=r"^[0-9]+[kmg]?$", description="nginx thumbnail cache size.")
    edge_temp_dir: Path | None = Field(
        None,
        description="Where the stack's nginx stages responses before they enter its cache (and buffers request"
        " bodies); off the data disk, so a full data disk costs the edge its cache, not its answers."
        " Default: a directory under /dev/shm (memory) when writable, else DATA_DIR/run.",
    )

    @field_validator("previous_secrets", "allowed_sources", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(DATABASE_SCHEMES):
            raise ValueError(f"use sqlite:///path or postgresql://user@host/db, got {_shown(value)}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"use redis://host:port/db (or rediss://, unix://), got {_shown(value)}")
        return value or None

    @field_validator("store_url")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        # The store parses the rest (bucket, options) when it is built; a wrong scheme fails here.
        if value and urlsplit(value).scheme not in ("", "file", "s3"):
            raise ValueError(f"use file:///path or s3://bucket/prefix, got {_shown(value)}")
        return value

    @field_validator("public_base_url", "warm_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(f"use an absolute http(s) URL, got {_shown(value)}")
        return value

    @field_validator("fetch_timeout", "header_timeout", "body_timeout", "body_deadline", "shutdown_timeout")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'library.db').resolve()}"
        if not self.public_base_url:
            self.public_base_url = f"http://{self.host}:{self.port}"
        self.public_base_url = self.public_base_url.rstrip("/")
        return self

    def missing_write_tokens(self) -> list[str]:
        """Write endpoints that would run open: outside the demo, serving refuses to start."""
        missing = [name for name, token in (("THUMBS_ADMIN_TOKEN", self.admin_token),
                                            ("THUMBS_WARM_TOKEN", self.warm_token)) if not token]
        if not self.ingest_token and not self.ingest_open:
            missing.append("THUMBS_INGEST_TOKEN")
        return missing

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "thumbs"

    def as_environment(self) -> dict[str, str]:
        """These settings as THUMBS_* variables, for child processes."""
        environment: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, list):
                text = ",".join(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            environment[f"THUMBS_{name.upper()}"] = text
        return environment
