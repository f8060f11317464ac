"""Where the JumpCloud credential comes from: Secrets Manager (Lambda) or the environment (CLI).

Both return the same JSON-object shape (``{"api_key": ...}`` or ``{"client_id": ...,
"client_secret": ...}``), which ``credentials_from_secret`` turns into credentials. Every error
names the secret or variable and what is wrong with it, never its value.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from di_archiver.adapters.di_auth import register_secret_document
from di_archiver.adapters.s3_store import aws_client, error_code
from di_archiver.errors import SecretError
from di_archiver.redaction import display_secret_id, install_log_redaction, register

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

API_KEY_ENV = "JUMPCLOUD_API_KEY"
CLIENT_ID_ENV = "JUMPCLOUD_CLIENT_ID"
CLIENT_SECRET_ENV = "JUMPCLOUD_CLIENT_SECRET"  # noqa: S105 (a variable name, not a secret)
SECRET_KEYS = frozenset({"api_key", "client_id", "client_secret"})


def _check_shape(document: Any, *, source: str) -> dict[str, str]:
    if not isinstance(document, dict) or not document:
        raise SecretError(
            f'{source} must be a JSON object such as {{"api_key": "..."}} or '
            '{"client_id": "...", "client_secret": "..."}'
        )
    register_secret_document(document)
    # Field names are shown only when they are ours: an operator may have pasted the key itself
    # as a field name.
    bad = [k for k in sorted(SECRET_KEYS) if k in document and not _non_empty(document[k])]
    others = sum(1 for k, v in document.items() if k not in SECRET_KEYS and not _non_empty(v))
    if bad or others:
        named = f"field(s) {bad}" if bad else ""
        unnamed = f"{others} other field(s)" if others else ""
        raise SecretError(
            f"{source}: {' and '.join(p for p in (named, unnamed) if p)} must be non-empty strings"
        )
    if not SECRET_KEYS & document.keys():
        raise SecretError(
            f"{source} has none of the fields {sorted(SECRET_KEYS)} (it has {len(document)} "
            "other field(s), not shown in case one is the credential itself)"
        )
    return {str(k): str(v) for k, v in document.items()}


def _non_empty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


class SecretProvider:
    """Reads the credential secret from Secrets Manager, cached for ``max_age`` seconds.

    One GetSecretValue call and a timestamp: Powertools' parameters utility did the same, but
    importing it (and, through it, boto3's DynamoDB helpers) cost the first invocation CPU.
    """

    def __init__(
        self,
        secret_id: str,
        *,
        max_age: int = 300,
        client: SecretsManagerClient | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not secret_id:
            raise SecretError("no secret id given")
        self.secret_id = secret_id
        self.max_age = max_age
        self._client = client
        self._endpoint_url = endpoint_url
        self._cached: tuple[float, str | bytes] | None = None  # (monotonic time read, value)

    def __repr__(self) -> str:
        shown = display_secret_id(self.secret_id)
        return f"SecretProvider(secret_id={shown!r}, max_age={self.max_age})"

    def _secrets_manager(self) -> SecretsManagerClient:
        # botocore logs every response body at DEBUG, GetSecretValue's included.
        install_log_redaction()
        if self._client is None:
            self._client = aws_client("secretsmanager", endpoint_url=self._endpoint_url)
        return self._client

    def _read(self, *, force_fetch: bool) -> str | bytes:
        now = time.monotonic()
        if not force_fetch and self._cached is not None and now - self._cached[0] < self.max_age:
            return self._cached[1]
        client = self._secrets_manager()
        source = f"secret {display_secret_id(self.secret_id)}"
        try:
            answer = client.get_secret_value(SecretId=self.secret_id)
        except Exception as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else "unreadable"
            raise SecretError(f"cannot read {source}: {code}") from exc
        raw: str | bytes = (
            answer["SecretString"] if "SecretString" in answer else answer["SecretBinary"]
        )
        self._cached = (now, raw)
        return raw

    def get(self, *, force_fetch: bool = False) -> dict[str, str]:
        """The secret's JSON object; a :class:`SecretError` if it is missing or malformed."""
        source = f"secret {display_secret_id(self.secret_id)}"
        raw: Any = self._read(force_fetch=force_fetch)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        if not isinstance(raw, str) or not raw.strip():
            raise SecretError(f"{source} is empty; store the credential as a JSON object")
        try:
            document = json.loads(raw)
        except ValueError:
            register(raw.strip())  # perhaps the bare key: never to be shown
            # ``from None``: the JSONDecodeError keeps the whole secret string in ``.doc``.
            raise SecretError(f"{source} is not valid JSON") from None
        if not isinstance(document, dict):
            register(raw.strip())
        return _check_shape(document, source=source)


def secret_from_env(
    environ: Mapping[str, str] | None = None, *, api_key_env: str | None = None
) -> dict[str, str]:
    """The credential from environment variables (the CLI's alternative to Secrets Manager).

    ``api_key_env`` names the variable holding an API key (default ``JUMPCLOUD_API_KEY``);
    otherwise ``JUMPCLOUD_CLIENT_ID`` and ``JUMPCLOUD_CLIENT_SECRET`` give a service account.
    The value itself is never accepted as an argument, so it stays out of shell history and ps.
    """
    env = os.environ if environ is None else environ
    key_var = api_key_env or API_KEY_ENV
    api_key = env.get(key_var, "").strip()
    client_id = env.get(CLIENT_ID_ENV, "").strip()
    client_secret = env.get(CLIENT_SECRET_ENV, "").strip()
    # Before anything else can print them: settings errors quote the arguments they reject.
    register(api_key, client_secret)
    if api_key_env and not api_key:
        raise SecretError(f"environment variable {api_key_env} is not set or empty")
    if api_key and (client_id or client_secret) and not api_key_env:
        raise SecretError(
            f"both {API_KEY_ENV} and {CLIENT_ID_ENV}/{CLIENT_SECRET_ENV} are set; unset one"
        )
    if api_key:
        return {"api_key": api_key}
    if client_id and client_secret:
        return {"client_id": client_id, "client_secret": client_secret}
    if client_id or client_secret:
        raise SecretError(f"set both {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}")
    raise SecretError(
        f"no JumpCloud credential: set {API_KEY_ENV} (or {CLIENT_ID_ENV} and "
        f"{CLIENT_SECRET_ENV}), or pass --secret-id"
    )
