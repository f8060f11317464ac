"""Checkpoints in SSM Parameter Store: one String parameter per organisation.

The document is small JSON (well under the 4 KB standard tier) and not secret, so a plain
String parameter (no KMS, no advanced-tier cost) is the right type.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from di_archiver.adapters.s3_store import aws_client, error_code
from di_archiver.errors import CheckpointError, SettingsError
from di_archiver.layout import validate_org_id

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class SsmCheckpointStore:
    """A :class:`~di_archiver.domain.ports.CheckpointStore` at ``{prefix}/{org_id}``."""

    def __init__(
        self,
        parameter_prefix: str,
        *,
        ssm_client: SSMClient | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        prefix = parameter_prefix.rstrip("/")
        if not prefix.startswith("/") or "//" in prefix:
            raise SettingsError(
                f"checkpoint parameter prefix must be an SSM path like /di-archiver/checkpoints; "
                f"got {parameter_prefix!r}"
            )
        self.prefix = prefix
        self._client = ssm_client
        self._client_lock = threading.Lock()
        self._endpoint_url = endpoint_url

    def __repr__(self) -> str:
        return f"SsmCheckpointStore(prefix={self.prefix!r})"

    @property
    def client(self) -> SSMClient:
        if self._client is None:
            # Several orgs' workers may ask first at once: one client, not one each.
            with self._client_lock:
                if self._client is None:
                    self._client = aws_client("ssm", endpoint_url=self._endpoint_url)
        return self._client

    def parameter_name(self, org_id: str) -> str:
        """The SSM parameter holding ``org_id``'s checkpoint."""
        return f"{self.prefix}/{validate_org_id(org_id)}"

    def load(self, org_id: str) -> Mapping[str, Any] | None:
        """The stored document, or ``None`` when the parameter does not exist."""
        name = self.parameter_name(org_id)
        try:
            response = self.client.get_parameter(Name=name)
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise CheckpointError(f"cannot read checkpoint {name}: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise CheckpointError(f"cannot read checkpoint {name}: {error_code(exc)}") from exc
        raw = response.get("Parameter", {}).get("Value", "")
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise CheckpointError(
                f"checkpoint {name} is not valid JSON; fix or delete the parameter (deleting it "
                "backfills the org again, which is safe)"
            ) from exc
        if not isinstance(document, dict):
            raise CheckpointError(f"checkpoint {name} must hold a JSON object")
        return document

    def save(self, org_id: str, document: Mapping[str, Any]) -> None:
        """Overwrite the org's parameter with ``document`` as compact, key-sorted JSON."""
        name = self.parameter_name(org_id)
        value = json.dumps(dict(document), sort_keys=True, separators=(",", ":"))
        try:
            self.client.put_parameter(
                Name=name,
                Value=value,
                Type="String",
                Overwrite=True,
                Description="di-archiver checkpoint (end of the newest closed bucket)",
            )
        except (ClientError, BotoCoreError) as exc:
            raise CheckpointError(f"cannot write checkpoint {name}: {error_code(exc)}") from exc
