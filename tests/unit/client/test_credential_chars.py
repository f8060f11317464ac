"""Credentials that cannot travel in a header are refused by field name, never echoed.

httpx refuses such values with ``LocalProtocolError("Illegal header value b'<value>'")``; kept as
a cause, that message would print the credential in every chained traceback.
"""

from __future__ import annotations

import traceback

import httpx
import pytest

from di_archiver.adapters.di_auth import (
    ApiKeyCredentials,
    ServiceAccountCredentials,
    credentials_from_secret,
)
from di_archiver.errors import DIApiError, DIResponseError, SecretError
from di_archiver.settings import AuthKind

from .fakes import END_NS, ORG, START_NS, TOKEN_URL, make_client

BAD_VALUES = [
    "jcak-LEAK-1\nX-Injected: yes",
    "jcak-LEAK-2\rX",
    "jcak-\x00LEAK-3",
    "jcak-LEAK-4\x7f",
    "jcak-\tLEAK-5",
    "jcak-LEAK-6-caf\u00e9",
]


def all_text(exc: BaseException) -> str:
    """Everything a log handler could print about ``exc``, chained causes included."""
    return "\n".join(
        [str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)],
    )


def assert_hidden(exc: BaseException, value: str) -> None:
    text = all_text(exc)
    assert value not in text
    assert value.strip() not in text
    assert "LEAK" not in text


@pytest.mark.parametrize("value", BAD_VALUES)
def test_an_api_key_with_illegal_characters_is_refused_naming_only_the_field(value: str) -> None:
    # Given a secret whose api_key holds a character no HTTP header may carry
    # When credentials are read from it
    with pytest.raises(SecretError) as caught:
        credentials_from_secret({"api_key": value}, AuthKind.API_KEY, source="di/jc")
    # Then the error names the secret and the field, and no text about it shows the value
    assert "secret di/jc field 'api_key'" in str(caught.value)
    assert caught.value.__cause__ is None
    assert_hidden(caught.value, value)


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_a_service_account_field_with_a_newline_is_refused(field: str) -> None:
    # Given a service-account secret with a newline inside one field
    secret = {"client_id": "sa-id", "client_secret": "sa-secret"}
    secret[field] = "sa-LEAK\nvalue"
    # When credentials are read: then the field is named and the value never shown
    with pytest.raises(SecretError, match=f"field '{field}'") as caught:
        credentials_from_secret(secret, AuthKind.SERVICE_ACCOUNT)
    assert_hidden(caught.value, secret[field])


def test_surrounding_whitespace_in_a_secret_is_still_trimmed() -> None:
    # Given an api key pasted with a trailing newline (the common copy-paste slip)
    creds = credentials_from_secret({"api_key": " jcak-ok-123\n"}, AuthKind.API_KEY)
    # Then it is accepted, trimmed
    assert isinstance(creds, ApiKeyCredentials)
    assert creds.api_key == "jcak-ok-123"


@pytest.mark.parametrize("value", [*BAD_VALUES, " jcak-LEAK-padded", "jcak-LEAK-padded "])
def test_the_credential_constructors_validate_too(value: str) -> None:
    # When credentials are built directly with an illegal value: then SecretError, value hidden
    with pytest.raises(SecretError, match="field 'api_key'") as caught:
        ApiKeyCredentials(api_key=value)
    assert_hidden(caught.value, value)
    with pytest.raises(SecretError, match="field 'client_secret'") as caught:
        ServiceAccountCredentials(client_id="sa-id", client_secret=value)
    assert_hidden(caught.value, value)


def test_an_unsendable_header_never_chains_the_library_error_that_quotes_it() -> None:
    # Given a transport refusing the header the way h11 does, quoting the value it refused
    key = "jcak-LEAK-late"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'{request.headers['x-api-key']}'")

    client = make_client(refuse, credentials=ApiKeyCredentials(api_key=key))
    # When a request is attempted
    with pytest.raises(DIApiError, match="cannot be sent") as caught:
        list(client.iter_pages(ORG, START_NS, END_NS))
    # Then httpx's error is not kept as the cause, so no traceback prints the key
    assert caught.value.__cause__ is None
    assert_hidden(caught.value, key)


def test_an_access_token_that_cannot_be_a_header_is_a_response_error_without_the_token() -> None:
    # Given a token endpoint answering a token with a newline in it
    token = "tok-LEAK\nX-Evil: 1"

    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == TOKEN_URL
        return httpx.Response(200, json={"access_token": token, "expires_in": 3600})

    creds = ServiceAccountCredentials(client_id="sa-id", client_secret="sa-secret-ok")
    client = make_client(handler, credentials=creds)
    # When a page is requested: then DIResponseError explains, and the token is never shown
    with pytest.raises(DIResponseError, match="not printable ASCII") as caught:
        list(client.iter_pages(ORG, START_NS, END_NS))
    assert_hidden(caught.value, token)
