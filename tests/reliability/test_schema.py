"""schemathesis against /api/openapi.json of a running server (the composed app on PostgreSQL):
no 500s, and every response matches the schema's status codes, content types, headers and
bodies. Bounded here; ``make soak`` runs it with THUMBS_SOAK_SCALE=20 times the examples.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.servers import serve_in_thread
from thumbs.app import create_app
from thumbs.settings import Settings

SCALE = int(os.environ.get("THUMBS_SOAK_SCALE", "1"))
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
])


def schemathesis_binary() -> str:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not os.path.exists(found):
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return found


@pytest.mark.timeout(600)
def test_api_schema_conformance_and_no_server_errors(make_settings: Callable[..., Settings], security_pg: str,
                                                     tmp_path: Path) -> None:
    binary = schemathesis_binary()
    app = create_app(make_settings(database_url=security_pg, warm_consumer=False))
    with serve_in_thread(app) as base:
        result = subprocess.run(
            [binary, "run", f"{base}/api/openapi.json", "--checks", CHECKS,
             "--max-examples", str(25 * SCALE), "--seed", "20240601" if SCALE == 1 else str(os.getpid()),
             "--header", "Authorization: Bearer admin-token", "--request-timeout", "20", "--workers", "1",
             "--report", "junit", "--report-dir", str(tmp_path), "--no-color"],
            capture_output=True, text=True, timeout=590, cwd=tmp_path,
        )
    output = result.stdout + result.stderr
    print(output[-2500:])  # the summary, for `pytest -s` and make soak's log
    assert result.returncode == 0, output[-6000:]
    assert "No issues found" in output or "passed" in output.lower(), output[-3000:]
