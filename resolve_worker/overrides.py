"""Manual decisions (merge, split, pin) as stored rows and as constraints for the resolver. Pure.

* ``merge``: every identity in ``identity_keys`` is one entity, ``entity_id`` (the kept one).
* ``split``: ``identity_keys`` form the entity ``entity_id``, kept apart from ``apart_keys``.
* ``pin``: the one identity in ``identity_keys`` belongs to ``entity_id`` and evidence never moves it.

Later decisions win: a key named by a newer merge or split leaves the groups of older ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from resolve_worker.matching import Constraints, Key

ACTIONS = ("merge", "split", "pin")


@dataclass
class Override:
    action: str
    entity_type: str
    entity_id: str
    identity_keys: list[Key]
    apart_keys: list[Key]


def as_key(value: Iterable) -> Key:
    source, source_type, source_id = (str(v) for v in value)
    return (source, source_type, source_id)


def constraints_and_pins(overrides: list[Override]) -> tuple[Constraints, dict[Key, str]]:
    """Constraints for the clustering and the pins (key -> entity id), oldest decision first."""
    owner: dict[Key, int] = {}
    pins: dict[Key, str] = {}
    for n, o in enumerate(overrides):
        for k in o.identity_keys:
            if o.action == "pin":
                pins[k] = o.entity_id
                owner.pop(k, None)
            else:
                owner[k] = n
                pins.pop(k, None)
    out = Constraints()
    for n, o in enumerate(overrides):
        if o.action == "pin":
            continue
        keys = [k for k in o.identity_keys if owner.get(k) == n]
        if keys:
            out.must.append((keys, o.entity_id))
        if o.action == "split" and o.apart_keys:
            out.cannot.append((keys, list(o.apart_keys)))
    return out, pins
