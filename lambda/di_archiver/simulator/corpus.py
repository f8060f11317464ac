"""Compact, deterministic per-org event corpora.

A corpus keeps only parallel arrays sorted in API order (timestamp truncated to ms, then the
internal 20-character document id): timestamp, availability time, generation index, service
code and a 64-bit document hash. Event bodies are rendered on demand from
(seed, org, generation index), so a million events cost tens of MB, not gigabytes.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from di_archiver.simulator.config import LateIndexingConfig, OrgSpec
from di_archiver.simulator.events import (
    DEFAULT_PRECISION,
    SERVICE_PRECISION,
    SERVICE_WEIGHTS,
    Event,
    OrgEntities,
    build_entities,
    encode_event,
    render_event,
)
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ASCII order
_MASK55 = (1 << 55) - 1
_AGENT_SERVICES = frozenset({"systems", "software"})
# Bursts this large guarantee page boundaries inside one millisecond for limits 1000/10000.
_GIANT_BURSTS = (12_000, 1_500)
_MAX_BURST = 400


def doc_id_from_hash(h: int) -> str:
    """The 20-char opaque document id of hash ``h``; string order equals ``h`` order."""
    value = (h << 55) | (((h * 0x9E3779B97F4A7C15) >> 9) & _MASK55)
    chars = []
    for _ in range(20):
        value, digit = divmod(value, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars))


def _derive_seed(*parts: object) -> int:
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")


@dataclass(frozen=True, slots=True)
class Position:
    """A corpus row in API order."""

    org_index: int
    pos: int


class RenderCache:
    """A byte-bounded FIFO cache of rendered event JSON, shared by all orgs."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._size = 0
        self._items: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> bytes | None:
        return self._items.get(key)

    def put(self, key: tuple[int, int], value: bytes) -> None:
        if len(value) > self._max:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self._max:
                oldest = next(iter(self._items))
                self._size -= len(self._items.pop(oldest))


class OrgCorpus:
    """One organisation's events in API order, rendered lazily."""

    def __init__(
        self,
        *,
        seed: int,
        org_index: int,
        spec: OrgSpec,
        services: Sequence[str],
        ts_ns: array[int],
        avail_ns: array[int],
        gen_index: array[int],
        service_code: array[int],
        doc_hash: array[int],
        cache: RenderCache,
    ) -> None:
        self.seed = seed
        self.org_index = org_index
        self.spec = spec
        self.org_id = spec.org_id
        self.services = tuple(services)
        self.ts_ns = ts_ns
        self.avail_ns = avail_ns
        self.gen_index = gen_index
        self.service_code = service_code
        self.doc_hash = doc_hash
        self._cache = cache
        self._entities: OrgEntities | None = None

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def entities(self) -> OrgEntities:
        """The org's cast of users, systems and apps (built on first use)."""
        if self._entities is None:
            self._entities = build_entities(self.seed, self.org_id)
        return self._entities

    def ms(self, pos: int) -> int:
        """The sort timestamp (epoch ms, truncated) of row ``pos``."""
        return self.ts_ns[pos] // NS_PER_MS

    def doc_id(self, pos: int) -> str:
        """The internal document id of row ``pos`` (what ``X-Search_after`` carries)."""
        return doc_id_from_hash(self.doc_hash[pos])

    def service(self, pos: int) -> str:
        return self.services[self.service_code[pos]]

    def event(self, pos: int) -> Event:
        """A fresh dict of the event at row ``pos``."""
        return render_event(
            self.seed, self.entities, self.gen_index[pos], self.ts_ns[pos], self.service(pos)
        )

    def event_bytes(self, pos: int) -> bytes:
        """The exact JSON bytes the API sends for row ``pos`` (cached, bounded)."""
        key = (self.org_index, pos)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        body = encode_event(self.event(pos))
        self._cache.put(key, body)
        return body

    def first_pos_at_or_after_ms(self, ms: int) -> int:
        return bisect_left(self.ts_ns, ms * NS_PER_MS)

    def first_pos_after_ms(self, ms: int) -> int:
        return bisect_left(self.ts_ns, (ms + 1) * NS_PER_MS)

    def first_pos_after_key(self, ms: int, doc: str) -> int:
        """First row whose (ms, doc id) sorts strictly after ``(ms, doc)``."""
        lo = self.first_pos_at_or_after_ms(ms)
        hi = self.first_pos_after_ms(ms)
        return bisect_right(range(lo, hi), doc, key=self.doc_id) + lo

    def first_pos_at_or_after_key(self, ms: int, doc: str) -> int:
        """First row whose (ms, doc id) sorts at or after ``(ms, doc)``."""
        lo = self.first_pos_at_or_after_ms(ms)
        hi = self.first_pos_after_ms(ms)
        return bisect_left(range(lo, hi), doc, key=self.doc_id) + lo


