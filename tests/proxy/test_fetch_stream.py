"""The fetcher's own network stream (proxy.fetch.AsyncioStream): TLS, large reads, dead keep-alives."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy import fetch
from proxy.fetch import GuardedNetworkBackend, SourcePolicy
from tests.support.wait import wait_until

BODY = bytes(range(256)) * (8 * 1024)  # 2 MiB


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, close_after: bool) -> None:
    """Answer every GET on the connection with BODY; with ``close_after``, hang up after the first."""
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
            await writer.drain()
            if close_after:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(ssl_context: ssl.SSLContext | None = None, close_after: bool = False) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: _answer(r, w, close_after), "127.0.0.1", 0, ssl=ssl_context)


def _pool(client_ssl: ssl.SSLContext | None = None) -> httpcore.AsyncConnectionPool:
    policy = SourcePolicy(("127.0.0.1",), allow_private=True)
    return httpcore.AsyncConnectionPool(ssl_context=client_ssl, network_backend=GuardedNetworkBackend(policy))


@pytest.fixture
async def tls(tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    cert, key = _certificate(tmp_path)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(cert, key)
    server = await _serve(server_ssl)
    client_ssl = ssl.create_default_context(cafile=str(cert))
    try:
        yield server.sockets[0].getsockname()[1], client_ssl
    finally:
        server.close()


async def test_https_origin_is_read_over_tls(tls: tuple[int, ssl.SSLContext]) -> None:
    port, client_ssl = tls
    async with _pool(client_ssl) as pool:
        response = await pool.request("GET", f"https://127.0.0.1:{port}/a.jpg")
        assert response.status == 200 and response.content == BODY
        again = await pool.request("GET", f"https://127.0.0.1:{port}/b.jpg")  # the kept-alive connection
        assert again.content == BODY


async def test_untrusted_certificate_is_a_connect_error(tls: tuple[int, ssl.SSLContext]) -> None:
    port, _ = tls
    async with _pool(ssl.create_default_context()) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", f"https://127.0.0.1:{port}/a.jpg")


async def test_a_large_body_takes_few_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore asks for 64 KB a read; the stream hands over whole buffered runs instead."""
    reads: list[int] = []
    original = fetch.AsyncioStream.read

    async def counted(self: fetch.AsyncioStream, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        data = await original(self, max_bytes, timeout)
        reads.append(len(data))
        return data

    monkeypatch.setattr(fetch.AsyncioStream, "read", counted)
    server = await _serve()
    try:
        async with _pool() as pool:
            response = await pool.request("GET", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/a.jpg")
    finally:
        server.close()
    assert response.content == BODY
    # 64 KB reads would be 32 or more; a loopback burst fills the buffer faster than it is drained.
    assert len(reads) < len(BODY) // (64 * 1024) // 2, reads


async def test_a_connection_the_origin_closed_is_not_reused() -> None:
    server = await _serve(close_after=True)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/a.jpg"
    try:
        async with _pool() as pool:
            assert (await pool.request("GET", url)).content == BODY
            # Once the hang-up reaches it, the idle connection reads as expired (or is already dropped).
            await wait_until(lambda: all(c.has_expired() for c in pool.connections),
                             what="the pool to see the origin's hang-up on its idle connection")
            assert (await pool.request("GET", url)).content == BODY
    finally:
        server.close()


async def test_connect_to_a_closed_port_is_a_connect_error() -> None:
    server = await _serve()
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with _pool() as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", f"http://127.0.0.1:{port}/a.jpg")
