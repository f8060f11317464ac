"""Finding 2: one scrub for every credential spelling, applied before text is shortened."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest

from di_archiver.errors import DIApiError
from di_archiver.redaction import display_secret_id, printable, redact, register, server_text

SECRET = "Zq9/x+Ab=cD3_eF4-gH5.iJ6~kL7mN8oP9qR0sT1"


@pytest.fixture(autouse=True)
def _registered() -> None:
    register(SECRET)


@pytest.mark.parametrize(
    "spelling",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),
        "".join(f"\\u{ord(c):04x}" for c in SECRET),
        "".join(f"\\u{ord(c):04X}" for c in SECRET),
        quote(SECRET, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(SECRET, safe="")),
        quote_plus(SECRET, safe=""),
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(f"client-1:{SECRET}".encode()).decode(),
        base64.b64encode(f"id-22:{SECRET}".encode()).decode(),
        base64.b64encode(f"c3:{SECRET}".encode()).decode(),
        base64.urlsafe_b64encode(f"c3:{SECRET}".encode()).decode(),
        SECRET[3:25],
    ],
)
def test_every_spelling_is_scrubbed(spelling: str) -> None:
    # Given a server message echoing the secret in one spelling / When scrubbed
    text = redact(f"error: got {spelling} from you")
    # Then at most a sliver survives (base64 characters that mix in a client id and padding)
    assert "***" in text
    visible = text.removeprefix("error: got ").removesuffix(" from you").replace("***", "")
    assert len(visible) <= 16
    assert not any(SECRET[i : i + 8] in visible for i in range(len(SECRET) - 7))


def test_the_scrub_runs_before_the_cut() -> None:
    # Given a secret that straddles the 300-character limit
    text = server_text("x" * 290 + SECRET, 300)
    # Then none of it is shown, not even the part before the cut
    assert SECRET[:10] not in text
    assert len(text) <= 300


def test_control_characters_and_terminal_escapes_are_removed_first() -> None:
    # Given escape codes inside the echoed secret (to split it past a literal scrub)
    hidden = SECRET[:20] + "\x1b[0m" + SECRET[20:]
    text = server_text(f"\x1b]0;pwned\x07\x1b[2J{hidden}\r\n\u202eevil\x9b", 300)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\u202e" not in text
    assert "\x9b" not in text
    assert SECRET[:16] not in text
    assert printable("a\nb\tc") == "a b c"


def test_our_errors_never_print_a_registered_secret() -> None:
    error = DIApiError(f"server said {SECRET} and {quote(SECRET, safe='')}")
    assert SECRET not in str(error)
    assert quote(SECRET, safe="") not in str(error)


@pytest.mark.parametrize(
    ("secret_id", "shown"),
    [
        ("di/jumpcloud", True),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:di-AbCdEf", True),
        ("jumpcloud", True),
        ("0123456789abcdef0123456789abcdef01234567", False),
        ("jca_8f7e6d5c4b3a29181716151413121110", False),
        ("prod/di-archiver/jumpcloud-api-key", True),
        # keys with separators and no long run of digits (base64url OAuth secrets look so)
        ("jca_Zq8mXk2LpRt7Vw9YbN4cHd6Fg3Js1Ku5", False),
        ("kJ8s-Qw3_Er5tY7uI9oP1aS2dF4gH6jK8lZ0xC", False),
        ("di/kJ8s-Qw3_Er5tY7uI9oP1aS2dF4gH6jK8lZ0xC", False),
        # a base64 secret pasted as the id: its "/" must not pass it off as a path
        ("c2VjcmV0a2V5MTIzNDU2Nzg5MGFi/Y2RlZmdoaWprbG1ub3A=", False),
    ],
)
def test_a_secret_id_is_shown_only_when_it_cannot_be_a_credential(
    secret_id: str, shown: bool
) -> None:
    assert (secret_id in display_secret_id(secret_id)) is shown
