"""HTTP/2 where the registry offers it: the real distribution registry over TLS answers our client in
HTTP/2 (one connection carries every listing in flight); plain HTTP stays HTTP/1.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from image_updater.adapters.registry.client import RegistryClient
from tests.conftest import require_binary
from tests.harness.util import free_port, stop_process, wait_until

pytestmark = pytest.mark.integration


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def trust(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    binary = require_binary("docker-registry")
    cert, key = self_signed(tmp_path)
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(cert), "key": str(key)}},
    }
    (tmp_path / "config.yml").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [binary, "serve", str(tmp_path / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"https://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/v2/", verify=trust(cert), timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, timeout=15), "the TLS registry did not start"
        yield url, cert
    finally:
        stop_process(proc)


def test_a_registry_over_tls_is_spoken_to_in_http2(tls_registry: tuple[str, Path]) -> None:
    url, cert = tls_registry
    versions: list[str] = []

    async def main() -> None:
        async with RegistryClient(url, registry="127.0.0.1", verify=trust(cert)) as client:
            await client.ping()
            client._http.event_hooks["response"].append(_record(versions))
            results = await asyncio.gather(
                *(client.list_tags(f"team/app{i}") for i in range(5)), return_exceptions=True
            )
            assert all(isinstance(r, Exception) and "unknown" in str(r).lower() for r in results), results

    asyncio.run(main())
    assert versions and set(versions) == {"HTTP/2"}


def _record(versions: list[str]):  # type: ignore[no-untyped-def]
    async def hook(response: httpx.Response) -> None:
        versions.append(response.http_version)

    return hook
