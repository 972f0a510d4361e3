"""Gong: users (reps), extensiveCalls (one call each) and transcripts (turns of a call).

A call and its transcript arrive in different streams and batches, so transcripts produce a
*partial* interaction under the call's key; the writer merges them.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from ingest_worker.model import (CALL, PERSON, Identity, IdentityKey, Interaction, Outcome,
                                 Participant, Turn)
from ingest_worker.sources.text import (BadRecord, html_to_text, join_name, key_dict, leftover,
                                        normalize_email, number, required_time, require_id, run,
                                        safe_str)

SOURCE = "gong"
CALLS = "extensiveCalls"
# `transcripts` / `call_transcripts` are older names of `callTranscripts`.
STREAMS = ("users", "extensiveCalls", "callTranscripts", "transcripts", "call_transcripts")

_DIRECTIONS = {"inbound": "inbound", "outbound": "outbound", "internal": "internal"}
_ROLES = {"internal": "rep", "external": "customer"}


def user_key(user_id: str) -> IdentityKey:
    return IdentityKey(SOURCE, "users", user_id)


def party_key(party_id: str) -> IdentityKey:
    return IdentityKey(SOURCE, "parties", party_id)


def call_key(call_id: str) -> IdentityKey:
    return IdentityKey(SOURCE, CALLS, call_id)


def _users(rec: dict, ctx: Any, out: Outcome) -> None:
    uid = require_id(rec, "id")
    email = normalize_email(rec.get("emailAddress"))
    emails = [email] if email else []
    for alias in rec.get("emailAliases") or []:
        alias = normalize_email(alias)
        if alias and alias not in emails:
            emails.append(alias)
    out.identities.append(Identity(
        key=user_key(uid), entity_type=PERSON,
        name=join_name(rec.get("firstName"), rec.get("lastName")),
        emails=emails, phone=safe_str(rec.get("phoneNumber")), title=safe_str(rec.get("title")),
        is_internal=True,
        attributes=leftover(rec, {"id", "firstName", "lastName", "emailAddress", "emailAliases",
                                  "phoneNumber", "title"}),
    ))


def _party(party: dict, call_id: str, out: Outcome) -> Participant:
    pid = safe_str(party.get("id"))
    affiliation = safe_str(party.get("affiliation"))
    email = normalize_email(party.get("emailAddress"))
    name = safe_str(party.get("name"))
    speaker_id = safe_str(party.get("speakerId"))
    user_id = safe_str(party.get("userId"))
    key = party_key(pid) if pid else None
    if key is not None:
        attributes = leftover(party, {"id", "name", "emailAddress", "title", "phoneNumber",
                                      "affiliation"})
        attributes["call_id"] = call_id
        if affiliation:
            attributes["affiliation"] = affiliation
        if user_id:
            # The party is one of our reps: the resolver can link it to the users identity.
            attributes["linked_identity"] = key_dict(user_key(user_id))
        internal = {"internal": True, "external": False}.get((affiliation or "").lower())
        out.identities.append(Identity(
            key=key, entity_type=PERSON, name=name, emails=[email] if email else [],
            phone=safe_str(party.get("phoneNumber")), title=safe_str(party.get("title")),
            is_internal=internal, attributes=attributes,
        ))
    return Participant(
        role=_ROLES.get((affiliation or "").lower(), "attendee"), identity=key, name=name,
        email=email, affiliation=affiliation, speaker_id=speaker_id,
    )


def _calls(rec: dict, ctx: Any, out: Outcome) -> None:
    meta = rec.get("metaData") if isinstance(rec.get("metaData"), dict) else {}
    # metaData.id is always a string; the top-level copy may be a lossy JSON number.
    call_id = safe_str(meta.get("id")) or require_id(rec, "id")
    started = required_time(meta.get("started") or rec.get("started"), "metaData.started")
    if started is None:
        started = required_time(meta.get("scheduled"), "metaData.scheduled")
    parties = rec.get("parties") or []
    if not isinstance(parties, list):
        raise BadRecord("parties is not a list")
    participants = [_party(p, call_id, out) for p in parties if isinstance(p, dict)]

    content = rec.get("content") if isinstance(rec.get("content"), dict) else {}
    metadata: dict[str, Any] = {}
    if isinstance(rec.get("interaction"), dict):
        metadata["gong_interaction"] = rec["interaction"]
    if content:
        metadata["gong_content"] = content
        topics = [safe_str(t.get("name")) for t in content.get("topics") or []
                  if isinstance(t, dict)]
        metadata["topics"] = [t for t in topics if t]
    raw_direction = safe_str(meta.get("direction"))
    if raw_direction:
        metadata["gong_direction"] = raw_direction
    meta_rest = leftover(meta, {"id", "title", "started", "duration", "direction", "url"})
    extra = leftover(rec, {"id", "metaData", "parties", "interaction", "content"})
    if meta_rest:
        extra["metaData"] = meta_rest
    if extra:
        metadata["extra"] = extra

    out.interactions.append(Interaction(
        key=call_key(call_id), kind=CALL, occurred_at=started,
        title=safe_str(meta.get("title")),
        body=html_to_text(content.get("brief")) if content else None,
        duration_s=number(meta.get("duration")),
        direction=_DIRECTIONS.get((raw_direction or "").lower()),
        url=safe_str(meta.get("url")),
        participants=participants, metadata=metadata,
    ))


def _ms(value: Any) -> Optional[int]:
    if type(value) is int and -_EXACT <= value <= _EXACT:  # the usual case; float() keeps it exact
        return value
    n = number(value)
    return int(round(n)) if n is not None else None


_EXACT = 2**53


def _transcripts(rec: dict, ctx: Any, out: Outcome) -> None:
    call_id = require_id(rec, "callId", "id")
    transcript = rec.get("transcript")
    if transcript is None:
        transcript = []
    if not isinstance(transcript, list):
        raise BadRecord("transcript is not a list")
    # `started` is the parent call's start, copied by the connector as the incremental cursor.
    started = required_time(rec.get("started"), "started")

    # Only some variants carry the call's parties; otherwise names are joined by the writer.
    by_speaker: dict[str, dict] = {}
    for party in rec.get("parties") or []:
        if isinstance(party, dict) and safe_str(party.get("speakerId")):
            by_speaker[safe_str(party.get("speakerId"))] = party

    turns: list[Turn] = []
    seen: set[str] = set()
    for segment in transcript:
        if not isinstance(segment, dict):
            continue
        sentences = [s for s in segment.get("sentences") or [] if isinstance(s, dict)]
        texts = [safe_str(s.get("text")) for s in sentences]
        text = " ".join(t for t in texts if t)
        if not text:
            continue
        starts = [ms for ms in (_ms(s.get("start")) for s in sentences) if ms is not None]
        ends = [ms for ms in (_ms(s.get("end")) for s in sentences) if ms is not None]
        start = starts[0] if starts else 0
        speaker_id = safe_str(segment.get("speakerId"))
        turn_key = f"{speaker_id}:{start}"
        if turn_key in seen:  # a re-sent segment in the same record must not double the text
            continue
        seen.add(turn_key)
        party = by_speaker.get(speaker_id or "")
        pid = safe_str(party.get("id")) if party else None
        turns.append(Turn(
            turn_key=turn_key, text=text, start_ms=start, end_ms=ends[-1] if ends else None,
            speaker_id=speaker_id, speaker_name=safe_str(party.get("name")) if party else None,
            speaker_identity=party_key(pid) if pid else None,
            topic=safe_str(segment.get("topic")),
        ))
    turns.sort(key=lambda t: t.start_ms)
    extra = leftover(rec, {"callId", "id", "transcript", "started", "parties"})
    out.interactions.append(Interaction(
        key=call_key(call_id), kind=CALL, occurred_at=started, turns=turns, partial=True,
        metadata={"extra": extra} if extra else {},
    ))


_HANDLERS = {"users": _users, "extensiveCalls": _calls, "callTranscripts": _transcripts,
             "transcripts": _transcripts, "call_transcripts": _transcripts}


def process(stream: str, records: Iterable[dict], ctx: Any) -> Outcome:
    return run(stream, records, _HANDLERS.get(stream), ctx)
