"""Copy the archive partitions a local query reads from S3 into a scratch directory.

Used by ``di-archiver query`` (DuckDB reads local files); only the days the query's ``dt``
filter selects are listed and downloaded.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from di_archiver.adapters.s3_store import error_code
from di_archiver.errors import StoreError
from di_archiver.layout import DATE_PARTITION, OBJECT_SUFFIX, ORG_PARTITION


class Days(Protocol):
    """Inclusive UTC day bounds (``None``: unbounded on that side)."""

    @property
    def first(self) -> date | None: ...

    @property
    def last(self) -> date | None: ...

    def contains(self, day: date) -> bool: ...


def s3_client(endpoint_url: str | None = None) -> Any:
    """An S3 client for reading partitions (``endpoint_url``: an emulator)."""
    return boto3.client("s3", endpoint_url=endpoint_url)


def _is_org_prefix(segment: str) -> bool:
    return segment.startswith(f"{ORG_PARTITION}=")


def _s3_common_prefixes(client: Any, bucket: str, prefix: str) -> list[str]:
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    ):
        out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    return out


def download_s3_partitions(
    client: Any,
    bucket: str,
    prefix: str,
    days: Days,
    target: Path,
    *,
    org_ids: Collection[str] | None = None,
) -> None:
    """Copy only the objects of the days in ``days`` to ``target`` (same relative keys).

    Per (org, service) one listing starts right at ``dt=<first day>`` (StartAfter) and stops
    past the last day, so a narrow query lists and downloads only what it reads.
    """
    base = prefix.strip("/") + "/" if prefix.strip("/") else ""
    try:
        for org_prefix in _s3_common_prefixes(client, bucket, base):
            segment = org_prefix[len(base) :].rstrip("/")
            if not _is_org_prefix(segment) or (
                org_ids is not None and segment.partition("=")[2] not in org_ids
            ):
                continue
            for svc_prefix in _s3_common_prefixes(client, bucket, org_prefix):
                dt_prefix = f"{svc_prefix}{DATE_PARTITION}="
                kwargs = {"Bucket": bucket, "Prefix": dt_prefix}
                if days.first is not None:
                    kwargs["StartAfter"] = f"{dt_prefix}{(days.first - timedelta(days=1))}/~"
                for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
                    for item in page.get("Contents", []):
                        key: str = item["Key"]
                        raw_day = key[len(dt_prefix) :].split("/", 1)[0]
                        try:
                            day = date.fromisoformat(raw_day)
                        except ValueError:
                            continue
                        if days.last is not None and day > days.last:
                            break
                        if not key.endswith(OBJECT_SUFFIX) or not days.contains(day):
                            continue
                        destination = target / key
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        client.download_file(bucket, key, str(destination))
                    else:
                        continue
                    break
    except (BotoCoreError, ClientError) as exc:
        raise StoreError(f"cannot read s3://{bucket}/{base}: {error_code(exc)}") from exc
