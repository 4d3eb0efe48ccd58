"""TLS for the gRPC port: the server's certificate and key from PEM files, and optionally the CA whose
client certificates the server requires (mutual TLS).

The files are read once, when the server starts. Each is checked with the standard library's OpenSSL
binding first (the key must match the certificate, the CA file must hold certificates), so a wrong,
missing or unreadable file stops the start with a ConfigError naming its variable and path, instead of
a server that listens and then fails every handshake. A client certificate proves where a connection
comes from, not who may do what: every call still needs its API key or token.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from tally.config import ConfigError, Settings, check_tls

CERT_VARIABLE = "TALLY_TLS_CERT_FILE"
KEY_VARIABLE = "TALLY_TLS_KEY_FILE"
CLIENT_CA_VARIABLE = "TALLY_TLS_CLIENT_CA_FILE"
PEM_SIZE_BYTES_MAX = 1024 * 1024


@dataclass(frozen=True)
class TlsMaterial:
    certificate_chain: bytes
    private_key: bytes = field(repr=False)
    client_ca: bytes | None = None  # set: clients must present a certificate signed by one of these

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None


def load_tls(settings: Settings) -> TlsMaterial | None:
    """The PEM material TLS is configured with, or None when the port is plaintext."""
    check_tls(settings)
    if not settings.tls_cert_file:
        return None
    certificate = _read(CERT_VARIABLE, settings.tls_cert_file, b"CERTIFICATE-----")
    key = _read(KEY_VARIABLE, settings.tls_key_file, b"PRIVATE KEY-----")
    if b"ENCRYPTED PRIVATE KEY" in key or b"Proc-Type: 4,ENCRYPTED" in key:
        raise ConfigError(f"{KEY_VARIABLE}={settings.tls_key_file!r}: the key is encrypted; give an unencrypted "
                          "PEM key (protect the file instead)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{CERT_VARIABLE}={settings.tls_cert_file!r} with {KEY_VARIABLE}="
                          f"{settings.tls_key_file!r}: not a usable certificate and matching key ({exc})") from None
    client_ca = None
    if settings.tls_client_ca_file:
        client_ca = _read(CLIENT_CA_VARIABLE, settings.tls_client_ca_file, b"CERTIFICATE-----")
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{CLIENT_CA_VARIABLE}={settings.tls_client_ca_file!r}: not usable CA certificates "
                              f"({exc})") from None
    return TlsMaterial(certificate, key, client_ca)


def server_credentials(material: TlsMaterial) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(material.private_key, material.certificate_chain)],
                                       root_certificates=material.client_ca,
                                       require_client_auth=material.mutual)


def _read(variable: str, path: str, marker: bytes) -> bytes:
    try:
        file = Path(path)
        if file.stat().st_size > PEM_SIZE_BYTES_MAX:
            raise ConfigError(f"{variable}={path!r}: larger than {PEM_SIZE_BYTES_MAX} bytes; not a PEM file")
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}={path!r}: cannot read the file ({exc.strerror or exc})") from None
    if b"-----BEGIN " not in data or marker not in data:
        raise ConfigError(f"{variable}={path!r}: not a PEM file with a {marker.decode().rstrip('-')}")
    return data
