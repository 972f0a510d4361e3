"""What the source processors produce: plain dataclasses, no database or Celery.

A processor turns Airbyte records of one stream into an :class:`Outcome`: interactions (whole or
partial), identities seen, and records it could not use (dead letters with a reason). The writer
(`ingest_worker.store`) upserts them keyed on ``(source, source_type, source_id)`` and merges
partial interactions that different streams contribute to (a Gong call from ``extensiveCalls`` and
its turns from ``callTranscripts``; a Slack thread from ``channel_messages`` and ``threads``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

PERSON = "person"
COMPANY = "company"

# Interaction kinds.
CALL, THREAD, NOTE, EMAIL, MEETING, TASK, EVENT = (
    "call", "thread", "note", "email", "meeting", "task", "event",
)


class IdentityKey(NamedTuple):
    """The contract key of anything seen in a source (DESIGN "Source identities").

    A tuple, not a frozen dataclass: keys are hashed and compared about 1.7M times per 100k
    ingested records (dict look-ups), and a tuple does both in C where the dataclass ran its
    generated ``__hash__``/``__eq__`` in Python (and built each key through ``object.__setattr__``).
    """

    source: str
    source_type: str
    source_id: str


@dataclass
class Identity:
    """A person or company as one source record describes it; the resolver links these."""

    key: IdentityKey
    entity_type: str  # PERSON or COMPANY
    name: Optional[str] = None
    emails: list[str] = field(default_factory=list)
    phone: Optional[str] = None
    title: Optional[str] = None
    company_name: Optional[str] = None  # persons: the employer as written in the record
    domains: list[str] = field(default_factory=list)  # companies: website / email domains
    company_key: Optional[IdentityKey] = None  # persons: the company identity they belong to
    is_internal: Optional[bool] = None  # True for our own reps (Gong users, HubSpot owners...)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Participant:
    """Someone taking part in an interaction, by identity key when the source gives one."""

    role: str  # "rep", "customer", "author", "attendee", "mentioned", "owner", "contact"
    identity: Optional[IdentityKey] = None
    name: Optional[str] = None
    email: Optional[str] = None
    affiliation: Optional[str] = None  # gong: "Internal" / "External" / "Unknown"
    speaker_id: Optional[str] = None  # gong: joins transcript turns


@dataclass
class Turn:
    """One utterance or message inside an interaction, ordered by ``start_ms``.

    ``turn_key`` is stable across re-deliveries (gong: speaker and start; slack: message ts), so
    a turn re-delivered later replaces itself rather than being added twice.
    """

    turn_key: str
    text: str
    start_ms: int = 0  # offset from the interaction start (gong) or epoch ms (slack)
    end_ms: Optional[int] = None
    speaker_id: Optional[str] = None
    speaker_name: Optional[str] = None
    speaker_identity: Optional[IdentityKey] = None
    topic: Optional[str] = None


@dataclass
class Interaction:
    """A conversation: call, thread, note, email, meeting, task or event.

    ``partial=True`` means the record contributes only some fields (typically turns); fields left
    None must not overwrite what another stream already stored.
    """

    key: IdentityKey  # source, stream of the interaction, its id (contract)
    kind: str
    occurred_at: Optional[dt.datetime] = None  # timezone-aware UTC
    title: Optional[str] = None
    body: Optional[str] = None  # plain text (HTML already converted)
    duration_s: Optional[float] = None
    direction: Optional[str] = None  # "inbound" / "outbound" / "internal" / None
    url: Optional[str] = None
    participants: list[Participant] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    companies: list[IdentityKey] = field(default_factory=list)  # associated company identities
    metadata: dict[str, Any] = field(default_factory=dict)  # unknown fields, vendor stats
    partial: bool = False


@dataclass
class DeadRecord:
    """A record a processor could not use: kept whole with the reason, the batch goes on."""

    stream: str
    reason: str
    record: dict[str, Any]


@dataclass
class Outcome:
    """Everything one batch of one stream produced."""

    interactions: list[Interaction] = field(default_factory=list)
    identities: list[Identity] = field(default_factory=list)
    dead: list[DeadRecord] = field(default_factory=list)
    processed: int = 0  # records used (each record is either processed or dead)

    def extend(self, other: "Outcome") -> None:
        self.interactions.extend(other.interactions)
        self.identities.extend(other.identities)
        self.dead.extend(other.dead)
        self.processed += other.processed
