import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from di_archiver.timestamps import TimestampError, format_timestamp_ns, parse_timestamp_ns

BASE = 1_686_841_601 * 1_000_000_000  # 2023-06-15T15:06:41Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-06-15T15:06:41Z", BASE),
        ("2023-06-15T15:06:41.5Z", BASE + 500_000_000),
        ("2023-06-15T15:06:41.92Z", BASE + 920_000_000),
        ("2023-06-15T15:06:41.921Z", BASE + 921_000_000),
        ("2023-06-15T15:06:41.9214Z", BASE + 921_400_000),
        ("2023-06-15T15:06:41.92145Z", BASE + 921_450_000),
        ("2023-06-15T15:06:41.921456Z", BASE + 921_456_000),
        ("2023-06-15T15:06:41.9214567Z", BASE + 921_456_700),
        ("2023-06-15T15:06:41.34334445Z", BASE + 343_344_450),
        ("2023-06-15T15:06:41.812449824Z", BASE + 812_449_824),
        ("2023-06-15T15:06:41.000000001Z", BASE + 1),
        ("2023-06-16T00:36:41+09:30", BASE),
        ("2023-06-15T10:06:41.25-05:00", BASE + 250_000_000),
    ],
)
def test_parses_every_fraction_width_to_exact_nanoseconds(text: str, expected: int) -> None:
    # Given a DI timestamp with 0-9 fractional digits / When parsed / Then ns are exact
    assert parse_timestamp_ns(text) == expected


def test_ordering_is_numeric_where_string_order_is_wrong() -> None:
    # Given two timestamps whose string order disagrees with time order
    earlier, later = "2023-06-15T15:06:41.9Z", "2023-06-15T15:06:41.10Z"
    # Then the strings sort one way and the parsed values the other
    assert earlier > later
    assert parse_timestamp_ns(earlier) > parse_timestamp_ns(later)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2023-06-15",
        "2023-06-15T15:06:41",
        "2023-06-15T15:06:41.1234567890Z",
        "2023-02-30T00:00:00Z",
        "yesterday",
    ],
)
def test_rejects_what_is_not_rfc3339(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp_ns(text)


@pytest.mark.parametrize("ns", [BASE, BASE + 1, BASE + 500_000_000, BASE + 812_449_824])
def test_format_round_trips_and_trims_trailing_zeros(ns: int) -> None:
    text = format_timestamp_ns(ns)
    assert parse_timestamp_ns(text) == ns
    assert not text.removesuffix("Z").endswith("0") or "." not in text


@pytest.mark.parametrize(
    "text",
    [
        "2023-06-15T15:60:41Z",
        "2023-06-15T15:06:60Z",
        "2023-06-15T24:06:41Z",
        "2023-13-15T15:06:41Z",
    ],
)
def test_rejects_out_of_range_fields(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp_ns(text)


def test_cached_hours_give_the_same_answer_as_a_fresh_parse() -> None:
    # Given many timestamps inside one hour, parsed after the hour is cached
    base = parse_timestamp_ns("2023-06-15T15:00:00Z")
    for minute in range(0, 60, 7):
        for second in range(0, 60, 11):
            text = f"2023-06-15T15:{minute:02d}:{second:02d}.5Z"
            # Then each equals the arithmetic answer
            assert parse_timestamp_ns(text) == base + (minute * 60 + second) * 10**9 + 5 * 10**8


@settings(max_examples=300, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=4_102_444_799),  # through 2099
    fraction=st.integers(min_value=0, max_value=999_999_999),
    digits=st.integers(min_value=0, max_value=9),
)
def test_the_cached_fast_path_gives_exact_nanoseconds(
    seconds: int, fraction: int, digits: int
) -> None:
    # Given any UTC timestamp with 0-9 fractional digits
    base = format_timestamp_ns(seconds * 1_000_000_000).removesuffix("Z")
    text = base + ("." + f"{fraction:09d}"[:digits] if digits else "") + "Z"
    kept = f"{fraction:09d}"[:digits]
    expected = seconds * 1_000_000_000 + (int(kept.ljust(9, "0")) if digits else 0)
    # When parsed cold and then again from the minute cache / Then both are exact
    assert parse_timestamp_ns(text) == expected
    assert parse_timestamp_ns(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2023-06-15T15:06:41.Z",
        "2023-06-15T15:06:41.1234567890Z",
        "2023-06-15T15:06:41.12a4Z",
        "2023-06-15T15:06:41.\u0661\u0662Z",  # digits, but not ASCII ones
        "2023-06-15T15:06:41.+5Z",
        "2023-06-15T15:06:41.1_0Z",
        "2023-06-15T15:06:41 Z",
    ],
)
def test_a_cached_second_still_rejects_what_follows_it_wrongly(text: str) -> None:
    # Given the second's prefix cached by a valid timestamp
    assert parse_timestamp_ns("2023-06-15T15:06:41.5Z") == BASE + 500_000_000
    # When a timestamp with that prefix but a broken tail is parsed / Then it is refused
    with pytest.raises(TimestampError):
        parse_timestamp_ns(text)
