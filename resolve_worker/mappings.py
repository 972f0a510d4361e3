"""One mapping per identity from the clusters: entity id, confidence, method and evidence.

The clustering ran on representatives (``twins``): each representative's collapsed twins get its
entity, linked to it by their self-score, and sizes count identities. Output order is the one a
row-by-row clustering gave (entities biggest first, identities in input order within one), since
the writer takes an entity's display name and primary email from its first identities on ties.
"""
from __future__ import annotations

import os
from collections import Counter
from operator import attrgetter, itemgetter
from typing import Callable, Iterator, Optional

_METHOD_BY_EVIDENCE = (("linked=", "source_link"), ("email=", "email_exact"), ("domain=", "domain_exact"),
                       ("name=", "name_exact"), ("phone=", "phone_exact"))


def method(why: list[str]) -> str:
    for prefix, name in _METHOD_BY_EVIDENCE:
        for w in why:
            if w.startswith(prefix):  # "email=a@b.c" is email evidence; "name_fuzzy=0.9" is not "name="
                return name
    return "name_fuzzy"


def new_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as text, from one read of the OS's random source: one
    ``uuid.uuid4()`` per new entity was a tenth of the mapping step."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])  # RFC 4122 variant
    hexed = raw.hex()
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
            for h in (hexed[i:i + 32] for i in range(0, 32 * n, 32))]


_first, _second = itemgetter(0), itemgetter(1)
_pinned_of, _existing_of = attrgetter("pinned"), attrgetter("existing_entity_id")
_key = attrgetter("source", "source_type", "source_id")  # IdentityRow.key without a Python call


def _ids(expected: int) -> Iterator[str]:
    """New entity ids handed out in order, read from the OS in batches."""
    while True:
        yield from new_ids(max(expected, 16))


def build(rows: list, keys: list, groups: dict, anchor: list, best: dict, entity_type: str,
          make: Callable, twins: Optional[list] = None, order: Optional[list[int]] = None) -> list:
    """Mappings of ``rows`` (the clustered representatives, keys ``keys``) grouped as ``groups``
    (root -> members), with their cluster ``anchor`` ids and ``best`` accepted link
    (conf, other, (method, evidence)). ``twins[m]``: None, or (twin rows, their input positions,
    self link (conf, (method, evidence))) of representative m; ``order[m]``: its input position."""
    # identities per representative: itself and its twins
    weight = (lambda m: 1) if twins is None else [1 + len(t[0]) if t else 1 for t in twins].__getitem__
    groups = sorted(groups.items(), key=(lambda kv: -len(kv[1])) if twins is None
                    else (lambda kv: -sum(map(weight, kv[1]))))
    pinned_ids = {r.existing_entity_id for r in rows if r.pinned and r.existing_entity_id}
    taken: set[str] = set(pinned_ids)
    # a first run has neither pinned rows nor existing entities: skip looking for them per entity
    any_pinned = any(map(_pinned_of, rows))
    any_existing = any(map(_existing_of, rows))
    new_id = _ids(len(groups) // 2).__next__
    out: list = []
    method_of: dict[int, str] = {}  # by evidence list: pairs of one kind share theirs
    for root, members in groups:
        if len(members) == 1 and not rows[members[0]].pinned and not (twins and twins[members[0]]):
            row = rows[members[0]]  # most entities: one identity
            entity_id = anchor[root]
            if entity_id is None and row.existing_entity_id and row.existing_entity_id not in taken:
                entity_id = row.existing_entity_id
            entity_id = entity_id or new_id()
            taken.add(entity_id)
            out.append(make(keys[members[0]], entity_type, entity_id, 1.0, "singleton",
                            {"matched_on": [], "cluster_size": 1}))
            continue
        live = [m for m in members if not rows[m].pinned] if any_pinned else members
        if not live:
            out.extend(_pinned(rows[m], entity_type, make, new_id) for m in members)
            continue
        size = sum(map(weight, live))
        entity_id = anchor[root]
        if entity_id is None and any_existing:
            existing = [eid for m in live for eid in [rows[m].existing_entity_id] * weight(m) if eid]
            if existing:
                counts = Counter(existing)  # ties to the smallest id: never to whichever row came first
                entity_id = next((eid for eid in sorted(counts, key=lambda e: (-counts[e], e)) if eid not in taken),
                                 None)
        entity_id = entity_id or new_id()
        taken.add(entity_id)
        # with twins, identities go back to input order within the entity (as before the collapse)
        spread = twins is not None and any(map(twins.__getitem__, members))
        group: list = []
        for m in members:
            row = rows[m]
            twin = twins[m] if twins else None
            if row.pinned:
                mapping = _pinned(row, entity_type, make, new_id)
            elif twin and (m not in best or len(live) == 1 or twin[2][0] >= best[m][0]):
                # an identical identity is the plainest evidence, as good as any other link it has
                conf, (how, why) = twin[2]
                mapping = make(keys[m], entity_type, entity_id, conf, how,
                               {"matched_on": why, "linked_to": list(_key(twin[0][0])), "cluster_size": size})
            elif m in best and len(live) > 1:
                conf, other, (how, why) = best[m]
                if not how:
                    how = method_of.get(id(why))
                    if how is None:
                        how = method_of[id(why)] = method(why)
                mapping = make(keys[m], entity_type, entity_id, conf, how,
                               {"matched_on": why, "linked_to": list(keys[other]), "cluster_size": size})
            elif size > 1:
                mapping = make(keys[m], entity_type, entity_id, 1.0, "manual" if anchor[root] else "existing",
                               {"matched_on": [], "cluster_size": size})
            else:
                mapping = make(keys[m], entity_type, entity_id, 1.0, "singleton", {"matched_on": [], "cluster_size": 1})
            if not spread:
                out.append(mapping)
                continue
            group.append((order[m] if order else 0, mapping))
            if twin is None:
                continue
            conf, (how, why) = twin[2]
            linked_to = list(keys[m])
            group.extend((at, make(_key(t), entity_type, entity_id, conf, how,
                                   {"matched_on": why, "linked_to": linked_to, "cluster_size": size}))
                         for t, at in zip(twin[0], twin[1]))
        if spread:
            group.sort(key=_first)
            out.extend(map(_second, group))
    return out


def _pinned(row, entity_type: str, make: Callable, new_id: Callable):  # noqa: ANN001, ANN202
    return make(row.key, entity_type, row.existing_entity_id or new_id(), 1.0, "manual", {"pinned": True})
