"""An S3-compatible object store for thumbnails (AWS S3, MinIO, R2, Ceph, …), through obstore.

Objects are ``{prefix}/{key[0:2]}/{key}``: a whole object per thumbnail, so a PUT is atomic
(readers see the old state or the new one, never half), and replicas on other hosts share
one copy. Network errors, timeouts and refusals are :class:`OSError` to the rest of the
proxy, like a disk that failed; a missing object is ``None``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

if TYPE_CHECKING:  # typing-only names in obstore's stubs
    from obstore.store import ClientConfig, RetryConfig, S3Config

# Thumbnails are < 20 KB: a request that takes longer than this is a store in trouble.
REQUEST_TIMEOUT = "5s"
CONNECT_TIMEOUT = "2s"
HEALTH_PROBE = b"\0" * 1024


class StoreUnavailable(OSError):
    """The object store did not answer as it should."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None
    allow_http: bool


class ObjectStore:
    def __init__(self, location: S3Location) -> None:
        self.location = location
        options: ClientConfig = {"timeout": REQUEST_TIMEOUT, "connect_timeout": CONNECT_TIMEOUT,
                                 "allow_http": location.allow_http}
        config: S3Config = {"region": location.region, "virtual_hosted_style_request": False}
        if location.endpoint:
            config["endpoint"] = location.endpoint
        if location.access_key_id and location.secret_access_key:
            config["access_key_id"] = location.access_key_id
            config["secret_access_key"] = location.secret_access_key
        retry: RetryConfig = {
            "max_retries": 2, "retry_timeout": dt.timedelta(seconds=10),
            "backoff": {"init_backoff": dt.timedelta(milliseconds=50), "max_backoff": dt.timedelta(seconds=1),
                        "base": 2},
        }
        self.store = S3Store(location.bucket, prefix=location.prefix or None, config=config,
                             client_options=options, retry_config=retry)

    @staticmethod
    def path(key: str) -> str:
        if len(key) < 5 or not all(c.isalnum() or c in "._-" for c in key):
            raise ValueError(f"not a store key: {key!r}")
        return f"{key[0:2]}/{key}"

    async def get(self, key: str) -> bytes | None:
        try:
            result = await obstore.get_async(self.store, self.path(key))
            return bytes(await result.bytes_async())
        except (NotFoundError, FileNotFoundError):
            return None
        except (BaseError, OSError, RuntimeError) as exc:
            raise StoreUnavailable(f"object store GET failed: {exc}") from exc

    async def put(self, key: str, data: bytes) -> None:
        try:
            await obstore.put_async(self.store, self.path(key), data)
        except (BaseError, OSError, RuntimeError) as exc:
            raise StoreUnavailable(f"object store PUT failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self.store, self.path(key))
            return True
        except (NotFoundError, FileNotFoundError):
            return False
        except (BaseError, OSError, RuntimeError) as exc:
            raise StoreUnavailable(f"object store HEAD failed: {exc}") from exc

    async def check_writable(self) -> None:
        probe = f".health/{secrets.token_hex(8)}"
        try:
            await obstore.put_async(self.store, probe, HEALTH_PROBE)
            await obstore.delete_async(self.store, probe)
        except (BaseError, OSError, RuntimeError) as exc:
            raise StoreUnavailable(f"object store not writable: {exc}") from exc

    async def sweep(self) -> int:
        return 0  # whole-object PUTs leave nothing half-written behind

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        where = f" at {self.location.endpoint}" if self.location.endpoint else ""
        return f"s3://{self.location.bucket}/{self.location.prefix}{where}"
