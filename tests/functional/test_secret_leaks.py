"""Finding 2 end to end: with every logger at DEBUG, a run whose credential comes from Secrets
Manager (moto) and is echoed back by a hostile DI in every spelling prints it nowhere: not on
stdout or stderr, not in a log line, not in an exception, not in any file written."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
from moto import mock_aws

from di_archiver import cli
from di_archiver.adapters.secrets import SecretProvider
from di_archiver.errors import SecretError

from .hostile_server import Seen, hostile_server, reply

ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"
KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"  # shaped like a JumpCloud key


def encodings(secret: str) -> list[str]:
    return [
        secret,
        json.dumps(secret)[1:-1],
        "".join(f"\\u{ord(c):04x}" for c in secret),
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"x:{secret}".encode()).decode(),
        secret[:20],  # a long piece of it counts as a leak too
    ]


@contextmanager
def debug_log() -> Iterator[io.StringIO]:
    """Every logger at DEBUG into one buffer (what an operator debugging a run would see)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def assert_nowhere(secret: str, *texts: str, files: Path | None = None) -> None:
    corpus = list(texts)
    if files is not None:
        corpus += [p.read_bytes().decode("latin-1") for p in files.rglob("*") if p.is_file()]
    for form in encodings(secret):
        for text in corpus:
            assert form not in text, f"credential spelling {form[:6]}... leaked"


def echo(seen: Seen, handler: BaseHTTPRequestHandler) -> None:
    message = " ".join(encodings(KEY)) + " \x1b[2J"
    reply(handler, 400, json.dumps({"message": message}).encode(), {"X-Request-Id": KEY})


def test_a_full_cli_run_leaks_the_credential_nowhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the key in Secrets Manager and a DI that echoes it back in every spelling
    with mock_aws(), hostile_server(echo) as server:
        boto3.client("secretsmanager").create_secret(
            Name="di/jumpcloud", SecretString=json.dumps({"api_key": KEY})
        )
        # When the CLI runs a pass with every logger at DEBUG
        # (the CLI sets the package logger's level; restore it for the tests that follow)
        package = logging.getLogger("di_archiver")
        level = package.level
        with debug_log() as log:
            package.setLevel(logging.DEBUG)
            code = cli.main(
                [
                    "run",
                    "--org-id",
                    ORG,
                    "--archive",
                    str(tmp_path / "archive"),
                    "--base-url",
                    server.url,
                    "--secret-id",
                    "di/jumpcloud",
                    "--lookback-days",
                    "1",
                ]
            )
    package.setLevel(level)
    out, err = capsys.readouterr()
    # Then the run failed and said so
    assert code != 0
    assert "HTTP 400" in out + err
    # And the key appears in no output, log line or file, in any spelling
    assert "GetSecretValue" in log.getvalue()
    assert_nowhere(KEY, out, err, log.getvalue(), files=tmp_path)


def test_a_secret_id_that_is_the_key_itself_is_not_printed() -> None:
    # Given an operator who pasted the key where the secret's name belongs
    with mock_aws(), debug_log() as log:
        provider = SecretProvider(KEY)
        # When it is read / Then the error does not show the id
        with pytest.raises(SecretError) as caught:
            provider.get()
    assert_nowhere(KEY, str(caught.value), repr(provider))
    # (botocore's own request log names the id it asks for; what di-archiver prints does not)
    assert "not shown" in str(caught.value)
    del log


def test_a_key_used_as_a_field_name_is_not_printed() -> None:
    # Given a secret whose JSON uses the key as its field name
    with mock_aws():
        boto3.client("secretsmanager").create_secret(
            Name="di/jumpcloud", SecretString=json.dumps({KEY: "api key"})
        )
        with debug_log() as log, pytest.raises(SecretError, match="none of the fields") as caught:
            SecretProvider("di/jumpcloud").get()
    assert_nowhere(KEY, str(caught.value), log.getvalue())
