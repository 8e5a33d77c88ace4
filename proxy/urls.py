"""Deterministic, signed thumbnail URLs.

Shape: ``/t/{signature}/{variant}/{source}.{ext}`` where ``source`` is the origin URL in
URL-safe base64 (no padding) and ``signature`` is URL-safe base64 HMAC-SHA256 over
``{variant}/{source}``. The cache key is derived from the variant and the source only,
never from the signature, so rotating keys invalidates nothing that is cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from proxy.errors import ProxyError
from proxy.source_url import MAX_URL_LENGTH
from proxy.variants import CELL, CELL_2X, DEFAULT_VARIANT, VARIANTS, Variant

# What the library (and anyone making these URLs) takes from the proxy: the URL contract.
__all__ = [
    "CELL", "CELL_2X", "DEFAULT_VARIANT", "MAX_URL_LENGTH", "BadThumbnailURL", "SignatureMismatch", "ThumbnailRequest",
    "cache_key", "parse_thumbnail_path", "source_refusal", "thumbnail_path", "thumbnail_url", "verify",
]

PREFIX = "/t"
# Bumped when the pipeline's output changes, so cached bytes are never reused across versions.
PIPELINE_VERSION = "2"
SIGNATURE_CHARS = 43  # 32 bytes of HMAC-SHA256, base64url without padding


class BadThumbnailURL(ValueError):
    """The path is not a thumbnail URL (404)."""


class SignatureMismatch(ValueError):
    """The path is well-formed but its signature does not verify (403)."""


@dataclass(frozen=True)
class ThumbnailRequest:
    source: str
    variant: Variant

    @cached_property  # hashed once per request object; a memoised path reuses it on every hit
    def cache_key(self) -> str:
        return cache_key(self.source, self.variant)


def encode_source(source: str) -> str:
    return base64.urlsafe_b64encode(source.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_source(encoded: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadThumbnailURL("source is not valid base64url") from exc


def sign(secret: str, variant: str, encoded_source: str) -> str:
    digest = hmac.new(
        secret.encode("utf-8"), f"{variant}/{encoded_source}".encode("ascii"), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def thumbnail_path(source: str, secret: str, variant: Variant = DEFAULT_VARIANT) -> str:
    encoded = encode_source(source)
    return f"{PREFIX}/{sign(secret, variant.name, encoded)}/{variant.name}/{encoded}.{variant.extension}"


def thumbnail_url(
    source: str, secret: str, public_base_url: str, variant: Variant = DEFAULT_VARIANT
) -> str:
    return public_base_url.rstrip("/") + thumbnail_path(source, secret, variant)


def cache_key(source: str, variant: Variant) -> str:
    material = f"{PIPELINE_VERSION}\n{variant.name}\n{source}".encode()
    return hashlib.sha256(material).hexdigest()


def parse_thumbnail_path(path: str, secrets: Sequence[str]) -> ThumbnailRequest:
    """Verify and decode ``/t/{sig}/{variant}/{source}.{ext}`` (the ``/t`` prefix optional)."""
    parts = path.strip("/").split("/")
    if parts and parts[0] == PREFIX.strip("/"):
        parts = parts[1:]
    if len(parts) != 3:
        raise BadThumbnailURL("expected /t/{signature}/{variant}/{source}.{ext}")
    signature, variant_name, filename = parts
    variant = VARIANTS.get(variant_name)
    if variant is None:
        raise BadThumbnailURL(f"unknown variant {variant_name!r}")
    encoded, dot, extension = filename.rpartition(".")
    if not dot or extension != variant.extension or not encoded:
        raise BadThumbnailURL(f"expected a .{variant.extension} file name")
    if not verify(signature, variant.name, encoded, secrets):
        raise SignatureMismatch("signature does not match")
    return ThumbnailRequest(source=decode_source(encoded), variant=variant)


def verify(signature: str, variant: str, encoded_source: str, secrets: Iterable[str]) -> bool:
    # compare_digest refuses non-ASCII str and sign() cannot encode it: such input is a mismatch, not a 500.
    if len(signature) != SIGNATURE_CHARS or not (signature.isascii() and encoded_source.isascii()):
        return False
    matched = False
    for secret in secrets:
        if secret:
            # Check every key (no early exit) so timing does not reveal which one matched.
            matched |= hmac.compare_digest(sign(secret, variant, encoded_source), signature)
    return matched


def source_refusal(url: str, allowed_sources: Sequence[str]) -> str | None:
    """Why the proxy would refuse ``url`` as a source (the one source parser and the allow-list),
    or None. Addresses (private ranges, DNS) are checked later, at fetch time."""
    from proxy.fetch import policy_from  # the fetch layer owns the policy; imported here, not at module load

    try:
        policy_from(allowed_sources, allow_private=True).check_url(url)
    except ProxyError as exc:
        return exc.detail
    return None
