"""Choosing the store from ``THUMBS_STORE_URL``.

- ``file:///var/thumbs`` (or a plain path): :class:`~proxy.storage.DiskStore`, sharded files.
- ``s3://bucket/prefix?endpoint=http://minio:9000&region=us-east-1``: the S3-compatible
  :class:`~proxy.object_store.ObjectStore`. Credentials come from ``AWS_ACCESS_KEY_ID`` and
  ``AWS_SECRET_ACCESS_KEY`` (never from the URL, which ends up in logs); an ``http://``
  endpoint is allowed only when named explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from proxy.storage import DiskStore, Store

SCHEMES = ("file", "s3")


class BadStoreURL(ValueError):
    pass


def store_from_url(url: str) -> Store:
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = unquote(parts.path) if parts.scheme else url
        if not path:
            raise BadStoreURL("a file store needs a path, e.g. file:///var/thumbs")
        return DiskStore(Path(path))
    if parts.scheme == "s3":
        from proxy.object_store import ObjectStore, S3Location  # obstore loads only when used

        if not parts.hostname:
            raise BadStoreURL("an s3 store needs a bucket, e.g. s3://thumbs/prefix")
        if parts.username or parts.password:
            raise BadStoreURL("put object store credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not the URL")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "region"}
        if unknown:
            raise BadStoreURL(f"unknown s3 store options: {', '.join(sorted(unknown))} (endpoint, region)")
        endpoint = query.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise BadStoreURL(f"the s3 endpoint must be an http(s) URL, got {endpoint!r}")
        return ObjectStore(S3Location(
            bucket=parts.hostname,
            prefix=parts.path.strip("/"),
            endpoint=endpoint.rstrip("/") if endpoint else None,
            region=query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            allow_http=bool(endpoint and endpoint.startswith("http://")),
        ))
    raise BadStoreURL(f"unsupported store URL scheme {parts.scheme!r} (use {' or '.join(SCHEMES)})")
