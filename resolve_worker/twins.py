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
from operator import attrgetter
from typing import Callable, Optional, Sequence

_key = attrgetter("source", "source_type", "source_id")  # IdentityRow.key without a Python call


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
    ids = list(map(id, records))
    rows_of = Counter(ids)
    for i, rid in enumerate(ids):
        if rows_of[rid] == 1:  # most rows: a record of their own
            reps.append(i)
            rep_of.append(i)
            continue
        row = rows[i]
        if row.pinned or (protected and _key(row) in protected):
            reps.append(i)
            rep_of.append(i)
            continue
        link = links.get(rid, False)
        if link is False:
            link = links[rid] = self_link(records[i])
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


def of_reps(rows: Sequence, records: Sequence, reps: list[int], rep_of: list[int],
            self_links: dict[int, tuple]) -> Optional[list]:
    """Per representative (``reps`` order): None, or (its twin rows, their input positions, the
    self link (confidence, (method, evidence)) that ties them to it). None when nothing collapsed."""
    if len(reps) == len(rows):
        return None
    local = {rep: m for m, rep in enumerate(reps)}
    out: list = [None] * len(reps)
    for i, rep in enumerate(rep_of):
        if rep != i:
            m = local[rep]
            if out[m] is None:
                out[m] = ([], [], self_links[id(records[i])])
            out[m][0].append(rows[i])
            out[m][1].append(i)
    return out
