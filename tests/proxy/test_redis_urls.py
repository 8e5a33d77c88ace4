"""Every Redis URL form the settings accept reaches that Redis: an ACL user, a unix socket, TLS.

The thumbnail tier used to take only host, port, db and password from the URL, so an ACL user
could not log in, ``rediss://`` spoke plain text to a TLS port and ``unix://`` went to
127.0.0.1:6379 (another Redis, when one runs there).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from proxy.tiers import RedisTier
from proxy.warm_queue import RedisWarmQueue
from tests.reliability.conftest import ThrowawayRedis
from tests.support.servers import free_port
from tests.support.tls import self_signed_certificate
from thumbs.settings import Settings


@pytest.fixture
def locked_down_redis(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Redis with the default user off, a unix socket and a TLS port; the URL of each way in."""
    certificate, key = self_signed_certificate(tmp_path)
    socket_path, tls_port = tmp_path / "redis.sock", free_port()
    server = ThrowawayRedis(tmp_path, extra=[
        "--unixsocket", str(socket_path), "--unixsocketperm", "700",
        "--tls-port", str(tls_port), "--tls-cert-file", str(certificate), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(certificate), "--tls-auth-clients", "no",
    ])
    server.start()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "thumbs", "on", ">s3cret", "~*", "&*", "+@all")
    admin.execute_command("ACL", "SETUSER", "default", "off")
    admin.close()
    urls = {
        "acl user": f"redis://thumbs:s3cret@127.0.0.1:{server.port}/2",
        "unix socket": f"unix://thumbs:s3cret@{socket_path}?db=2",
        "tls": f"rediss://thumbs:s3cret@127.0.0.1:{tls_port}/2?ssl_ca_certs={certificate}",
    }
    try:
        yield urls
    finally:
        server.kill()


@pytest.mark.parametrize("way", ["acl user", "unix socket", "tls"])
async def test_the_thumbnail_tier_and_the_warm_queue_reach_redis_by_every_url_form(
    locked_down_redis: dict[str, str], way: str
) -> None:
    urls = locked_down_redis
    url = urls[way]
    assert Settings(_env_file=None, redis_url=url).redis_url == url  # a URL the settings accept
    tier = RedisTier(url, "urls:", ttl=60)
    queue = RedisWarmQueue(url, "urls:")
    try:
        await tier.set_raw("entry", b"thumbnail bytes", ttl=60)
        assert await tier.get_raw("entry") == b"thumbnail bytes"
        assert await tier.ping() and tier.last_error is None
        await queue.put(["http://origin.test/a.jpg"])
    finally:
        await tier.close()
        await queue.close()
    check = redis.Redis.from_url(urls["acl user"])
    try:  # in that Redis and database, under the tier's key layout
        assert check.get("urls:thumb:entry") == b"thumbnail bytes" and check.xlen("urls:warm") == 1
    finally:
        check.close()
