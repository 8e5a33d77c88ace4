"""The machine and versions a run was measured on, for the report's header."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from importlib import metadata

import pyvips

from bench.targets import thumbor_version


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def _cpu_model() -> str:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else "unknown"


def _memory_gib() -> float:
    try:
        text = open("/proc/meminfo").read()
    except OSError:
        return 0.0
    match = re.search(r"MemTotal:\s+(\d+)", text)
    return round(int(match.group(1)) / 1024 / 1024, 1) if match else 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
            **{name: _version(name) for name in ("pyvips", "pillow", "starlette", "uvicorn", "uvloop", "httptools")},
            "thumbor": thumbor_version(),
            "nginx": _first_line(["nginx", "-v"]).removeprefix("nginx version: "),
            "redis": _first_line(["redis-server", "--version"]),
            "postgresql": _first_line(["psql", "--version"]),
            "chromium": _first_line(["/usr/bin/chromium", "--version"]),
            "wrk": _first_line(["wrk", "--version"]),
        },
    }
