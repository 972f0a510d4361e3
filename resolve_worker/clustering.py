"""Clustering that does not chain: union-find with vetoes checked at every merge.

Links are applied best first. Two clusters join only when the link is at or above the threshold
and no member of one vetoes a member of the other (the caller's ``conflicts`` test, e.g. names
that cannot be one person), no two different anchors (pinned or manual entity ids) meet, and no
cannot-link from a manual split separates them. Must-links (manual merges) are applied first and
ignore vetoes. Members are summarised per cluster (a few distinct names / domains), so the veto
costs O(distinct values), not O(members).
"""
from __future__ import annotations

from operator import itemgetter
from typing import Callable, Hashable, Iterable, Optional


class Clusters:
    def __init__(self, n: int, summarise: Callable[[int], object]):
        self.parent = list(range(n))
        # per root: .conflicts(other), .absorb(other), .merged_by_hand() and .manual; made when a merge first asks,
        # since most records never meet another (and absorbed ones are dropped)
        self.summary: list = [None] * n
        self._summarise = summarise
        self.anchor: list[Optional[str]] = [None] * n
        self.cannot: dict[int, set[int]] = {}  # per root, only the few a manual split names

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def set_anchor(self, x: int, entity_id: str) -> None:
        self.anchor[self.find(x)] = entity_id

    def add_cannot_link(self, group_a: Iterable[int], group_b: Iterable[int], tag: int) -> None:
        for x in group_a:
            self.cannot.setdefault(self.find(x), set()).add(tag)
        for x in group_b:
            self.cannot.setdefault(self.find(x), set()).add(-tag)

    def blocked(self, ra: int, rb: int) -> Optional[str]:
        if self.anchor[ra] and self.anchor[rb] and self.anchor[ra] != self.anchor[rb]:
            return "different_anchor"
        if self.cannot and ra in self.cannot and rb in self.cannot and \
                any(-t in self.cannot[rb] for t in self.cannot[ra]):
            return "manual_split"
        if self._summary(ra).conflicts(self._summary(rb)):
            return "conflict"
        return None

    def union(self, a: int, b: int, force: bool = False, manual: bool = False) -> bool:
        """Join two clusters unless vetoed. ``force`` skips the evidence veto (members that already
        share an entity); ``manual`` skips every check (a person decided)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not manual:
            reason = self.blocked(ra, rb)
            if reason and not (force and reason == "conflict"):
                return False
        if ra > rb:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.anchor[ra] = self.anchor[ra] or self.anchor[rb]
        mine = self._summary(ra)
        if rb in self.cannot:
            self.cannot.setdefault(ra, set()).update(self.cannot.pop(rb))
        mine.absorb(self._summary(rb))
        if manual:
            mine.merged_by_hand()
        self.summary[rb] = None
        return True

    def _summary(self, root: int):  # noqa: ANN202
        made = self.summary[root]
        if made is None:
            made = self.summary[root] = self._summarise(root)
        return made

    def groups(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return out


def apply_links(clusters: Clusters, links: Iterable[tuple[float, int, int, Hashable]], threshold: float
                ) -> dict[tuple[int, int], Hashable]:
    """Join along links (confidence, a, b, payload) best first; returns the links that were applied."""
    applied: dict[tuple[int, int], Hashable] = {}
    find = clusters.find
    # reverse=True keeps equal confidences in their given order, as a stable sort on -conf would
    for conf, a, b, payload in sorted(links, key=itemgetter(0), reverse=True):
        if conf < threshold:
            break
        if find(a) == find(b) or clusters.union(a, b):
            applied[(a, b)] = payload
    return applied
