"""The mechanism tests reuse the proxy suite's and the API suite's fixtures."""

from __future__ import annotations

from tests.api.conftest import database_url, harness, migrated_pg, origin_url, settings, warm
from tests.proxy.conftest import redis_settings, unique

__all__ = ["database_url", "harness", "migrated_pg", "origin_url", "redis_settings", "settings", "unique", "warm"]
