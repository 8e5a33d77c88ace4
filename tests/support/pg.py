"""Create and drop throwaway PostgreSQL databases (asyncpg, run synchronously)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.support.servers import free_port


def _run(admin_url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def create_database(admin_url: str, name: str) -> None:
    _run(admin_url, f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    _run(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def find_postgres_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: Debian's versioned directories, then PATH."""
    def version(directory: Path) -> tuple[int, ...]:
        name = directory.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


PG_BIN = find_postgres_bin()


class Cluster:
    """A private PostgreSQL cluster on a free port (as the postgres user when run as root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.directory = Path(tempfile.mkdtemp(prefix="thumbs-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # PostgreSQL refuses to run as root: as root, run it as the postgres user.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.directory, "postgres", "postgres")

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run([*self.prefix, *argv], check=True, capture_output=True)

    def init(self) -> None:
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self, extra: str = "") -> None:
        """``extra``: more server options (``-c name=value ...``)."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off {extra}"
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                          "-l", str(self.directory / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)
