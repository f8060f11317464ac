"""Sealing, reconcile counting and verify stream: bounded memory, byte-identical output."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import di_archiver.archive_format as archive_format
import di_archiver.domain.seal as seal
from di_archiver.adapters.local_store import LocalArchiveStore
from di_archiver.archive_format import (
    ARCHIVAL_LEVEL,
    FAST_LEVEL,
    LineReader,
    StreamEncoder,
    decode_lines,
    encode_lines,
    keyed_line,
)
from di_archiver.domain.manifest import Manifest
from di_archiver.domain.seal import DaySealer, archived_events_by_window, merge_day
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import ArchiverError
from di_archiver.layout import bucket_object_key, manifest_key, sealed_day_key
from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    HOUR,
    ORG,
    PREFIX,
    FakeEngine,
    FakeSource,
    MemoryStore,
    day_ns,
    make_event,
    populate,
)


def _line(index: int, ts_ns: int, payload: int = 40) -> bytes:
    noise = hashlib.sha256(str(index).encode()).hexdigest()
    return (
        f'{{"id":"{index:024x}","service":"directory","timestamp":"{format_timestamp_ns(ts_ns)}",'
        f'"detail":{{"n":{index},"blob":"{noise * (payload // 64 + 1)}"}}}}'
    ).encode()


def _stream_encode(
    lines: list[bytes], level: int, batch: int = 0
) -> tuple[bytes, archive_format.StreamedObject]:
    sink = io.BytesIO()
    encoder = StreamEncoder(sink, level=level)
    pairs = sorted(keyed_line(line) for line in lines)
    if batch:
        for start in range(0, len(pairs), batch):
            encoder.extend(pairs[start : start + batch])
    else:
        for key, line in pairs:
            encoder.add(key, line)
    streamed = encoder.finish()
    return sink.getvalue(), streamed


@pytest.mark.parametrize("batch", [0, 5, 97, 1000])
@pytest.mark.parametrize("level", [FAST_LEVEL, ARCHIVAL_LEVEL])
def test_stream_encoder_writes_exactly_the_bytes_of_encode_lines(level: int, batch: int) -> None:
    # Given ~3 MB of lines with exact duplicates, same-(ts, id) collisions and same-timestamp
    # lines of other ids (not collisions), shuffled
    rng = random.Random(7)
    base = day_ns(DAY0)
    lines = [_line(i, base + rng.randrange(DAY), payload=300) for i in range(8000)]
    lines += lines[:50]  # exact duplicates
    lines += [line.replace(b'"n":', b'"n":-') for line in lines[50:60]]  # collisions
    lines += [_line(9000 + i, base + 5, payload=40) for i in range(20)]  # one timestamp, 20 ids
    rng.shuffle(lines)

    # When encoded by the streaming encoder (line by line, or in batches) and by the
    # whole-object encoder
    body, streamed = _stream_encode(lines, level, batch)
    reference = encode_lines([keyed_line(line) for line in lines], level=level)

    # Then bytes, hash, count, collisions and time range are identical
    assert body == reference.body
    assert (streamed.sha256, streamed.count, streamed.collisions, streamed.size) == (
        reference.sha256,
        reference.count,
        reference.collisions,
        len(reference.body),
    )
    assert (streamed.first_ts_ns, streamed.last_ts_ns) == (
        reference.first_ts_ns,
        reference.last_ts_ns,
    )
    assert streamed.metadata(fetched_at_ns=1) == reference.metadata(fetched_at_ns=1)


def test_stream_encoder_hands_deflate_bounded_blocks_and_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a page's worth of one service in one batch: MBs of lines, three of them longer
    # than a whole block
    base = day_ns(DAY0)
    lines = [_line(i, base + i * 1000, payload=600) for i in range(4000)]
    for i in (7, 2000, 3999):
        lines[i] = _line(i, base + i * 1000, payload=200_000)
    blocks: list[int] = []
    consume = StreamEncoder._consume

    def recorded(self: StreamEncoder, data: bytes) -> None:
        blocks.append(len(data))
        consume(self, data)

    monkeypatch.setattr(StreamEncoder, "_consume", recorded)
    # When it is encoded in one call
    body, streamed = _stream_encode(lines, FAST_LEVEL, batch=len(lines))
    # Then each block is at most the chunk size (big joins map fresh memory from the kernel)
    # or one long line alone, and the object is the whole-object encoder's
    alone = sorted(len(lines[i]) + 1 for i in (7, 2000, 3999))
    assert sum(blocks) > 20 * archive_format._CHUNK_BYTES
    assert sorted(size for size in blocks if size > archive_format._CHUNK_BYTES + 700) == alone
    reference = encode_lines([keyed_line(line) for line in lines], level=FAST_LEVEL)
    assert body == reference.body
    assert streamed.sha256 == reference.sha256


def test_stream_encoder_of_nothing_equals_the_empty_object() -> None:
    body, streamed = _stream_encode([], ARCHIVAL_LEVEL)
    assert body == encode_lines([], level=ARCHIVAL_LEVEL).body
    assert streamed.count == 0


def test_stream_encoder_refuses_out_of_order_input() -> None:
    encoder = StreamEncoder(io.BytesIO())
    encoder.add(*keyed_line(_line(2, day_ns(DAY0) + 5)))
    with pytest.raises(ArchiverError, match="out of"):
        encoder.add(*keyed_line(_line(1, day_ns(DAY0) + 1)))


def test_line_reader_mirrors_decode_lines_and_hashes_the_content() -> None:
    # Given an object whose content lacks its final newline
    raw = b"a\nb\nc"
    body = archive_format.compress(raw, level=6)
    reader = LineReader(io.BytesIO(body))
    # Then the lines are those decode_lines returns, the tail is flagged, sizes are exact
    assert list(reader) == decode_lines(body) == [b"a", b"b"]
    assert reader.partial_tail
    assert reader.sha256 == hashlib.sha256(raw).hexdigest()
    assert reader.compressed_size == len(body)
    with pytest.raises(ArchiverError, match="not valid gzip"):
        list(LineReader(io.BytesIO(b"not gzip at all")))


def _bucket_lines(store: MemoryStore, service: str) -> list[list[bytes]]:
    keys = sorted(
        (k for k in store.objects if f"/svc={service}/" in k and not k.endswith("day.jsonl.gz")),
    )
    return [decode_lines(store.objects[k][0]) for k in keys]


def test_sealed_day_is_byte_identical_to_the_whole_day_merge() -> None:
    # Given a day spread over 24 hourly buckets per service
    source = FakeSource(now=day_ns(DAY0) + 2 * DAY)
    populate(source, DAY0, 1, per_day=600)
    store = MemoryStore()
    engine = FakeEngine(source, store)
    engine.archive_days(ORG, DAY0, 1)
    expected = {s: merge_day([], _bucket_lines(store, s)) for s in ("directory", "sso")}

    # When the day is sealed (streaming)
    DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now).seal_org(
        ORG, day_ns(DAY0) + DAY
    )

    # Then each sealed object has exactly the bytes and hash the in-memory merge produced
    for service, reference in expected.items():
        body, meta = store.objects[sealed_day_key(PREFIX, ORG, service, DAY0)]
        assert body == reference.body
        assert meta["di-sha256"] == reference.sha256

    # And a re-seal over late and changed events equals the whole-day merge rule too
    sealed_before = decode_lines(store.objects[sealed_day_key(PREFIX, ORG, "sso", DAY0)][0])
    source.add(make_event(99_001, day_ns(DAY0) + 3 * HOUR + 1, "sso"))
    changed = next(e for _, e in source.events if e["service"] == "sso")
    changed["detail"] = {"n": -1}
    for hour in (0, 3):
        engine.snapshot_bucket(ORG, day_ns(DAY0) + hour * HOUR, day_ns(DAY0) + (hour + 1) * HOUR)
    reference = merge_day(sealed_before, _bucket_lines(store, "sso"))
    DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now).seal_day(
        ORG, DAY0
    )
    assert store.objects[sealed_day_key(PREFIX, ORG, "sso", DAY0)][0] == reference.body
    assert verify_archive(store, prefix=PREFIX).ok


def test_seal_reconcile_and_verify_never_hold_a_whole_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a multi-bucket day, and every whole-object encoder/decoder made to fail
    source = FakeSource(now=day_ns(DAY0) + 2 * DAY)
    populate(source, DAY0, 1, per_day=300)
    store = MemoryStore()
    FakeEngine(source, store).archive_days(ORG, DAY0, 1)

    def forbidden(*_: object, **__: object) -> object:
        raise AssertionError("a whole-object encode/decode was used")

    monkeypatch.setattr(seal, "encode_lines", forbidden)
    monkeypatch.setattr(seal, "merge_day", forbidden)
    monkeypatch.setattr(archive_format, "decompress", forbidden)
    monkeypatch.setattr(archive_format.gzip, "decompress", forbidden)

    # When the day is sealed, its windows counted and the archive verified
    sealer = DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now)
    results = sealer.seal_org(ORG, day_ns(DAY0) + DAY)
    manifest = Manifest.from_bytes(store.objects[manifest_key(PREFIX, ORG, DAY0)][0])
    counts = archived_events_by_window(store, manifest, [(day_ns(DAY0), day_ns(DAY0) + DAY)])
    report = verify_archive(store, prefix=PREFIX)

    # Then all of it worked through the streaming paths
    assert results[0].events == 302
    assert counts[0][0] == 302
    assert report.ok
    assert report.events_checked == 302


def _write_big_day(store: LocalArchiveStore, raw_target: int) -> int:
    """Hourly bucket objects of one service totalling about ``raw_target`` raw bytes."""
    raw_total = 0
    per_bucket = raw_target // 24 // len(_line(0, 0, payload=900))
    spool = Path(store.root) / "spool.tmp"
    for hour in range(24):
        start = day_ns(DAY0) + hour * HOUR
        first = hour * per_bucket
        lines = sorted(
            keyed_line(_line(i, start + (i * 7919 % 3600) * NS_PER_SECOND, payload=900))
            for i in range(first, first + per_bucket)
        )
        with spool.open("w+b") as sink:
            encoder = StreamEncoder(sink, level=1)
            for key, line in lines:
                encoder.add(key, line)
            streamed = encoder.finish()
            key = bucket_object_key(PREFIX, ORG, "directory", start, start + HOUR)
            sink.seek(0)
            store.put_file(key, sink, streamed.size, streamed.metadata(fetched_at_ns=1))
        raw_total += streamed.raw_size
        del lines
    spool.unlink()
    return raw_total


def _peak(action: object) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        action()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure_seal_and_verify(root: str) -> dict[str, object]:
    """Seal and verify the day written under ``root``, each under tracemalloc (run in a child)."""
    store = LocalArchiveStore(Path(root))
    seal.SPOOL_MAX_BYTES = 1024 * 1024
    sealer = DaySealer(store=store, prefix=PREFIX, clock=lambda: day_ns(DAY0) + 2 * DAY)
    seal_peak = _peak(lambda: sealer.seal_org(ORG, day_ns(DAY0) + DAY))
    reports = []
    verify_peak = _peak(lambda: reports.append(verify_archive(store, prefix=PREFIX)))
    return {
        "seal_peak": seal_peak,
        "verify_peak": verify_peak,
        "ok": reports[0].ok,
        "objects_checked": reports[0].objects_checked,
    }


def test_memory_of_seal_and_verify_stays_far_below_the_raw_day(tmp_path: Path) -> None:
    # Given a ~24 MB-raw day in 24 hourly objects on a local (streaming) store
    store = LocalArchiveStore(tmp_path)
    raw = _write_big_day(store, 24 * 1024 * 1024)
    assert raw > 20 * 1024 * 1024

    # When the day is sealed, then verified, each under tracemalloc in a fresh interpreter
    # (in a test worker, a pathlib sys.intern() during the seal can resize CPython's global
    # table of interned strings, grown by every test before; that 3.7 MB is not the seal's)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from tests.unit.integrity.test_streaming import "
            "measure_seal_and_verify as m; print(json.dumps(m(sys.argv[1])))",
            str(tmp_path),
        ],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    measured = json.loads(child.stdout.splitlines()[-1])

    # Then both peaks are a small fraction of the raw day (the old path held it several times)
    assert measured["ok"]
    assert measured["objects_checked"] == 1
    seal_peak, verify_peak = measured["seal_peak"], measured["verify_peak"]
    assert seal_peak < raw / 6, f"seal peak {seal_peak} vs raw {raw}"
    assert verify_peak < raw / 6, f"verify peak {verify_peak} vs raw {raw}"
