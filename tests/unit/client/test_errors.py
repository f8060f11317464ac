"""Permanent API errors: the right class, a message that says what to fix, and no secret."""

from __future__ import annotations

import logging

import httpx
import pytest

from di_archiver.errors import (
    ArchiverError,
    DIApiError,
    DIAuthenticationError,
    DIBadRequestError,
    DIForbiddenError,
    DIPaymentRequiredError,
    DITransientError,
)

from .fakes import API_KEY, END_NS, ORG, START_NS, Scripted, make_client


def assert_secret_free(exc: BaseException, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    texts = [caplog.text]
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    for secret in secrets:
        assert all(secret not in text for text in texts)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (
            401,
            DIAuthenticationError,
            "the API key was rejected (HTTP 401): check that secret "
            "di/jumpcloud holds a current JumpCloud administrator API key, or rotate it",
        ),
        (
            402,
            DIPaymentRequiredError,
            f"Directory Insights is not enabled for org {ORG} (HTTP 402)",
        ),
        (403, DIForbiddenError, "the key's administrator lacks an API-capable role (HTTP 403)"),
    ],
)
def test_auth_statuses_say_what_to_fix_without_the_key(
    status: int, error: type[DIApiError], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a DI that refuses the key (and, carelessly, echoes it back)
    caplog.set_level(logging.DEBUG)
    response = httpx.Response(
        status, json={"message": f"bad key {API_KEY}"}, headers={"X-Request-Id": "rid-7"}
    )
    client = make_client(Scripted([response]))
    # When read
    with pytest.raises(error) as info:
        list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the message names the problem, the fix and the request id
    assert str(info.value).startswith(expected)
    assert "rid-7" in str(info.value)
    assert info.value.status == status
    assert isinstance(info.value, ArchiverError)
    # And the key appears nowhere: message, repr, cause chain, logs, client repr
    assert_secret_free(info.value, caplog, API_KEY)
    assert API_KEY not in repr(client)


def test_bad_request_carries_the_api_message_scrubbed_of_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a 400 with the API's message (which happens to contain the key)
    message = f"Start Time not after End Time 2026-01-26T09:13:52Z > 2026-01-26T09:11:52Z {API_KEY}"
    client = make_client(Scripted([httpx.Response(400, json={"message": message})]))
    # When read
    with pytest.raises(DIBadRequestError) as info:
        list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the API's words are kept and the key is masked
    assert "Start Time not after End Time 2026-01-26T09:13:52Z" in str(info.value)
    assert "***" in str(info.value)
    assert_secret_free(info.value, caplog, API_KEY)


def test_unexpected_status_is_a_plain_api_error() -> None:
    # Given a 404 with a text body / When read / Then DIApiError with the status
    client = make_client(Scripted([httpx.Response(404, text="no such route")]))
    with pytest.raises(DIApiError, match="HTTP 404: no such route") as info:
        list(client.iter_pages(ORG, START_NS, END_NS))
    assert info.value.status == 404


def test_retry_logs_and_final_error_never_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    # Given transient failures that exhaust every attempt
    caplog.set_level(logging.DEBUG)
    request = httpx.Request("POST", "https://di.test/", headers={"x-api-key": API_KEY})
    di = Scripted([httpx.Response(429), httpx.ReadError("reset", request=request)] * 2)
    # When read
    with pytest.raises(DITransientError) as info:
        list(make_client(di).iter_pages(ORG, START_NS, END_NS))
    # Then retries were logged, and neither the logs nor the error contain the key
    assert "retrying" in caplog.text
    assert_secret_free(info.value, caplog, API_KEY)


def test_start_after_end_is_refused_before_any_request() -> None:
    # Given a reversed window / When read / Then a DIBadRequestError without a request
    di = Scripted([])
    with pytest.raises(DIBadRequestError, match="is after end"):
        make_client(di).iter_pages(ORG, END_NS, START_NS)
    assert di.requests == []
