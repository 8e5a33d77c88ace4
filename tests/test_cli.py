"""The `thumbs` command's contract: clear one-line errors with exit 2, and `thumbs url`."""

from __future__ import annotations

import subprocess
import sys

from proxy.urls import parse_thumbnail_path
from tests.support.demo_server import clean_environment


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


def test_every_command_has_help() -> None:
    for command in ("serve", "url", "migrate", "backfill", "worker", "demo", "stack"):
        result = thumbs(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout
