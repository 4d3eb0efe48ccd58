"""The client verbs' channel to the server: plaintext, or TLS from PEM files, for a server started with
TALLY_TLS_CERT_FILE (and TALLY_TLS_CLIENT_CA_FILE for mutual TLS).

TLS is used when --tls, --ca-file, --client-cert, --client-key or --server-name is given, or their
environment variables are set. Without --ca-file the system's CA certificates are trusted. A client
certificate goes with its key. A file that cannot be used stops the command before it connects, naming the
option and the path. TLS is the transport only: every call still sends its API key.
"""

from __future__ import annotations

import argparse
import os

import grpc

TLS_ENV = "TALLY_TLS"
CA_FILE_ENV = "TALLY_CA_FILE"
CLIENT_CERT_ENV = "TALLY_CLIENT_CERT_FILE"
CLIENT_KEY_ENV = "TALLY_CLIENT_KEY_FILE"
SERVER_NAME_ENV = "TALLY_TLS_SERVER_NAME"
PEM_SIZE_BYTES_MAX = 1024 * 1024
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"", "0", "false", "no", "off"})


class TlsSettingError(Exception):
    """A TLS option or file named on the command line or in the environment cannot be used (exit 2)."""


def add_tls_options(parent: argparse.ArgumentParser) -> None:
    """The TLS options of every client verb; the file options default to their environment variables."""
    group = parent.add_argument_group("TLS (for a server started with TALLY_TLS_CERT_FILE)")
    group.add_argument("--tls", action="store_true", default=None,
                       help=f"connect over TLS, trusting the system's CA certificates (env {TLS_ENV}=1)")
    group.add_argument("--ca-file", metavar="PATH", default=os.environ.get(CA_FILE_ENV) or None,
                       help=f"PEM CA certificates the server's certificate must chain to; implies --tls "
                            f"(env {CA_FILE_ENV})")
    group.add_argument("--client-cert", metavar="PATH", default=os.environ.get(CLIENT_CERT_ENV) or None,
                       help="PEM client certificate, for a server that requires one (TALLY_TLS_CLIENT_CA_FILE); "
                            f"with --client-key, implies --tls (env {CLIENT_CERT_ENV})")
    group.add_argument("--client-key", metavar="PATH", default=os.environ.get(CLIENT_KEY_ENV) or None,
                       help=f"the client certificate's unencrypted PEM key (env {CLIENT_KEY_ENV})")
    group.add_argument("--server-name", metavar="NAME", default=os.environ.get(SERVER_NAME_ENV) or None,
                       help="the name the server's certificate must carry when --target reaches it under another "
                            f"(an address, a tunnel); implies --tls (env {SERVER_NAME_ENV})")


def uses_tls(args: argparse.Namespace) -> bool:
    return bool(_tls_flag(args) or args.ca_file or args.client_cert or args.client_key or args.server_name)


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to --target, over TLS when the options ask for it; not connected yet."""
    if not uses_tls(args):
        return grpc.insecure_channel(args.target)
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else None
    return grpc.secure_channel(args.target, channel_credentials(args), options=options)


def channel_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials:
    if bool(args.client_cert) != bool(args.client_key):
        raise TlsSettingError("--client-cert and --client-key go together: give both or neither")
    key = _pem(args.client_key, "--client-key", "PRIVATE KEY")
    if key is not None and (b"ENCRYPTED PRIVATE KEY" in key or b"Proc-Type: 4,ENCRYPTED" in key):
        raise TlsSettingError(f"--client-key {args.client_key}: the key is encrypted; give an unencrypted PEM key "
                              "(protect the file instead)")
    return grpc.ssl_channel_credentials(root_certificates=_pem(args.ca_file, "--ca-file", "CERTIFICATE"),
                                        private_key=key,
                                        certificate_chain=_pem(args.client_cert, "--client-cert", "CERTIFICATE"))


def unreachable_hint(args: argparse.Namespace) -> str:
    """What to check when no connection came up: a TLS mismatch looks like an unreachable server."""
    if uses_tls(args):
        return ("over TLS: the server's certificate must chain to --ca-file (or a system CA) and name the host in "
                "--target (or --server-name); a server that requires client certificates needs --client-cert and "
                "--client-key")
    return "plaintext: if the server uses TLS, pass --ca-file (or --tls)"


def _tls_flag(args: argparse.Namespace) -> bool:
    if args.tls is not None:
        return args.tls
    value = os.environ.get(TLS_ENV, "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise TlsSettingError(f"{TLS_ENV}={value!r}: expected 1/true/yes/on or 0/false/no/off")
    return value in _TRUE


def _pem(path: str | None, option: str, label: str) -> bytes | None:
    """The file's PEM bytes, which must hold a block of `label`; None when no file is named."""
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(PEM_SIZE_BYTES_MAX + 1)
    except OSError as exc:
        raise TlsSettingError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > PEM_SIZE_BYTES_MAX:
        raise TlsSettingError(f"{option} {path}: larger than {PEM_SIZE_BYTES_MAX} bytes, not a PEM file")
    if f"{label}-----".encode() not in data:
        raise TlsSettingError(f"{option} {path}: holds no PEM {label.lower()}")
    return data