def build_corpus(
    *,
    seed: int,
    org_index: int,
    spec: OrgSpec,
    services: Sequence[str],
    now_ns: int,
    span_seconds: float,
    future_span_seconds: float,
    tie_share: float,
    late: LateIndexingConfig,
    cache: RenderCache,
) -> OrgCorpus:
    """Generate an org's corpus deterministically from ``seed`` and ``now_ns``."""
    rng = random.Random(_derive_seed("corpus", seed, spec.org_id))
    n = spec.event_count
    start_ns = now_ns - int(span_seconds * NS_PER_SECOND)
    width_ns = max(1, int((span_seconds + future_span_seconds) * NS_PER_SECOND))

    weights = [SERVICE_WEIGHTS.get(s, 1.0) for s in services]
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total / sum(weights))
    precisions = [SERVICE_PRECISION.get(s, DEFAULT_PRECISION) for s in services]
    agent = [s in _AGENT_SERVICES for s in services]
    n_services = len(services)

    bursts = _burst_sizes(rng, round(n * tie_share))
    singles = n - sum(bursts)

    gen_ts = array("q")
    gen_svc = array("B")
    rand = rng.random
    for _ in range(singles):
        code = min(bisect_right(cum, rand()), n_services - 1)
        digits = rng.choice(precisions[code]) if rng.random() > 0.05 else rng.randrange(10)
        step = 10 ** (9 - digits)
        ts = start_ns + int(rand() * width_ns)
        gen_ts.append(ts - ts % step)
        gen_svc.append(code)
    for size in bursts:
        base_ms = (start_ns + int(rand() * width_ns)) // NS_PER_MS
        code = min(bisect_right(cum, rand()), n_services - 1)
        one_service = rand() < 0.7
        if min(precisions[code]) == 0 and one_service:
            base_ms -= base_ms % 1000  # whole-second services burst on identical timestamps
        for _ in range(size):
            c = code if one_service else min(bisect_right(cum, rand()), n_services - 1)
            digits = max(3, rng.choice(precisions[c]))
            step = 10 ** (9 - digits)
            sub = int(rand() * NS_PER_MS)
            gen_ts.append(base_ms * NS_PER_MS + sub - sub % step)
            gen_svc.append(c)

    gen_hash = [rng.getrandbits(64) for _ in range(n)]
    gen_avail = _availability(rng, gen_ts, gen_svc, agent, late)

    shift = max(1, n.bit_length())
    keys = [
        (((gen_ts[i] // NS_PER_MS) << 64 | gen_hash[i]) << shift) | i for i in range(n)
    ]  # fmt: skip
    keys.sort()
    mask = (1 << shift) - 1
    order = array("q", (k & mask for k in keys))
    del keys
    return OrgCorpus(
        seed=seed,
        org_index=org_index,
        spec=spec,
        services=services,
        ts_ns=array("q", (gen_ts[i] for i in order)),
        avail_ns=array("q", (gen_avail[i] for i in order)),
        gen_index=order,
        service_code=array("B", (gen_svc[i] for i in order)),
        doc_hash=array("Q", (gen_hash[i] for i in order)),
        cache=cache,
    )


def _burst_sizes(rng: random.Random, budget: int) -> list[int]:
    sizes: list[int] = []
    for giant in _GIANT_BURSTS:
        if budget >= 3 * giant:
            sizes.append(giant)
            budget -= giant
    while budget >= 2:
        size = min(budget, _MAX_BURST, 1 + math.ceil(rng.paretovariate(1.2)))
        if budget - size == 1:
            size += 1
        sizes.append(size)
        budget -= size
    return sizes


def _availability(
    rng: random.Random,
    ts: array[int],
    svc: array[int],
    agent: list[bool],
    late: LateIndexingConfig,
) -> array[int]:
    if late.share <= 0:
        return array("q", ts)
    out = array("q", ts)
    cap = late.max_delay_seconds
    mu = math.log(max(late.median_delay_seconds, 1e-3))
    mu_agent = mu + math.log(max(late.agent_delay_factor, 1e-3))
    for i in range(len(ts)):
        if rng.random() < late.share:
            center = mu_agent if agent[svc[i]] else mu
            delay = min(cap, math.exp(center + late.sigma * rng.gauss(0.0, 1.0)))
            out[i] = ts[i] + max(1, int(delay * NS_PER_SECOND))
    return out
