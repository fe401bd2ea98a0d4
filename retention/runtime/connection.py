"""Where and how every process reaches Temporal (docs/deployment.md, "Connecting to Temporal").

Through Temporal's own environment configuration: the `TEMPORAL_*` variables, over the profiles
of `temporal.toml` (`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`), which the `temporal` CLI reads
too, so one profile serves both. `RETENTION_TEMPORAL_ADDRESS` and `RETENTION_TEMPORAL_NAMESPACE`,
when set, win over it; an address given on the command line wins over both. TLS, client
certificates and the API key come only from Temporal's configuration. The namespace so resolved
is also the one every Temporal UI link names (`temporal_namespace`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS
from temporalio.service import TLSConfig

from retention.errors import InvalidInput
from retention.runtime.settings import Settings

# The setting that names each file of a TLS profile, for errors a reader can act on.
_TLS_FILES = {
    "server_root_ca_cert": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "client_cert": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "client_private_key": "TEMPORAL_TLS_CLIENT_KEY_PATH",
}


@dataclass(frozen=True)
class TemporalTarget:
    """The server, namespace and credentials one process connects with."""

    address: str
    namespace: str
    tls: bool | TLSConfig = False
    api_key: str | None = field(default=None, repr=False)
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """For logs: where and how, never a secret."""
        how = "plain text"
        if isinstance(self.tls, TLSConfig):
            how = "mutual TLS" if self.tls.client_cert else "TLS"
        elif self.tls:
            how = "TLS"
        key = ", API key" if self.api_key else ""
        return f"{self.address} (namespace {self.namespace}, {how}{key})"


def temporal_target(settings: Settings, address: str | None = None) -> TemporalTarget:
    profile = _profile()
    return TemporalTarget(
        address=address
        or _when_set(settings, "temporal_address")
        or profile.address
        or settings.temporal_address,
        namespace=_namespace(settings, profile),
        tls=_tls(profile),
        api_key=profile.api_key,
        rpc_metadata=dict(profile.grpc_meta),
    )


def temporal_namespace(settings: Settings) -> str:
    """The namespace every process connects to, by the precedence above: the one a Temporal UI
    link must name to open where the journeys are."""
    return _namespace(settings, _profile())


def _namespace(settings: Settings, profile: ClientConfigProfile) -> str:
    chosen = _when_set(settings, "temporal_namespace")
    return chosen or profile.namespace or settings.temporal_namespace


def _when_set(settings: Settings, name: str) -> str | None:
    """A RETENTION_ setting only when it was given: its default must not hide Temporal's."""
    return str(getattr(settings, name)) if name in settings.model_fields_set else None


def _profile() -> ClientConfigProfile:
    try:
        return ClientConfigProfile.load()
    except Exception as exc:  # the SDK's core raises a bare RuntimeError for a bad file or value
        raise InvalidInput(
            f"Temporal configuration (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE / TEMPORAL_*): {exc}"
        ) from exc


def _tls(profile: ClientConfigProfile) -> bool | TLSConfig:
    """An API key alone means TLS with the system's CAs, as Temporal Cloud expects."""
    if profile.tls is None:
        return profile.api_key is not None
    for attribute, setting in _TLS_FILES.items():
        _check_readable(profile.tls, attribute, setting)
    if not profile.tls.disabled:
        _check_pair(profile.tls)
    return profile.tls.to_connect_tls_config()


_CERT = "TEMPORAL_TLS_CLIENT_CERT_PATH (or _DATA)"
_KEY = "TEMPORAL_TLS_CLIENT_KEY_PATH (or _DATA)"


def _check_pair(tls: ClientConfigTLS) -> None:
    """Mutual TLS sends a certificate with its key: one without the other is a setting missed."""
    if (tls.client_cert is None) == (tls.client_private_key is None):
        return
    given, missing = (_CERT, _KEY) if tls.client_private_key is None else (_KEY, _CERT)
    raise InvalidInput(
        f"{given} is set without {missing}: set both, to a client certificate and its own key, "
        "or neither"
    )


def _check_readable(tls: ClientConfigTLS, attribute: str, setting: str) -> None:
    source = getattr(tls, attribute)
    if isinstance(source, Path) and not source.is_file():
        raise InvalidInput(f"{setting}: no file at {source}")


# Pieces of the SDK core's connection errors, each with the setting that fixes it.
_CAUSES: list[tuple[tuple[str, ...], str]] = [
    (
        ("UnknownIssuer", "unknown ca", "certificate verify failed", "BadSignature"),
        "the server's certificate is not signed by a CA this process trusts: set "
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA that signed it",
    ),
    (
        ("NotValidForName", "hostname mismatch"),
        "the server's certificate does not name this address: set TEMPORAL_TLS_SERVER_NAME to a "
        "name it holds",
    ),
    (
        # a TLS alert from the server, or a TLS-terminating proxy's 400 (nginx)
        ("CertificateRequired", "BadCertificate", "UnknownCA", "400 Bad Request"),
        f"the server wants a client certificate its CA signed: set {_CERT} and {_KEY} to such "
        "a pair",
    ),
    (
        # this process's own pair, which it checks before it connects
        ("InconsistentKeys", "KeyMismatch"),
        f"the client key is not the certificate's own: set {_CERT} and {_KEY} to one pair",
    ),
    (
        ("PrivateKeyParseError",),
        f"no private key could be read from {_KEY}: set it to the client certificate's key "
        f"(PEM), beside {_CERT}",
    ),
    (
        ("NoCertificatesPresented",),
        f"no certificate could be read from {_CERT}: set it to the client certificate (PEM), "
        f"beside {_KEY}",
    ),
    (
        ("Unauthenticated", "PermissionDenied"),
        "the server refused the credentials: check TEMPORAL_API_KEY",
    ),
    (
        ("InvalidContentType", "CorruptMessage", "wrong version number", "InvalidMessage"),
        "the server does not speak TLS there: unset TEMPORAL_TLS (and the TLS paths) or fix "
        "TEMPORAL_ADDRESS",
    ),
    (
        ("h2 protocol error", "FRAME_SIZE_ERROR", "BrokenPipe"),
        "the server expects TLS there: set TEMPORAL_TLS=true (with "
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH for a private CA)",
    ),
]


def refusal(target: TemporalTarget, error: str) -> str:
    """One line naming the setting to fix, for a connection that failed with `error`."""
    for pieces, why in _CAUSES:
        if any(piece.lower() in error.lower() for piece in pieces):
            return f"Temporal at {target.describe()}: {why}"
    # A TLS endpoint may also just drop a plain-text client, with no telling error to match.
    tls_hint = "" if target.tls else "; if it speaks TLS there, set TEMPORAL_TLS=true"
    return (
        f"cannot reach the Temporal server at {target.describe()}: start it with `make run`, or "
        "point TEMPORAL_ADDRESS / RETENTION_TEMPORAL_ADDRESS (or --address) at a running one"
        + tls_hint
    )
