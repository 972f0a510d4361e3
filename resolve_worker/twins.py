"""Identical identities (twins) resolved once: collapse before blocking, fan out after clustering.

A rep on every call, a contact in two tools: at 100k identities a third of the person rows (and
a third of the company rows) say exactly what another row says. Such rows compare the same way
with everyone, and with each other at their self-score, so blocking, scoring and clustering
them one by one is repeated work. Rows that could behave differently are never collapsed:
pinned rows, rows a manual decision or a source link names, and rows whose existing entity,
changed flag or source link differ (incremental runs), or whose record would not link to itself.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Optional, Sequence


def collapse(rows: Sequence, records: Sequence, self_link: Callable[[object], Optional[tuple]],
             protected: set) -> tuple[list[int], list[int], dict[int, tuple]]:
    """(representative row indices, the representative of each row, self link per record id).

    ``records[i]`` is row i's record; rows sharing one record object are candidates.
    ``self_link(record)`` gives (confidence, evidence) of a record against itself when that link
    would be accepted, else None (then its rows stay apart, as they would have). ``protected``:
    keys of rows that must stay their own node.
    """
    reps: list[int] = []
    rep_of: list[int] = []
    first: dict[tuple, int] = {}
    links: dict[int, Optional[tuple]] = {}
    rows_of = Counter(map(id, records))
    for i, (row, rec) in enumerate(zip(rows, records)):
        rid = id(rec)
        if rows_of[rid] == 1 or row.pinned or (protected and row.key in protected):
            reps.append(i)
            rep_of.append(i)
            continue
        link = links.get(rid, False)
        if link is False:
            link = links[rid] = self_link(rec)
        if link is None:
            reps.append(i)
            rep_of.append(i)
            continue
        twin_key = (rid, row.existing_entity_id, row.changed, row.linked_key)
        rep = first.setdefault(twin_key, i)
        if rep == i:
            reps.append(i)
        rep_of.append(rep)
    return reps, rep_of, {k: v for k, v in links.items() if v is not None}


def weights(reps: list[int], rep_of: list[int]) -> list[int]:
    """How many rows each representative stands for (entity ids go to the bigger clusters first)."""
    count: dict[int, int] = {}
    for rep in rep_of:
        count[rep] = count.get(rep, 0) + 1
    return [count[r] for r in reps]


def fan_out(rep_maps: list, rows: Sequence, records: Sequence, reps: list[int], rep_of: list[int],
            self_links: dict[int, tuple], make_mapping: Callable) -> list:
    """One mapping per row (in row order) from the representatives' mappings.

    A twin joins its representative's entity, linked to the representative by their self-score
    (the evidence an identical identity gives); a representative that was alone gets that link
    too. ``cluster_size`` counts rows, not representatives.
    """
    if len(reps) == len(rows):
        return rep_maps
    by_key = {m.key: m for m in rep_maps}  # the clustering returns them group by group
    by_rep = {rep: by_key[rows[rep].key] for rep in reps}
    twins_of: dict[int, list[int]] = {}
    for i, rep in enumerate(rep_of):
        if rep != i:
            twins_of.setdefault(rep, []).append(i)
    size: dict[str, int] = {}
    for rep, mapping in by_rep.items():
        if "cluster_size" in mapping.evidence:
            size[mapping.entity_id] = size.get(mapping.entity_id, 0) + 1 + len(twins_of.get(rep, ()))
    out = []
    for i, row in enumerate(rows):
        rep = rep_of[i]
        mapping = by_rep[rep]
        if rep == i:
            twins = twins_of.get(i)
            # an identical identity is the plainest evidence, as good as any other link it has
            if twins and (mapping.method == "singleton" or
                          self_links[id(records[i])][0] >= mapping.confidence):
                conf, (method, why) = self_links[id(records[i])]
                mapping = make_mapping(row.key, mapping.entity_type, mapping.entity_id, conf, method,
                                       {"matched_on": why, "linked_to": list(rows[twins[0]].key),
                                        "cluster_size": 0})
            if "cluster_size" in mapping.evidence:
                mapping.evidence["cluster_size"] = size[mapping.entity_id]
            out.append(mapping)
            continue
        conf, (method, why) = self_links[id(records[i])]
        out.append(make_mapping(row.key, mapping.entity_type, mapping.entity_id, conf, method,
                                {"matched_on": why, "linked_to": list(rows[rep].key),
                                 "cluster_size": size[mapping.entity_id]}))
    return out
