"""PostgreSQL URLs as managed databases hand them out: libpq's parameters hold for the app and for migrate.

`databases` passed on only host, port, user, password and database, so ``sslmode=verify-full`` connected
without checking the certificate (asyncpg's default ``prefer``); Alembic, given the URL through SQLAlchemy,
failed on any of them (``TypeError: connect() got an unexpected keyword argument 'sslmode'``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from library_api.db import create_database
from library_api.migrate import run_migrations
from tests.conftest import cannot_run
from tests.support.pg import PG_BIN, Cluster
from tests.support.tls import self_signed_certificate
from thumbs.settings import Settings

IS_TLS = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Path, Path]]:
    """A private cluster that offers TLS with a self-signed certificate; (cluster, its CA, another CA)."""
    if PG_BIN is None:
        cannot_run("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    made = Cluster(PG_BIN)
    try:
        made.init()
        certificate, key = self_signed_certificate(made.data)
        if os.geteuid() == 0:
            shutil.chown(certificate, "postgres", "postgres")
            shutil.chown(key, "postgres", "postgres")
        key.chmod(0o600)
        made.start(f"-c ssl=on -c ssl_cert_file={certificate} -c ssl_key_file={key}")
        stranger = tmp_path / "stranger"
        stranger.mkdir()
        other_ca, _ = self_signed_certificate(stranger)
        yield made, certificate, other_ca
    finally:
        made.remove()


async def _connects_over_tls(url: str) -> bool:
    database = create_database(Settings(_env_file=None, database_url=url))
    await database.connect()
    try:
        return bool(await database.fetch_val(IS_TLS))
    finally:
        await database.disconnect()


async def test_sslmode_and_sslrootcert_hold_for_the_app_and_for_migrate(
    tls_cluster: tuple[Cluster, Path, Path],
) -> None:
    cluster, ca, other_ca = tls_cluster
    verified = f"{cluster.url}?sslmode=verify-full&sslrootcert={ca}"
    await asyncio.to_thread(run_migrations, Settings(_env_file=None, database_url=verified))
    assert await _connects_over_tls(verified)
    assert not await _connects_over_tls(f"{cluster.url}?sslmode=disable")

    impostor = f"{cluster.url}?sslmode=verify-full&sslrootcert={other_ca}"  # a certificate nobody vouched for
    with pytest.raises(Exception, match="certificate verify failed"):
        await _connects_over_tls(impostor)
    with pytest.raises(Exception, match="certificate verify failed"):
        await asyncio.to_thread(run_migrations, Settings(_env_file=None, database_url=impostor))
