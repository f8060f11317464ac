"""Finding 2 in a fresh interpreter, where nothing has switched the scrub on yet (in the test
worker an earlier test may have, which would hide a path that never does): the CLI with the
key in the environment and ``-v``, and the Lambda's Powertools log lines with ``extra`` fields
and chained tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from .hostile_server import Seen, hostile_server
from .test_secret_leaks import KEY, ORG, assert_nowhere, encodings

REPO = Path(__file__).resolve().parents[2]


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    child = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return child.returncode, child.stdout, child.stderr


def echo_in_status_line(seen: Seen, handler: BaseHTTPRequestHandler) -> None:
    # The key in the HTTP reason phrase (httpx logs it at INFO) and in the body.
    body = json.dumps({"message": " ".join(encodings(KEY))}).encode()
    handler.send_response(400, f"Bad key {KEY}")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_a_verbose_cli_run_with_the_key_in_the_environment_leaks_it_nowhere(
    tmp_path: Path,
) -> None:
    # Given a DI that echoes the key in its status line and body, and the key in the environment
    archive = tmp_path / "archive"
    with hostile_server(echo_in_status_line) as server:
        # When a fresh CLI process runs a pass with -v
        code, out, err = run_child(
            "import sys; from di_archiver.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            "--org-id",
            ORG,
            "--archive",
            str(archive),
            "--base-url",
            server.url,
            "--lookback-days",
            "1",
            "-v",
            env={"JUMPCLOUD_API_KEY": KEY},
        )
    # Then the run failed and said so, with the library's request lines shown
    assert code == 3, err
    assert "HTTP 400" in out + err
    assert "HTTP Request" in err
    # And the key is in no output and no file, in any spelling
    assert_nowhere(KEY, out, err, files=tmp_path)


LAMBDA_LOGGING = """
import sys
from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.telemetry import powertools

key = sys.argv[1]
ApiKeyCredentials(api_key=key)  # loading the credential registers it, as a real run does
logger = powertools()[0]
logger.warning("retrying", extra={"reason": f"server said {key}", "nested": {"echo": key}})
try:
    try:
        raise ValueError(f"header line x-api-key: {key}")
    except ValueError as inner:
        raise RuntimeError("request failed") from inner
except RuntimeError:
    logger.exception("run failed unexpectedly")
"""


def test_lambda_log_lines_scrub_extra_fields_and_chained_tracebacks() -> None:
    # Given the Lambda's Powertools logger in a fresh process with the credential loaded
    # When a warning carries the key in extra fields and an exception chain quotes it
    code, out, err = run_child(
        LAMBDA_LOGGING, KEY, env={"AWS_LAMBDA_FUNCTION_NAME": "di-archiver-test"}
    )
    # Then both lines were written, as JSON, and the key is in neither, in any spelling
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [line["message"] for line in lines] == ["retrying", "run failed unexpectedly"]
    assert "ValueError" in lines[1]["exception"]
    assert_nowhere(KEY, out, err)


def test_a_key_from_the_environment_given_again_as_an_argument_is_not_echoed(
    tmp_path: Path,
) -> None:
    # Given the key in the environment, and pasted by mistake as --org-id too
    # When a fresh CLI process rejects the arguments (before any request is made)
    code, out, err = run_child(
        "import sys; from di_archiver.cli import main; sys.exit(main(sys.argv[1:]))",
        "run",
        "--org-id",
        KEY,
        "--archive",
        str(tmp_path / "archive"),
        "--base-url",
        "http://127.0.0.1:9",
        env={"JUMPCLOUD_API_KEY": KEY},
    )
    # Then it is a usage error about --org-id that does not repeat the key
    assert code == 2, err
    assert "--org-id" in err
    assert_nowhere(KEY, out, err, files=tmp_path)
