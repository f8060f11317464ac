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
