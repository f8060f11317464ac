"""Hostile bodies shared by the unit and functional tests.

``benchmarks/bench_hostile.py`` builds its single-member bomb the same way in its own copy:
benchmarks run as plain scripts, without the ``tests`` package on their path.
"""

from __future__ import annotations

import gzip
import zlib

MIB = 1024 * 1024


def gzip_bomb(expanded_mib: int = 1024) -> bytes:
    """A valid gzip body of ~1 KB per MiB that expands to ``expanded_mib`` MiB of ``[`` + zeros.

    Built from repeated gzip members (RFC 1952 allows concatenation) so making it costs
    milliseconds: one member of 1 MiB of zero bytes, repeated.
    """
    member = gzip.compress(bytes(MIB), compresslevel=9)
    return gzip.compress(b"[", compresslevel=9) + member * expanded_mib


def single_member_bomb(expanded_mib: int = 1024) -> bytes:
    """The classic bomb: one gzip member (slow to build: seconds per GiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    parts = [compressor.compress(b"[")]
    parts.extend(compressor.compress(zeros) for _ in range(expanded_mib))
    parts.append(compressor.flush())
    return b"".join(parts)
