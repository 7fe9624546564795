"""TLS of the gateway's public ports: one certificate and key (PEM files) for gRPC and HTTP."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

CERT_ENV = "CAREOPS_TLS_CERT_FILE"
KEY_ENV = "CAREOPS_TLS_KEY_FILE"


def _read(path: str, variable: str) -> bytes:
    """Returns the file's bytes; a missing or unreadable file names its variable."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{variable}: cannot read {path}: {error.strerror or error}") from error


@dataclass(frozen=True)
class TlsFiles:
    """A certificate chain and its private key, checked to be PEM and to belong together."""

    cert_file: str
    key_file: str
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def load(cls, cert_file: str, key_file: str) -> TlsFiles:
        """Returns the pair read from the files; a ValueError names the variable at fault."""
        cert_pem, key_pem = _read(cert_file, CERT_ENV), _read(key_file, KEY_ENV)
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as error:
            raise ValueError(f"{CERT_ENV}: {cert_file} is not a PEM certificate") from error
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as error:
            # TypeError: an encrypted key; the gateway has no passphrase to open it with.
            raise ValueError(f"{KEY_ENV}: {key_file} is not an unencrypted PEM key") from error
        if _public(key.public_key()) != _public(certificate.public_key()):
            raise ValueError(f"{KEY_ENV}: {key_file} is not the key of {CERT_ENV} {cert_file}")
        return cls(cert_file, key_file, cert_pem, key_pem)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Returns the server credentials of the gRPC port (no client certificates asked)."""
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)])

    def ssl_context(self) -> ssl.SSLContext:
        """Returns the server context of the HTTP port: TLS 1.2 or newer."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _public(key: PublicKeyTypes) -> bytes:
    """Returns a public key's DER encoding, the form two keys are compared in."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
