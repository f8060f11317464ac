import io
from pathlib import Path

import pytest

from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.errors import CheckpointError, StoreError


def test_put_get_head_list_delete_round_trip(tmp_path: Path) -> None:
    # Given an empty store
    store = LocalArchiveStore(tmp_path)
    # When two objects are written
    store.put("di/org=a/svc=sso/dt=2026-05-04/0900-1000.jsonl.gz", b"one", {"di-count": "1"})
    store.put("di/org=a/svc=sso/dt=2026-05-04/1000-1100.jsonl.gz", b"two", {"di-count": "2"})
    # Then they read back with their metadata, listed in key order, and delete cleanly
    assert store.get("di/org=a/svc=sso/dt=2026-05-04/0900-1000.jsonl.gz") == b"one"
    head = store.head("di/org=a/svc=sso/dt=2026-05-04/1000-1100.jsonl.gz")
    assert head is not None
    assert head.metadata == {"di-count": "2"}
    assert head.size == 3
    assert [o.key for o in store.list("di/org=a/")] == [
        "di/org=a/svc=sso/dt=2026-05-04/0900-1000.jsonl.gz",
        "di/org=a/svc=sso/dt=2026-05-04/1000-1100.jsonl.gz",
    ]
    store.delete("di/org=a/svc=sso/dt=2026-05-04/0900-1000.jsonl.gz")
    store.delete("di/org=a/svc=sso/dt=2026-05-04/0900-1000.jsonl.gz")
    assert store.get("di/org=a/svc=sso/dt=2026-05-04/0900-1000.jsonl.gz") is None
    assert [o.key for o in store.list("di/")] == [
        "di/org=a/svc=sso/dt=2026-05-04/1000-1100.jsonl.gz"
    ]


@pytest.mark.parametrize("key", ["/etc/passwd", "di/../../x", "a/b.jsonl.gz.meta.json"])
def test_refuses_keys_that_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError):
        LocalArchiveStore(tmp_path).put(key, b"x", {})


def test_checkpoints_are_per_org_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    FileCheckpointStore(path).save("org-a", {"closed_through": "2026-05-04T00:00:00Z"})
    FileCheckpointStore(path).save("org-b", {"closed_through": "2026-05-05T00:00:00Z"})
    reopened = FileCheckpointStore(path)
    assert reopened.load("org-a") == {"closed_through": "2026-05-04T00:00:00Z"}
    assert reopened.load("org-c") is None


def test_corrupt_checkpoint_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        FileCheckpointStore(path).load("org-a")


def test_put_file_streams_atomically_and_get_stream_reads_it_back(tmp_path: Path) -> None:
    # Given a 3 MB body in a file object
    store = LocalArchiveStore(tmp_path)
    body = bytes(range(256)) * (3 * 4096)
    source = io.BytesIO(body)
    # When it is written with put_file and read with get_stream
    store.put_file("di/org=x/a.jsonl.gz", source, len(body), {"di-count": "3"})
    stream = store.get_stream("di/org=x/a.jsonl.gz")
    assert stream is not None
    with stream:
        # Then the bytes and metadata are those written, and no temporary file is left
        assert stream.read() == body
    head = store.head("di/org=x/a.jsonl.gz")
    assert head is not None
    assert head.metadata == {"di-count": "3"}
    assert not list(tmp_path.rglob(".tmp-*"))
    assert store.get_stream("di/org=x/absent.jsonl.gz") is None


def test_put_file_with_a_short_source_leaves_the_old_object(tmp_path: Path) -> None:
    # Given an existing object
    store = LocalArchiveStore(tmp_path)
    store.put("k.jsonl.gz", b"old", {})
    # When a put_file reads fewer bytes than announced
    with pytest.raises(StoreError, match="expected 10 bytes"):
        store.put_file("k.jsonl.gz", io.BytesIO(b"short"), 10, {})
    # Then the old object is intact and no temporary file is left
    assert store.get("k.jsonl.gz") == b"old"
    assert not list(tmp_path.rglob(".tmp-*"))


def test_list_prefixes_returns_one_level_like_s3(tmp_path: Path) -> None:
    store = LocalArchiveStore(tmp_path)
    for key in ("di/org=a/svc=sso/dt=1/x", "di/org=a/svc=mdm/dt=1/y", "di/org=b/svc=sso/dt=1/z"):
        store.put(key, b"", {})
    (tmp_path / "di" / "org=a" / "svc=empty").mkdir()
    assert list(store.list_prefixes("di/org=a/")) == ["di/org=a/svc=mdm/", "di/org=a/svc=sso/"]
    assert list(store.list_prefixes("di/")) == ["di/org=a/", "di/org=b/"]
    assert list(store.list_prefixes("nothing/")) == []
