"""The `thumbs` command's contract: clear one-line errors with exit 2, and `thumbs url`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.urls import parse_thumbnail_path
from tests.support.demo_server import clean_environment
from tests.support.origin import Origin
from thumbs.demo.images import demo_image


def thumbs(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thumbs.cli", *args],
        env=clean_environment(**environment), capture_output=True, text=True, timeout=60,
    )


def test_url_prints_the_signed_thumbnail_url() -> None:
    result = thumbs("url", "https://cdn.example.com/a.png", THUMBS_SECRET="k", THUMBS_PUBLIC_BASE_URL="https://edge.test")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("https://edge.test/t/")
    assert parse_thumbnail_path(url.removeprefix("https://edge.test"), ["k"]).source == "https://cdn.example.com/a.png"


def test_url_without_a_secret_is_one_clear_line() -> None:
    result = thumbs("url", "https://cdn.example.com/a.png")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "THUMBS_SECRET" in result.stderr and "Traceback" not in result.stderr


def test_bad_flag_exits_2_naming_it() -> None:
    result = thumbs("serve", "--bogus")
    assert result.returncode == 2
    assert "--bogus" in result.stderr and result.stderr.strip().count("\n") == 0


def test_bad_setting_exits_2_naming_the_variable() -> None:
    result = thumbs("url", "https://a.test/x.png", THUMBS_SECRET="k", THUMBS_PORT="eighty")
    assert result.returncode == 2
    assert "THUMBS_PORT" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(("name", "value"), [
    ("THUMBS_DATABASE_URL", "mysql://db/library"),
    ("THUMBS_DATABASE_URL", "garbage"),
    ("THUMBS_STORE_URL", "ftp://x"),
    ("THUMBS_REDIS_URL", "garbage"),
    ("THUMBS_FETCH_TIMEOUT", "inf"),
    ("THUMBS_PUBLIC_BASE_URL", "notaurl"),
    ("THUMBS_WARM_URL", "notaurl"),
])
def test_a_malformed_setting_is_refused_before_anything_starts(name: str, value: str, tmp_path: Path) -> None:
    result = thumbs("migrate", THUMBS_DATA_DIR=str(tmp_path), **{name: value})
    assert result.returncode == 2, result.stderr
    assert name in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("setting", [
    {"THUMBS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/library"},  # nothing listens on port 1
    {"THUMBS_DATA_DIR": "/dev/null"},  # a file, not a directory
])
def test_a_database_or_data_dir_that_cannot_be_used_is_one_line(setting: dict[str, str], tmp_path: Path) -> None:
    result = thumbs("migrate", **{"THUMBS_DATA_DIR": str(tmp_path), **setting})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("thumbs: error: ")


def test_every_command_has_help() -> None:
    for command in ("serve", "url", "migrate", "backfill", "worker", "demo", "stack"):
        result = thumbs(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout


def test_migrate_then_backfill_a_legacy_table(tmp_path: Path, origin: Origin) -> None:
    """An operator's path: a legacy SQLite table, `thumbs migrate`, then `thumbs backfill` makes every thumbnail."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / "library.db"
    connection = sqlite3.connect(database)
    connection.execute(
        "CREATE TABLE pipeline_step_outputs (id INTEGER PRIMARY KEY, url TEXT NOT NULL, created_at TEXT, "
        "pipeline_id TEXT, step TEXT)"
    )
    sources = [origin.add(f"/cli-backfill/{n}.png", demo_image(n, "small").data) for n in range(3)]
    sources.append(origin.add("/cli-backfill/broken.png", b"not an image"))
    connection.executemany(
        "INSERT INTO pipeline_step_outputs (url, created_at, pipeline_id, step) VALUES (?, '2024-01-01', 'p', 's')",
        [(source,) for source in sources],
    )
    # A legacy row whose url no parser reads: failed with its reason, the job still finishes.
    connection.execute("INSERT INTO pipeline_step_outputs (url, created_at) VALUES ('not a url', 1714564800123)")
    connection.commit()
    connection.close()
    environment = {
        "THUMBS_DATA_DIR": str(data_dir),
        "THUMBS_SECRET": "k",
        "THUMBS_ALLOWED_SOURCES": origin.base_url.removeprefix("http://"),
        "THUMBS_ALLOW_PRIVATE_SOURCES": "true",
    }
    migrated = thumbs("migrate", **environment)
    assert migrated.returncode == 0, migrated.stderr
    backfilled = thumbs("backfill", **environment)
    assert backfilled.returncode == 0, backfilled.stderr
    assert "3 done, 2 failed, 0 remaining" in backfilled.stdout
    connection = sqlite3.connect(database)
    statuses = dict(connection.execute("SELECT url, thumbnail_status FROM pipeline_step_outputs").fetchall())
    connection.close()
    assert [statuses[source] for source in sources] == ["ready", "ready", "ready", "failed"]
    # Each ready image's thumbnail and the picker's two cell variants, made from one download.
    assert sum(1 for path in (data_dir / "thumbs").rglob("*") if path.is_file()) == 3 * 3
    # Running it again finds nothing left to do; --retry-failed tries the two failed ones again.
    again = thumbs("backfill", **environment)
    assert again.returncode == 0 and "0 done, 0 failed, 0 remaining" in again.stdout
    retried = thumbs("backfill", "--retry-failed", **environment)
    assert retried.returncode == 0 and "0 done, 2 failed, 0 remaining" in retried.stdout, retried.stdout


def test_a_worker_without_redis_is_a_missing_setting(tmp_path: Path) -> None:
    result = thumbs("worker", THUMBS_DATA_DIR=str(tmp_path), THUMBS_SECRET="k")
    assert result.returncode == 2, result.stderr
    assert "THUMBS_REDIS_URL" in result.stderr and result.stderr.strip().count("\n") == 0
