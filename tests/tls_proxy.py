"""nginx in front of a Temporal dev server, terminating TLS for gRPC as a production cluster's
load balancer does, with certificates from a CA the test makes (Debian's nginx: `make nginx`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from retention.runtime.devserver import free_port, port_open, stop

NGINX = "/usr/sbin/nginx"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # a CA that signed nothing here
    stranger_cert: Path  # a client pair the stranger signed
    stranger_key: Path


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _authority("test CA")
    stranger, stranger_key = _authority("stranger CA")
    server = _leaf("localhost", ca, ca_key, server=True)
    client = _leaf("retention-worker", ca, ca_key, server=False)
    outsider = _leaf("outsider", stranger, stranger_key, server=False)
    return Pki(
        ca=_write(folder / "ca.pem", ca),
        server_cert=_write(folder / "server.pem", server[0]),
        server_key=_write(folder / "server.key", server[1]),
        client_cert=_write(folder / "client.pem", client[0]),
        client_key=_write(folder / "client.key", client[1]),
        stranger_ca=_write(folder / "stranger-ca.pem", stranger),
        stranger_cert=_write(folder / "outsider.pem", outsider[0]),
        stranger_key=_write(folder / "outsider.key", outsider[1]),
    )


@contextmanager
def tls_proxy(
    folder: Path, upstream: str, pki: Pki, *, client_certs: bool = False, api_key: str = ""
) -> Iterator[str]:
    """`host:port` of nginx serving TLS (asking for a client certificate its CA signed, and
    checking `authorization: Bearer <api_key>`, when asked) and passing gRPC to `upstream`."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(_config(folder, port, upstream, pki, client_certs, api_key))
    log = folder / "error.log"
    process = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(config), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(port, process, log)
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


def _config(
    folder: Path, port: int, upstream: str, pki: Pki, client_certs: bool, api_key: str
) -> str:
    verify = (
        f"ssl_client_certificate {pki.ca};\n        ssl_verify_client on;" if client_certs else ""
    )
    # A refused key answers as Temporal Cloud does: gRPC status 16 (UNAUTHENTICATED).
    check = (
        f'if ($http_authorization != "Bearer {api_key}") {{\n'
        "                add_header grpc-status 16 always;\n"
        '                add_header grpc-message "invalid API key" always;\n'
        "                add_header content-type application/grpc always;\n"
        "                return 200;\n"
        "            }"
        if api_key
        else ""
    )
    temp = folder / "tmp"
    return f"""
daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {pki.server_cert};
        ssl_certificate_key {pki.server_key};
        {verify}
        location / {{
            {check}
            grpc_read_timeout 300s;
            grpc_send_timeout 300s;
            grpc_pass grpc://{upstream};
        }}
    }}
}}
"""


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise AssertionError(f"nginx exited ({process.returncode}):\n{log.read_text()}")
        if port_open(port):
            return
        time.sleep(0.1)
    raise AssertionError(f"nginx never listened on {port}:\n{log.read_text()}")


def _authority(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, ca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


def _write(path: Path, item: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    if isinstance(item, x509.Certificate):
        path.write_bytes(item.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    return path
