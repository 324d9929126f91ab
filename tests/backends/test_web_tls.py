"""HTTPS through the pinned address: the TLS handshake still names (SNI) and verifies the original host."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from langgraph_wideseek.runtime import RetryPolicy
from langgraph_wideseek.tools.base import BackendError
from langgraph_wideseek.tools.netguard import NetGuard
from langgraph_wideseek.tools.web import WebReader

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_https_is_pinned_and_verified_against_the_host_name(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "site.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sni_seen: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni_seen.append(name)

    async def host(request: web.Request) -> web.Response:
        return web.Response(text=f"secure hello for {request.headers['Host']}", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", host)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:

        async def resolve(h: str, p: int) -> list[str]:
            return {"site.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]}[h]

        client_ctx = ssl.create_default_context(cafile=str(cert))
        reader = WebReader(
            guard=NetGuard(allowed_networks=["127.0.0.1/32"], resolver=resolve),
            ssl_context=client_ctx,
            retry=RetryPolicy(retries=0),
        )
        page = await reader.read(f"https://site.test:{port}/")
        assert page.text == f"secure hello for site.test:{port}"
        assert sni_seen == ["site.test"]  # the handshake named the host, not the pinned address
        # Same address, other name: the certificate does not cover it, and the read fails without a retry.
        with pytest.raises(BackendError, match="certificate is not valid"):
            await reader.read(f"https://evil.test:{port}/")
    finally:
        await runner.cleanup()
