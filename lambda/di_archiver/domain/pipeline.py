"""Run an iterator one item ahead on a background thread (fetching overlaps processing)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.05


def run_ahead(items: Iterator[T], *, name: str = "di-archiver-ahead") -> Iterator[T]:
    """Yield ``items`` while a worker already produces the next one.

    At most one finished item waits, so memory stays bounded. An exception in the worker is
    raised in the consumer where it happened; closing this generator stops the worker after the
    item it is producing and closes ``items``.
    """
    slot: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slot.put(entry, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
                del item  # the consumer owns it now; do not hold it while producing the next
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, who re-raises it
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slot.get()
            if kind == "item":
                yield value
                del value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()
