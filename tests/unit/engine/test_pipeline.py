import threading
from collections.abc import Iterator

import pytest

from di_archiver.domain.pipeline import run_ahead


def test_items_arrive_in_order_and_errors_surface_where_they_happened() -> None:
    # Given a producer that fails after two items
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("boom")

    # When consumed through run_ahead: then both items arrive, then the error
    got: list[int] = []
    with pytest.raises(ValueError, match="boom"):
        got.extend(run_ahead(items()))
    assert got == [1, 2]


def test_closing_early_stops_and_closes_the_producer() -> None:
    # Given an endless producer that records being closed
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()

    # When the consumer stops after one item
    stream = run_ahead(items())
    assert next(stream) == 1
    stream.close()
    # Then the producer was closed (close() joins the worker, so no waiting is needed)
    assert closed.is_set()
