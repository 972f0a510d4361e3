"""Pure source processors: Airbyte record ``data`` dicts in, :class:`Outcome` out.

Each module (gong, slack, hubspot, salesforce) exposes ``SOURCE``, ``STREAMS`` (the order the
streams must be processed in, identity streams first) and ``process(stream, records, ctx)``.
The only outside knowledge a processor needs (e.g. a Slack user's name for a mention) comes
through ``ctx.directory``, so processors never touch a database.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Protocol, runtime_checkable

from ingest_worker.model import DeadRecord, Identity, IdentityKey, Outcome


@runtime_checkable
class Directory(Protocol):
    """Identities already known (stored earlier or seen in this run), looked up by key."""

    def get(self, key: IdentityKey) -> Optional[Identity]: ...


class DictDirectory:
    """In-memory Directory: tests, and the writer feeding identity streams before activity."""

    def __init__(self, identities: Iterable[Identity] = ()) -> None:
        self._by_key: dict[IdentityKey, Identity] = {}
        for identity in identities:
            self.add(identity)

    def add(self, identity: Identity) -> None:
        self._by_key[identity.key] = identity

    def get(self, key: IdentityKey) -> Optional[Identity]:
        return self._by_key.get(key)

    def __len__(self) -> int:
        return len(self._by_key)


@dataclass
class Context:
    directory: Directory
    include_bot_messages: bool = False


# Imported after the classes above so the modules can refer to this package while it loads.
from ingest_worker.sources import gong, hubspot, salesforce, slack  # noqa: E402

PROCESSORS = {"gong": gong, "slack": slack, "hubspot": hubspot, "salesforce": salesforce}


def process(source: str, stream: str, records: Iterable[Any], ctx: Context) -> Outcome:
    module = PROCESSORS.get(source)
    if module is None:
        return Outcome(dead=[DeadRecord(stream, f"unknown source {source}",
                                        r if isinstance(r, dict) else {"value": r})
                             for r in records])
    return module.process(stream, records, ctx)


__all__ = ["PROCESSORS", "Context", "Directory", "DictDirectory", "process",
           "gong", "slack", "hubspot", "salesforce"]
