"""Salesforce: User, Contact, Lead, Account identities and Task, Event, Note interactions.

Polymorphic references (WhoId, WhatId, Note.ParentId) only say what they point to through the
id's three-character key prefix, so linking goes by prefix.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from ingest_worker.model import (COMPANY, EVENT, NOTE, PERSON, TASK, Identity, IdentityKey,
                                 Interaction, Outcome, Participant)
from ingest_worker.sources.text import (directory_name, domain_of, html_to_text, join_name,
                                        leftover, normalize_email, number, required_time,
                                        require_id, run, safe_str)

SOURCE = "salesforce"
STREAMS = ("User", "Account", "Contact", "Lead", "Task", "Event", "Note")

# Key prefixes of the standard objects we link to.
_PERSON_PREFIXES = {"003": "Contact", "00Q": "Lead", "005": "User"}
_ACCOUNT_PREFIX = "001"
_DIRECTIONS = {"inbound": "inbound", "outbound": "outbound", "internal": "internal"}


def key(stream: str, record_id: str) -> IdentityKey:
    return IdentityKey(SOURCE, stream, record_id)


def person_key(record_id: Optional[str]) -> Optional[IdentityKey]:
    stream = _PERSON_PREFIXES.get((record_id or "")[:3])
    return key(stream, record_id) if stream and record_id else None


def account_key(record_id: Optional[str]) -> Optional[IdentityKey]:
    return key("Account", record_id) if record_id and record_id.startswith(_ACCOUNT_PREFIX) else None


def _deleted(rec: dict, target: dict) -> None:
    # Deleted rows still arrive (queryAll / soft delete); keep them visible rather than dead.
    if rec.get("IsDeleted") is True or str(rec.get("IsDeleted")).lower() == "true":
        target["deleted"] = True


def _person(stream: str, internal: Optional[bool]):
    def handle(rec: dict, ctx: Any, out: Outcome) -> None:
        rid = require_id(rec, "Id")
        email = normalize_email(rec.get("Email"))
        account = account_key(safe_str(rec.get("AccountId")))
        attributes = leftover(rec, {"Id", "Name", "FirstName", "LastName", "Email", "Phone",
                                    "MobilePhone", "Title", "Company", "AccountId"})
        _deleted(rec, attributes)
        out.identities.append(Identity(
            key=key(stream, rid), entity_type=PERSON,
            name=safe_str(rec.get("Name")) or join_name(rec.get("FirstName"), rec.get("LastName")),
            emails=[email] if email else [],
            phone=safe_str(rec.get("Phone")) or safe_str(rec.get("MobilePhone")),
            title=safe_str(rec.get("Title")), company_name=safe_str(rec.get("Company")),
            company_key=account, is_internal=internal, attributes=attributes,
        ))

    return handle


def _account(rec: dict, ctx: Any, out: Outcome) -> None:
    rid = require_id(rec, "Id")
    domain = domain_of(rec.get("Website"))
    attributes = leftover(rec, {"Id", "Name", "Website", "Phone"})
    _deleted(rec, attributes)
    out.identities.append(Identity(
        key=key("Account", rid), entity_type=COMPANY, name=safe_str(rec.get("Name")),
        domains=[domain] if domain else [], phone=safe_str(rec.get("Phone")),
        attributes=attributes,
    ))


# stream -> (kind, time fields in preference order, body field, title field)
_ACTIVITIES = {
    "Task": (TASK, ("ActivityDate", "CreatedDate"), "Description", "Subject"),
    "Event": (EVENT, ("StartDateTime", "ActivityDateTime", "CreatedDate"), "Description",
              "Subject"),
    "Note": (NOTE, ("CreatedDate",), "Body", "Title"),
}


def _activity(stream: str):
    kind, time_fields, body_field, title_field = _ACTIVITIES[stream]

    def handle(rec: dict, ctx: Any, out: Outcome) -> None:
        rid = require_id(rec, "Id")
        occurred = None
        for field in time_fields:
            occurred = required_time(rec.get(field), field)
            if occurred is not None:
                break

        participants: list[Participant] = []
        companies: list[IdentityKey] = []
        metadata: dict[str, Any] = {}
        refs = ("WhoId", "WhatId", "AccountId", "ParentId")
        for field in refs:
            ref = safe_str(rec.get(field))
            if not ref:
                continue
            person, account = person_key(ref), account_key(ref)
            if person is not None and field in ("WhoId", "ParentId"):
                participants.append(Participant(role="contact", identity=person,
                                                name=directory_name(ctx, person)))
            elif account is not None:
                if account not in companies:
                    companies.append(account)
            else:
                # e.g. an Opportunity or Case: kept so nothing is silently lost.
                metadata.setdefault("related", {})[field] = ref
        owner_id = safe_str(rec.get("OwnerId"))
        if owner_id:
            owner = key("User", owner_id)
            participants.append(Participant(role="owner", identity=owner,
                                            name=directory_name(ctx, owner)))

        duration = None
        if stream == "Task":
            duration = number(rec.get("CallDurationInSeconds"))
        elif stream == "Event":
            minutes = number(rec.get("DurationInMinutes"))
            duration = minutes * 60 if minutes is not None else None
        call_type = safe_str(rec.get("CallType"))
        _deleted(rec, metadata)
        consumed = {"Id", body_field, title_field, "OwnerId", "CallDurationInSeconds",
                    "DurationInMinutes", "CallType", *time_fields[:1], *refs}
        extra = leftover(rec, consumed)
        if extra:
            metadata["extra"] = extra
        out.interactions.append(Interaction(
            key=key(stream, rid), kind=kind, occurred_at=occurred,
            title=safe_str(rec.get(title_field)), body=html_to_text(rec.get(body_field)),
            duration_s=duration, direction=_DIRECTIONS.get((call_type or "").lower()),
            participants=participants, companies=companies, metadata=metadata,
        ))

    return handle


_HANDLERS = {"User": _person("User", True), "Contact": _person("Contact", None),
             "Lead": _person("Lead", None), "Account": _account,
             **{stream: _activity(stream) for stream in _ACTIVITIES}}


def process(stream: str, records: Iterable[dict], ctx: Any) -> Outcome:
    return run(stream, records, _HANDLERS.get(stream), ctx)
