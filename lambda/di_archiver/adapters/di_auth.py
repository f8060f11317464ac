"""JumpCloud credentials (API key or OAuth service account) and the access-token cache.

Secret values never reach a ``repr``, ``str``, log line or exception message: the classes
redact them and every error names the missing *field*, never its value.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from di_archiver.errors import SecretError
from di_archiver.redaction import REDACTED, display_secret_id, register
from di_archiver.settings import AuthKind

DEFAULT_RENEW_MARGIN_SECONDS = 60.0
# Used when the token endpoint omits ``expires_in``: short enough to be safe, long enough to cache.
FALLBACK_TOKEN_TTL_SECONDS = 300.0


def header_safe(value: str) -> bool:
    """Printable ASCII without surrounding whitespace: what an HTTP header may carry verbatim.

    httpx rejects anything else with an error that quotes the value, i.e. the secret.
    """
    return bool(value) and value == value.strip() and all(" " <= char <= "~" for char in value)


def _check_fields(where: str, fields: Mapping[str, str]) -> None:
    for name, value in fields.items():
        if not header_safe(value):
            # ``from None`` and the field name only: the value is the secret.
            raise SecretError(
                f"{where} field {name!r} must be printable ASCII without control characters "
                "or surrounding whitespace; copy the credential again"
            ) from None


@dataclass(frozen=True, slots=True)
class ApiKeyCredentials:
    """An administrator API key, sent as ``x-api-key``."""

    api_key: str = field(repr=False)
    source: str | None = None  # where it came from (a secret id), safe to show in messages

    def __post_init__(self) -> None:
        register(self.api_key)
        _check_fields("the API key credential", {"api_key": self.api_key})

    def __repr__(self) -> str:
        return f"ApiKeyCredentials(api_key={REDACTED}, source={self.source!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ServiceAccountCredentials:
    """An OAuth2 service account (client credentials grant); the token goes in ``Bearer``."""

    client_id: str
    client_secret: str = field(repr=False)
    source: str | None = None

    def __post_init__(self) -> None:
        register(self.client_secret, f"{self.client_id}:{self.client_secret}")
        _check_fields(
            "the service-account credential",
            {"client_id": self.client_id, "client_secret": self.client_secret},
        )

    def __repr__(self) -> str:
        return (
            f"ServiceAccountCredentials(client_id={self.client_id!r}, "
            f"client_secret={REDACTED}, source={self.source!r})"
        )

    __str__ = __repr__


Credentials = ApiKeyCredentials | ServiceAccountCredentials

_FIELDS: dict[AuthKind, tuple[str, ...]] = {
    AuthKind.API_KEY: ("api_key",),
    AuthKind.SERVICE_ACCOUNT: ("client_id", "client_secret"),
}


_KNOWN_FIELDS = frozenset(name for names in _FIELDS.values() for name in names)


# Fields whose values are not secret and name things an operator must read in messages.
_PUBLIC_FIELDS = frozenset({"client_id", "org_id", "org_ids", "region", "auth_kind", "note"})


def register_secret_document(document: Mapping[Any, Any]) -> None:
    """Register every value of a credential secret but the public ones (ids, notes), and any
    field name that could itself be a credential (a key pasted as the name), before anything
    about it can be printed."""
    values = [
        v.strip() for k, v in document.items() if isinstance(v, str) and k not in _PUBLIC_FIELDS
    ]
    names = [
        k
        for k in document
        if isinstance(k, str) and k not in _KNOWN_FIELDS and len(k) >= 16 and k.split() == [k]
    ]
    register(*values, *names)


def credentials_from_secret(
    secret: Mapping[str, Any] | str, auth_kind: AuthKind | str, *, source: str | None = None
) -> Credentials:
    """Credentials from a secret: ``{"api_key"}`` or ``{"client_id", "client_secret"}`` JSON.

    Raises SecretError naming the missing or malformed field, never a value.
    """
    kind = AuthKind(auth_kind)
    # The id is shown in later messages too; an operator may have pasted the key there.
    source = display_secret_id(source) if source else None
    where = f"secret {source}" if source else "the credential secret"
    if isinstance(secret, str):
        try:
            parsed = json.loads(secret)
        except ValueError:
            # ``from None``: the decode error object keeps the whole secret text in ``.doc``.
            raise SecretError(
                f'{where} is not JSON; store an object such as {{"{_FIELDS[kind][0]}": "..."}}'
            ) from None
    else:
        parsed = secret
    if not isinstance(parsed, Mapping):
        raise SecretError(f"{where} must be a JSON object with {', '.join(_FIELDS[kind])}")
    register_secret_document(parsed)
    values: dict[str, str] = {}
    for name in _FIELDS[kind]:
        value = parsed.get(name)
        if value is None:
            other = next(k for k in AuthKind if k is not kind)
            hint = ""
            if all(parsed.get(f) for f in _FIELDS[other]):
                hint = f" (it holds {other} fields: set auth_kind={other.value})"
            raise SecretError(f"{where} has no field {name!r} needed for {kind.value}{hint}")
        if not isinstance(value, str) or not value.strip():
            raise SecretError(f"{where} field {name!r} must be a non-empty string")
        values[name] = value.strip()
    _check_fields(where, values)
    if kind is AuthKind.API_KEY:
        return ApiKeyCredentials(api_key=values["api_key"], source=source)
    return ServiceAccountCredentials(
        client_id=values["client_id"], client_secret=values["client_secret"], source=source
    )


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str = field(repr=False)
    expires_in: float | None


class TokenCache:
    """Caches one OAuth access token; renews it shortly before expiry or on demand.

    ``fetch`` performs the token request (the client supplies it, with its retries);
    ``monotonic`` is the clock expiry is measured on.
    """

    def __init__(
        self,
        fetch: Callable[[], AccessToken],
        *,
        monotonic: Callable[[], float],
        renew_margin: float = DEFAULT_RENEW_MARGIN_SECONDS,
    ) -> None:
        self._fetch = fetch
        self._monotonic = monotonic
        self._renew_margin = renew_margin
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()  # the prefetch thread and the caller may both ask
        self.issued = 0

    def __repr__(self) -> str:
        return f"TokenCache(issued={self.issued})"

    def get(self) -> str:
        """A token valid for at least ``renew_margin`` more seconds (fetched when needed)."""
        with self._lock:
            if self._token is None or self._monotonic() >= self._renew_at:
                self._refresh()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given)."""
        with self._lock:
            if token is None or token == self._token:
                self._token = None

    def _refresh(self) -> None:
        fetched_at = self._monotonic()
        token = self._fetch()
        register(token.value)
        ttl = token.expires_in if token.expires_in is not None else FALLBACK_TOKEN_TTL_SECONDS
        # A token shorter-lived than the margin would be renewed on every request otherwise.
        margin = min(self._renew_margin, ttl / 2)
        self._token = token.value
        self._renew_at = fetched_at + ttl - margin
        self.issued += 1
