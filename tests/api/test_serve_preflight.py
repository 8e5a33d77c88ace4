"""`thumbs serve`, `thumbs backfill` and `thumbs worker` on a PostgreSQL they cannot use say so in one line, exit 1.

Before, serve's check ran inside uvicorn's lifespan: an unmigrated database (the README's "run
`thumbs migrate`") or an unreachable one was a 56-60 line traceback and exit 3; `thumbs backfill`
on an unmigrated one was a traceback (UndefinedTableError: thumbnail_jobs); `thumbs worker`
started and failed on every outcome it wrote to the library.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.legacy import fresh_database
from tests.support.demo_server import clean_environment
from tests.support.servers import free_port


def thumbs(command: str, tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    environment = clean_environment(
        THUMBS_DATA_DIR=str(tmp_path / "data"), THUMBS_DATABASE_URL=database_url, THUMBS_PORT=str(free_port()),
        THUMBS_SECRET="s", THUMBS_ADMIN_TOKEN="a", THUMBS_WARM_TOKEN="w", THUMBS_INGEST_TOKEN="i",
    )
    if command == "worker":  # it needs Redis, and must stop at the database before it touches the stream
        environment.update(THUMBS_REDIS_URL="redis://127.0.0.1:6379/0",
                           THUMBS_REDIS_PREFIX=f"preflight-{tmp_path.name}:")
    return subprocess.run([sys.executable, "-m", "thumbs.cli", command], env=environment,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", ["serve", "backfill", "worker"])
@pytest.mark.parametrize("case", ["unmigrated", "unreachable"])
def test_a_database_it_cannot_use_is_one_line_and_exit_1(command: str, case: str, tmp_path: Path) -> None:
    with fresh_database("postgresql", tmp_path) as url:
        if case == "unreachable":
            url = f"postgresql://postgres@127.0.0.1:{free_port()}/library"  # nothing listens there
        result = thumbs(command, tmp_path, url)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("thumbs: error: ")
    if case == "unmigrated":
        assert "run `thumbs migrate`" in result.stderr
