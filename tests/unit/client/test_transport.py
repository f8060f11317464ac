"""The DI client's transport: TLS verified, and the CA bundle loaded once per client."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from di_archiver.adapters.bounded_http import deadline_transport


def test_the_deadline_transport_builds_one_verifying_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given every default TLS context counted as it is built (each one loads the CA bundle)
    built: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    # When the DI client's transport is made
    transport = deadline_transport()
    # Then one context was built, the pool in use has it, and it verifies certificates and hosts
    assert len(built) == 1
    context = transport._pool._ssl_context  # type: ignore[attr-defined]
    assert context is built[0]
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
