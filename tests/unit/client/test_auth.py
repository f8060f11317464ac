"""Credentials from secrets, and the service-account token: request, cache, renewal, refusal."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qs

import httpx
import pytest

from di_archiver.adapters.di_auth import (
    ApiKeyCredentials,
    ServiceAccountCredentials,
    credentials_from_secret,
)
from di_archiver.errors import DIAuthenticationError, SecretError, SettingsError
from di_archiver.settings import AuthKind

from .fakes import (
    API_KEY,
    END_NS,
    ORG,
    START_NS,
    TOKEN_URL,
    PagingDI,
    Sleeps,
    make_client,
    make_events,
)
from .test_errors import assert_secret_free

CLIENT_ID = "sa-client-1"
CLIENT_SECRET = "sa-SECRET-do-not-print-42"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class OAuthDI:
    """A token endpoint plus a paging DI that accepts only tokens it issued and not revoked."""

    def __init__(self, events: list[dict], *, ttl: int = 3600, max_limit: int = 10) -> None:
        self.paging = PagingDI(events, max_limit=max_limit)
        self.ttl = ttl
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.token_requests: list[httpx.Request] = []
        self.token_status = 200
        self.on_api_request = lambda: None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            if self.token_status != 200:
                return httpx.Response(self.token_status, json={"error": "invalid_client"})
            token = f"tok-{len(self.issued) + 1}"
            self.issued.append(token)
            return httpx.Response(
                200, json={"access_token": token, "expires_in": self.ttl, "token_type": "bearer"}
            )
        self.on_api_request()
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if token not in self.issued or token in self.revoked:
            return httpx.Response(401, json={"message": "Unauthorized"})
        return self.paging(request)


def sa_credentials() -> ServiceAccountCredentials:
    return ServiceAccountCredentials(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, source="di/sa"
    )


# -- credentials_from_secret -----------------------------------------------------------------


def test_api_key_secret_from_json_text() -> None:
    # Given the documented JSON shape (with stray whitespace) / Then an API key credential
    creds = credentials_from_secret(f'{{"api_key": " {API_KEY}\\n"}}', AuthKind.API_KEY)
    assert creds == ApiKeyCredentials(api_key=API_KEY)


def test_service_account_secret_from_a_mapping() -> None:
    # Given a mapping with both fields and an extra one / Then a service-account credential
    secret = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "note": "rotated"}
    creds = credentials_from_secret(secret, "service_account", source="di/sa")
    assert creds == sa_credentials()


@pytest.mark.parametrize(
    ("secret", "kind", "message"),
    [
        ({"client_id": CLIENT_ID}, AuthKind.SERVICE_ACCOUNT, "no field 'client_secret'"),
        ({"apikey": API_KEY}, AuthKind.API_KEY, "no field 'api_key'"),
        ({"api_key": ""}, AuthKind.API_KEY, "field 'api_key' must be a non-empty string"),
        ({"api_key": 12345}, AuthKind.API_KEY, "field 'api_key' must be a non-empty string"),
        (f'["{API_KEY}"]', AuthKind.API_KEY, "must be a JSON object"),
        (f"{API_KEY}", AuthKind.API_KEY, "is not JSON"),
        (f'{{"api_key": "{API_KEY}"', AuthKind.API_KEY, "is not JSON"),
        (
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            AuthKind.API_KEY,
            "set auth_kind=service_account",
        ),
    ],
)
def test_malformed_secret_names_the_field_never_the_value(
    secret: object, kind: AuthKind, message: str
) -> None:
    # Given a secret of the wrong shape / When parsed
    with pytest.raises(SecretError) as info:
        credentials_from_secret(secret, kind, source="di/jumpcloud")  # type: ignore[arg-type]
    # Then the error names the secret and the field, and shows no value
    assert message in str(info.value)
    assert "di/jumpcloud" in str(info.value)
    for value in (API_KEY, CLIENT_SECRET):
        assert value not in str(info.value)
        assert value not in repr(info.value)
    assert info.value.__cause__ is None  # a JSON decode error would carry the secret text


def test_credentials_never_show_their_secret() -> None:
    # Given both kinds / Then repr and str mask the secret but keep what identifies them
    for creds, secret in (
        (ApiKeyCredentials(api_key=API_KEY), API_KEY),
        (sa_credentials(), CLIENT_SECRET),
    ):
        assert secret not in repr(creds)
        assert secret not in str(creds)
        assert "***" in repr(creds)
    assert CLIENT_ID in repr(sa_credentials())


# -- service-account tokens -------------------------------------------------------------------


def test_token_request_and_bearer_use() -> None:
    # Given a service account
    di = OAuthDI(make_events(5))
    client = make_client(di, credentials=sa_credentials())
    # When a window is read
    list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the token was fetched with Basic auth and the client-credentials form
    (token_request,) = di.token_requests
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_request.method == "POST"
    assert token_request.headers["authorization"] == f"Basic {expected}"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["api"],
    }
    # And the API call carried the bearer token with the org header and no API key
    api_request = di.paging.requests[0]
    assert api_request.headers["authorization"] == "Bearer tok-1"
    assert api_request.headers["x-org-id"] == ORG
    assert "x-api-key" not in api_request.headers


def test_token_is_cached_across_pages_and_calls() -> None:
    # Given several pages and a count call within the token's lifetime
    di = OAuthDI(make_events(35))
    client = make_client(di, credentials=sa_credentials(), page_limit=10, monotonic=Clock())
    # When read twice and counted
    list(client.iter_pages(ORG, START_NS, END_NS))
    list(client.iter_pages(ORG, START_NS, END_NS))
    # Then one token served every request
    assert di.issued == ["tok-1"]
    assert client.stats.tokens_issued == 1


def test_token_is_renewed_before_it_expires() -> None:
    # Given a token living 3030 s and a clock that moves 1000 s per API request
    clock = Clock()
    di = OAuthDI(make_events(45), ttl=3030)

    def tick() -> None:
        clock.now += 1000

    di.on_api_request = tick
    client = make_client(di, credentials=sa_credentials(), page_limit=10, monotonic=clock)
    # When five pages are read
    got = [e for p in client.iter_pages(ORG, START_NS, END_NS) for e in p]
    # Then the 4th request (30 s of validity left, under the 60 s margin) used a new token
    assert len(got) == 45
    assert di.issued == ["tok-1", "tok-2"]
    tokens_used = [r.headers["authorization"] for r in di.paging.requests]
    assert tokens_used == ["Bearer tok-1"] * 3 + ["Bearer tok-2"] * 2


def test_short_lived_token_is_not_renewed_on_every_request() -> None:
    # Given a token that lives 30 s (shorter than the 60 s margin) and a still clock
    di = OAuthDI(make_events(35), ttl=30)
    client = make_client(di, credentials=sa_credentials(), page_limit=10, monotonic=Clock())
    # When several pages are read / Then the token is reused (margin shrinks to half the TTL)
    list(client.iter_pages(ORG, START_NS, END_NS))
    assert di.issued == ["tok-1"]


def test_revoked_token_is_renewed_once_on_401() -> None:
    # Given the cached token is revoked after the first page
    di = OAuthDI(make_events(25))
    sleeps = Sleeps()
    client = make_client(
        di, credentials=sa_credentials(), page_limit=10, monotonic=Clock(), sleeps=sleeps
    )
    pages = client.iter_pages(ORG, START_NS, END_NS)
    first = next(pages)
    di.revoked.add("tok-1")
    # When reading on
    rest = [e for p in pages for e in p]
    # Then a new token is fetched at once (no back-off) and all events arrive
    assert len(first) + len(rest) == 25
    assert di.issued == ["tok-1", "tok-2"]
    assert sleeps == []


def test_persistent_401_fails_after_one_renewal(caplog: pytest.LogCaptureFixture) -> None:
    # Given every token is refused by the API
    caplog.set_level(logging.DEBUG)
    di = OAuthDI(make_events(5))
    di.revoked = type("All", (set,), {"__contains__": lambda self, item: True})()
    client = make_client(di, credentials=sa_credentials(), monotonic=Clock())
    # When read
    with pytest.raises(DIAuthenticationError, match="even after renewal") as info:
        list(client.iter_pages(ORG, START_NS, END_NS))
    # Then exactly one renewal was tried, and no secret or token leaked
    assert di.issued == ["tok-1", "tok-2"]
    assert_secret_free(info.value, caplog, CLIENT_SECRET, "tok-1", "tok-2")


@pytest.mark.parametrize("status", [400, 401])
def test_token_endpoint_refusal_is_an_authentication_error(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a token endpoint that refuses the client secret
    caplog.set_level(logging.DEBUG)
    di = OAuthDI(make_events(5))
    di.token_status = status
    client = make_client(di, credentials=sa_credentials())
    # When read
    with pytest.raises(DIAuthenticationError) as info:
        list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the message says the service-account credentials were rejected, and what to check
    assert "service-account credentials were rejected" in str(info.value)
    assert "check client_id and client_secret in secret di/sa" in str(info.value)
    assert len(di.token_requests) == 1
    assert di.paging.requests == []
    assert_secret_free(info.value, caplog, CLIENT_SECRET)


def test_token_endpoint_outage_is_retried() -> None:
    # Given a token endpoint that is briefly unavailable
    di = OAuthDI(make_events(5))
    calls = {"n": 0}
    inner = di.__call__

    def flaky(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL and calls["n"] == 0:
            calls["n"] += 1
            return httpx.Response(503)
        return inner(request)

    sleeps = Sleeps()
    client = make_client(flaky, credentials=sa_credentials(), sleeps=sleeps)
    # When read / Then the token request was retried and the events arrived
    assert sum(len(p) for p in client.iter_pages(ORG, START_NS, END_NS)) == 5
    assert len(sleeps) == 1


def test_service_account_requires_an_org() -> None:
    # Given a service account / When no org is given / Then a SettingsError before any request
    di = OAuthDI(make_events(1))
    with pytest.raises(SettingsError, match="need an organisation id"):
        make_client(di, credentials=sa_credentials()).iter_pages(None, START_NS, END_NS)
    assert di.token_requests == []


def test_token_response_body_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Given a normal run with debug logging
    caplog.set_level(logging.DEBUG)
    di = OAuthDI(make_events(3))
    list(make_client(di, credentials=sa_credentials()).iter_pages(ORG, START_NS, END_NS))
    # Then neither the token nor the secret was logged
    assert "tok-1" not in caplog.text
    assert CLIENT_SECRET not in caplog.text
    assert json.dumps(CLIENT_SECRET) not in caplog.text
