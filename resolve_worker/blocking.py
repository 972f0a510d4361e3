"""Blocking: which pairs are worth scoring, so the cost grows about linearly with identities.

Every record gets a few blocking keys (an email, a phone, a company context with a phonetic
last name, ...). Only records sharing a key are compared. Inside a block, last names (or company
names) are compared in bulk with ``rapidfuzz.process.cdist`` and only pairs above a loose floor
are scored in full. Blocks larger than ``MAX_BLOCK`` (a key so common it identifies nobody) are
compared only within ``MAX_BLOCK``-sized windows of records sorted by name, which keeps exact
duplicates adjacent. In incremental runs only pairs with at least one new record are produced.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Hashable, Iterable, Iterator, Optional, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

MAX_BLOCK = 400
_SMALL = 8  # blocks up to this size skip the bulk pre-filter
_FLOOR = 0.75  # cdist pre-filter: pairs whose names are less alike are not scored


def blocks(keys_of: Sequence[Iterable[Hashable]]) -> dict[Hashable, list[int]]:
    out: dict[Hashable, list[int]] = defaultdict(list)
    for i, keys in enumerate(keys_of):
        for key in keys:
            out[key].append(i)
    return out


def candidate_pairs(block_map: dict[Hashable, list[int]], names: Sequence[str],
                    is_new: Optional[Sequence[bool]] = None, need: Optional[Sequence[bool]] = None
                    ) -> list[tuple[int, int]]:
    """Distinct (i, j), i < j, of records sharing a block whose names pass the bulk pre-filter,
    in the order blocks first give them.

    ``is_new`` / ``need``: keep only pairs with at least one flagged record (each mask on its own).
    """
    found: list[tuple[int, int]] = []
    plain = is_new is None and need is None
    for members in block_map.values():
        size = len(members)
        if size < 2:
            continue
        if plain and size == 2:  # most blocks that pair anything: two records, one pair
            a, b = members
            found.append((a, b) if a < b else (b, a))
            continue
        if is_new is not None and not any(is_new[m] for m in members):
            continue
        if need is not None and not any(need[m] for m in members):
            continue
        if size <= MAX_BLOCK:
            found.extend(_pairs_in(members, names, is_new))
            continue
        for window in _windows(members, names):
            found.extend(_pairs_in(window, names, is_new))
    distinct = dict.fromkeys(found)  # first occurrence kept, in order
    if need is None:
        return list(distinct)
    return [pair for pair in distinct if need[pair[0]] or need[pair[1]]]


def _windows(members: list[int], names: Sequence[str]) -> Iterator[list[int]]:
    if len(members) <= MAX_BLOCK:
        yield members
        return
    ordered = sorted(members, key=lambda m: names[m])
    step = MAX_BLOCK // 2
    for start in range(0, len(ordered) - step, step):
        yield ordered[start:start + MAX_BLOCK]


def _pairs_in(members: list[int], names: Sequence[str], is_new: Optional[Sequence[bool]]
              ) -> list[tuple[int, int]]:
    if len(members) <= _SMALL:
        # a few records: every pair is scored, the bulk pre-filter would cost more than it saves
        pairs = [(a, b) if a < b else (b, a) for a, b in combinations(members, 2)]
    else:
        texts = [names[m] for m in members]
        sims = process.cdist(texts, texts, scorer=JaroWinkler.normalized_similarity, dtype=np.float32,
                             workers=1)
        # empty names compare as similar: other evidence (email, phone) decides
        empty = np.array([not t for t in texts])
        sims[empty, :] = 1.0
        sims[:, empty] = 1.0
        rows, cols = np.nonzero(np.triu(sims >= _FLOOR, k=1))
        ids = np.asarray(members)
        firsts, seconds = ids[rows], ids[cols]
        pairs = list(zip(np.minimum(firsts, seconds).tolist(), np.maximum(firsts, seconds).tolist()))
    if is_new is None:
        return pairs
    return [(a, b) for a, b in pairs if is_new[a] or is_new[b]]


def star_links(groups: dict[Hashable, list[int]], is_new: Optional[Sequence[bool]] = None
               ) -> Iterator[tuple[Hashable, int, int]]:
    """Exact-key groups joined as a star (first member to each other) and a chain (each to the
    one before): 2n-3 links, not n².

    The star alone left the others unlinked when the clustering refused the first member (split
    off by hand, or its cluster vetoing them): they share the key yet were never compared. The
    chain links them past any one refused member.
    """
    for key, members in groups.items():
        if len(members) < 2:
            continue
        if is_new is not None and not any(is_new[m] for m in members):
            continue
        hub = members[0]
        for m in members[1:]:
            yield key, hub, m
        for before, m in zip(members[1:], members[2:]):
            yield key, before, m

