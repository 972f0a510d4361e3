"""Source processors: hand-built Airbyte records (per the connector schemas) to Outcomes."""
from __future__ import annotations

import copy
import datetime as dt

import pytest

from ingest_worker.model import (CALL, COMPANY, EMAIL, MEETING, NOTE, PERSON, TASK, THREAD,
                                 Identity, IdentityKey)
from ingest_worker.sources import PROCESSORS, Context, DictDirectory, process
from ingest_worker.sources import text

pytestmark = pytest.mark.unit

UTC = dt.timezone.utc


def ctx(*identities, bots=False):
    return Context(directory=DictDirectory(identities), include_bot_messages=bots)


def run(source, stream, records, context=None):
    before = copy.deepcopy(records)
    out = process(source, stream, records, context or ctx())
    assert records == before, "input records were mutated"
    assert out.processed + len(out.dead) == len(records)
    return out


# ----------------------------------------------------------------------------- registry / text


def test_registry_modules_expose_source_streams_and_process():
    for name, module in PROCESSORS.items():
        assert module.SOURCE == name
        assert isinstance(module.STREAMS, tuple) and module.STREAMS
        assert callable(module.process)
    assert PROCESSORS["gong"].STREAMS.index("users") < PROCESSORS["gong"].STREAMS.index(
        "extensiveCalls")
    assert PROCESSORS["slack"].STREAMS.index("users") < PROCESSORS["slack"].STREAMS.index(
        "channel_messages")


@pytest.mark.parametrize("source", ["gong", "slack", "hubspot", "salesforce"])
def test_unknown_stream_dead_letters_every_record(source):
    out = run(source, "nope", [{"id": "1"}, {"id": "2"}])
    assert out.processed == 0
    assert [d.reason for d in out.dead] == ["unknown stream nope"] * 2


def test_html_to_text_keeps_paragraphs_drops_script_and_unescapes():
    got = text.html_to_text("<div><p>Hello &amp; welcome</p><style>p{}</style>"
                            "<script>alert(1)</script><p>Next<br/>line &lt;3</p></div>")
    assert got == "Hello & welcome\n\nNext\nline <3"
    assert text.html_to_text("plain &amp; simple") == "plain & simple"
    assert text.html_to_text("  ") is None


@pytest.mark.parametrize("value, expected", [
    ("2024-03-01T10:00:00Z", dt.datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("2024-03-01T12:00:00+02:00", dt.datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("2024-03-01T10:00:00.000+0000", dt.datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("2024-03-01", dt.datetime(2024, 3, 1, tzinfo=UTC)),
    (1709287200, dt.datetime(2024, 3, 1, 10, tzinfo=UTC)),
    (1709287200000, dt.datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("1709287200000", dt.datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ("1709287200.000100", dt.datetime(2024, 3, 1, 10, 0, 0, 100, tzinfo=UTC)),
    (None, None),
])
def test_parse_time(value, expected):
    assert text.parse_time(value) == expected


def test_parse_time_rejects_garbage_and_helpers():
    with pytest.raises(ValueError):
        text.parse_time("next tuesday")
    assert text.normalize_email("  Bob@Acme.COM ") == "bob@acme.com"
    assert text.normalize_email("not an email") is None
    assert text.domain_of("https://www.Acme.com/about") == "acme.com"
    assert text.domain_of("jane@beta.io") == "beta.io"
    assert text.domain_of("gamma.org") == "gamma.org"
    assert text.safe_str(12.0) == "12" and text.safe_str("  ") is None
    assert text.slack_ts_ms("1700000000.000100") == 1700000000000


# ----------------------------------------------------------------------------- gong

GONG_CALL = {
    "id": 7782342274025937895,
    "metaData": {"id": "7782342274025937895", "title": "Acme discovery",
                 "started": "2024-03-01T10:00:00Z", "duration": 1800, "direction": "Outbound",
                 "url": "https://app.gong.io/call?id=7782342274025937895", "system": "Zoom",
                 "primaryUserId": "u1"},
    "parties": [
        {"id": "p1", "name": "Rita Rep", "emailAddress": "Rita@PayReady.com", "userId": "u1",
         "speakerId": "s1", "affiliation": "Internal", "methods": ["Invitee"]},
        {"id": "p2", "name": "Carl Customer", "emailAddress": "carl@acme.com", "speakerId": "s2",
         "affiliation": "External", "title": "CFO"},
    ],
    "interaction": {"speakers": [{"id": "s1", "userId": "u1", "talkTime": 900}],
                    "interactionStats": [{"name": "Talk Ratio", "value": 0.5}],
                    "questions": {"companyCount": 3, "nonCompanyCount": 1}},
    "content": {"topics": [{"name": "Pricing", "duration": 300}], "brief": "<p>Talked price</p>"},
    "media": {"audioUrl": "https://a"},
}


def test_gong_users_are_internal_identities():
    out = run("gong", "users", [{"id": "u1", "firstName": "Rita", "lastName": "Rep",
                                 "emailAddress": " Rita@PayReady.com", "title": "AE",
                                 "managerId": "m9"}])
    (ident,) = out.identities
    assert ident.key == IdentityKey("gong", "users", "u1")
    assert (ident.name, ident.emails, ident.title, ident.is_internal) == (
        "Rita Rep", ["rita@payready.com"], "AE", True)
    assert ident.attributes["managerId"] == "m9"


def test_gong_extensive_call_with_parties_and_stats():
    out = run("gong", "extensiveCalls", [GONG_CALL])
    (call,) = out.interactions
    assert call.key == IdentityKey("gong", "extensiveCalls", "7782342274025937895")
    assert call.kind == CALL and not call.partial
    assert call.occurred_at == dt.datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert (call.title, call.duration_s, call.direction) == ("Acme discovery", 1800, "outbound")
    assert call.url.startswith("https://app.gong.io")
    rep, customer = call.participants
    assert rep.identity == IdentityKey("gong", "parties", "p1")
    assert (rep.role, rep.speaker_id, rep.affiliation, rep.email) == (
        "rep", "s1", "Internal", "rita@payready.com")
    assert (customer.role, customer.speaker_id) == ("customer", "s2")
    assert call.metadata["gong_interaction"]["questions"]["companyCount"] == 3
    assert call.metadata["topics"] == ["Pricing"]
    assert call.metadata["extra"]["media"] == {"audioUrl": "https://a"}
    assert call.metadata["extra"]["metaData"]["system"] == "Zoom"
    assert call.body == "Talked price"
    parties = {i.key.source_id: i for i in out.identities}
    assert parties["p1"].key.source_type == "parties" and parties["p1"].is_internal is True
    assert parties["p1"].attributes["linked_identity"] == {
        "source": "gong", "source_type": "users", "source_id": "u1"}
    assert "linked_identity" not in parties["p2"].attributes
    assert parties["p2"].title == "CFO" and parties["p2"].is_internal is False


def test_gong_call_id_falls_back_to_top_level_id():
    rec = {"id": "123", "metaData": {"started": "2024-03-01T10:00:00Z"}}
    assert run("gong", "extensiveCalls", [rec]).interactions[0].key.source_id == "123"


@pytest.mark.parametrize("stream", ["callTranscripts", "transcripts"])
def test_gong_transcript_is_partial_call_with_one_turn_per_monologue(stream):
    rec = {"callId": "7782342274025937895", "started": "2024-03-01T10:00:00Z", "transcript": [
        {"speakerId": "s2", "topic": "Pricing", "sentences": [
            {"start": 65000, "end": 67000, "text": "What does it cost?"},
            {"start": 67100, "end": 69000, "text": "Roughly."}]},
        {"speakerId": "s1", "topic": None, "sentences": [
            {"start": 1000, "end": 4000, "text": "Hi Carl."}]},
    ]}
    out = run("gong", stream, [rec])
    (call,) = out.interactions
    assert call.partial and call.key == IdentityKey("gong", "extensiveCalls",
                                                    "7782342274025937895")
    first, second = call.turns  # sorted by start
    assert (first.turn_key, first.start_ms, first.end_ms, first.text) == (
        "s1:1000", 1000, 4000, "Hi Carl.")
    assert (second.turn_key, second.text, second.topic, second.end_ms) == (
        "s2:65000", "What does it cost? Roughly.", "Pricing", 69000)
    assert second.speaker_id == "s2" and second.speaker_name is None
    assert call.title is None and call.participants == []


def test_gong_transcript_names_speakers_when_parties_present():
    rec = {"callId": "c1", "parties": GONG_CALL["parties"], "transcript": [
        {"speakerId": "s2", "sentences": [{"start": 0, "end": 10, "text": "Hello"}]}]}
    (turn,) = run("gong", "callTranscripts", [rec]).interactions[0].turns
    assert turn.speaker_name == "Carl Customer"
    assert turn.speaker_identity == IdentityKey("gong", "parties", "p2")


def test_gong_malformed_records_dead_lettered_batch_goes_on():
    records = [GONG_CALL, {"metaData": {"title": "no id"}}, "garbage",
               {"id": "9", "metaData": {"id": "9", "started": "yesterday-ish"}},
               {"callId": "x"}]
    out = run("gong", "extensiveCalls", records[:4])
    assert out.processed == 1
    reasons = [d.reason for d in out.dead]
    assert "missing primary key" in reasons[0]
    assert "not a dict" in reasons[1]
    assert "unparseable time" in reasons[2]
    bad = run("gong", "callTranscripts", [{"transcript": []}, {"callId": "c", "transcript": 5}])
    assert bad.processed == 0 and len(bad.dead) == 2


# ----------------------------------------------------------------------------- slack

ALICE = Identity(IdentityKey("slack", "users", "UALICE"), PERSON, name="Alice Smith",
                 emails=["alice@payready.com"])
BOB = Identity(IdentityKey("slack", "users", "UBOB"), PERSON, name="Bob Jones")
GENERAL = Identity(IdentityKey("slack", "channels", "C1"), "channel", name="#deals")


def test_slack_users_and_channels():
    users = run("slack", "users", [{"id": "UALICE", "name": "alice", "real_name": "Alice Smith",
                                    "is_bot": False, "tz": "UTC",
                                    "profile": {"email": "Alice@PayReady.com", "title": "AE"}},
                                   {"id": "UBOT", "is_bot": True,
                                    "profile": {"real_name": "Deal Bot"}}])
    alice, bot = users.identities
    assert (alice.name, alice.emails, alice.title, alice.is_internal) == (
        "Alice Smith", ["alice@payready.com"], "AE", True)
    assert alice.attributes["is_bot"] is False and alice.attributes["tz"] == "UTC"
    assert bot.name == "Deal Bot" and bot.attributes["is_bot"] is True
    chans = run("slack", "channels", [{"id": "C1", "name": "deals", "is_private": False}])
    (chan,) = chans.identities
    assert (chan.key, chan.entity_type, chan.name) == (
        IdentityKey("slack", "channels", "C1"), "channel", "#deals")
    assert chans.interactions == []


def test_slack_thread_parent_then_replies_in_later_batch_with_mentions_and_bots():
    context = ctx(ALICE, BOB, GENERAL)
    parent = {"channel_id": "C1", "ts": "1700000000.000100", "thread_ts": "1700000000.000100",
              "user": "UALICE", "text": "Hey <@UBOB>, Acme wants a quote &amp; a demo",
              "reply_count": 2, "type": "message"}
    lone = {"channel_id": "C1", "ts": "1700000500.000000", "user": "UBOB", "text": "lunch?"}
    join = {"channel_id": "C1", "ts": "1700000600.000000", "user": "UBOB",
            "subtype": "channel_join", "text": "<@UBOB> has joined"}
    first = run("slack", "channel_messages", [parent, lone, join], context)
    assert first.processed == 3 and not first.dead
    by_key = {i.key.source_id: i for i in first.interactions}
    assert set(by_key) == {"C1:1700000000.000100", "C1:1700000500.000000"}
    thread = by_key["C1:1700000000.000100"]
    assert thread.kind == THREAD and thread.partial and thread.title == "#deals"
    assert thread.occurred_at == dt.datetime(2023, 11, 14, 22, 13, 20, 100, tzinfo=UTC)
    (turn,) = thread.turns
    assert turn.turn_key == "1700000000.000100" and turn.start_ms == 1700000000000
    assert turn.text == "Hey @Bob Jones, Acme wants a quote & a demo"
    assert turn.speaker_name == "Alice Smith"
    assert turn.speaker_identity == IdentityKey("slack", "users", "UALICE")
    roles = {(p.role, p.identity.source_id) for p in thread.participants}
    assert roles == {("author", "UALICE"), ("mentioned", "UBOB")}
    assert thread.metadata["extra"]["1700000000.000100"]["reply_count"] == 2

    replies = [
        {"channel_id": "C1", "ts": "1700000100.000200", "thread_ts": "1700000000.000100",
         "user": "UBOB", "text": "On it <@UNKNOWN>", "parent_user_id": "UALICE"},
        {"channel_id": "C1", "ts": "1700000200.000300", "thread_ts": "1700000000.000100",
         "bot_id": "B1", "subtype": "bot_message", "text": "Reminder!"},
        {"channel_id": "C1", "ts": "1700000150.000000", "thread_ts": "1700000000.000100",
         "user": "UALICE", "text": "thanks"},
    ]
    later = run("slack", "threads", replies, context)
    assert later.processed == 3 and not later.dead
    (reply_thread,) = later.interactions
    assert reply_thread.key == thread.key and reply_thread.partial
    assert reply_thread.occurred_at is None  # parent not in this batch: must not overwrite
    assert [t.turn_key for t in reply_thread.turns] == ["1700000100.000200",
                                                         "1700000150.000000"]
    assert reply_thread.turns[0].text == "On it @UNKNOWN"
    assert reply_thread.turns[0].speaker_name == "Bob Jones"

    with_bots = run("slack", "threads", replies, ctx(ALICE, BOB, GENERAL, bots=True))
    assert len(with_bots.interactions[0].turns) == 3


def test_slack_bad_messages_dead_lettered():
    out = run("slack", "channel_messages", [
        {"channel_id": "C1", "text": "no ts"},
        {"ts": "1700000000.1", "text": "no channel"},
        {"channel_id": "C1", "ts": "abc", "user": "U1", "text": "bad ts"},
        None,
        {"channel_id": "C1", "ts": "1700000000.000100", "user": "U1", "text": "ok"},
    ])
    assert out.processed == 1 and len(out.dead) == 4
    assert "missing primary key ts" in out.dead[0].reason
    assert "Slack ts" in out.dead[2].reason
    assert out.dead[3].record == {"value": None}


# ----------------------------------------------------------------------------- hubspot

NOTE_PROPS = {"hs_note_body": "<p>Spoke with <b>Carl</b></p><p>Next: demo</p>",
              "hs_timestamp": "2024-03-02T09:00:00Z", "hubspot_owner_id": "42",
              "hs_custom_field": "x"}


def nested(props, **top):
    return {"id": "n1", "createdAt": "2024-03-01T00:00:00Z", "properties": props, **top}


def flattened(props, **top):
    return {"id": "n1", "createdAt": "2024-03-01T00:00:00Z",
            **{f"properties_{k}": v for k, v in props.items()}, **top}


@pytest.mark.parametrize("shape", [nested, flattened,
                                   lambda p, **t: {**nested({"hs_note_body": None}, **t),
                                                   **flattened(p)}])
def test_hubspot_note_both_property_shapes(shape):
    rec = shape(NOTE_PROPS, contacts=["101", 102], companies=["201"])
    out = run("hubspot", "engagements_notes", [rec],
              ctx(Identity(IdentityKey("hubspot", "owners", "42"), PERSON, name="Olga Owner")))
    (note,) = out.interactions
    assert note.key == IdentityKey("hubspot", "engagements_notes", "n1") and note.kind == NOTE
    assert note.body == "Spoke with Carl\n\nNext: demo"
    assert note.occurred_at == dt.datetime(2024, 3, 2, 9, tzinfo=UTC)
    owner, *contacts = note.participants
    assert (owner.role, owner.identity, owner.name) == (
        "owner", IdentityKey("hubspot", "owners", "42"), "Olga Owner")
    assert [(c.role, c.identity.source_id) for c in contacts] == [("contact", "101"),
                                                                  ("contact", "102")]
    assert note.companies == [IdentityKey("hubspot", "companies", "201")]
    assert note.metadata["extra"]["properties"] == {"hs_custom_field": "x"}


def test_hubspot_engagement_kinds_titles_and_createdat_fallback():
    email = nested({"hs_email_subject": "Quote", "hs_email_html": "<div>Price &euro;5</div>",
                    "hs_email_direction": "INCOMING_EMAIL"})
    (e,) = run("hubspot", "engagements_emails", [email]).interactions
    assert (e.kind, e.title, e.body, e.direction) == (EMAIL, "Quote", "Price €5", "inbound")
    assert e.occurred_at == dt.datetime(2024, 3, 1, tzinfo=UTC)
    call = flattened({"hs_call_title": "Intro", "hs_call_body": "ok", "hs_call_duration": "90000",
                      "hs_timestamp": "1709287200000"})
    (c,) = run("hubspot", "engagements_calls", [call]).interactions
    assert (c.kind, c.title, c.duration_s) == (CALL, "Intro", 90.0)
    assert c.occurred_at == dt.datetime(2024, 3, 1, 10, tzinfo=UTC)
    (m,) = run("hubspot", "engagements_meetings",
               [nested({"hs_meeting_title": "Demo", "hs_meeting_body": "agenda"})]).interactions
    assert (m.kind, m.title, m.body) == (MEETING, "Demo", "agenda")


def test_hubspot_identities_both_shapes():
    contact = flattened({"email": "Carl@Acme.com", "firstname": "Carl", "lastname": "C",
                         "company": "Acme", "jobtitle": "CFO", "phone": "+1",
                         "associatedcompanyid": "201", "lifecyclestage": "lead"})
    contact["id"] = "101"
    (c,) = run("hubspot", "contacts", [contact]).identities
    assert (c.key, c.name, c.emails, c.company_name, c.title, c.phone) == (
        IdentityKey("hubspot", "contacts", "101"), "Carl C", ["carl@acme.com"], "Acme", "CFO", "+1")
    assert c.company_key == IdentityKey("hubspot", "companies", "201")
    assert c.attributes["properties"]["lifecyclestage"] == "lead"
    assoc = {"id": "102", "properties": {"email": "d@acme.com"}, "companies": ["202"]}
    assert run("hubspot", "contacts", [assoc]).identities[0].company_key.source_id == "202"
    company = {"id": "201", "properties": {"name": "Acme", "domain": "acme.com",
                                           "website": "https://www.acme.io"}}
    (co,) = run("hubspot", "companies", [company]).identities
    assert (co.entity_type, co.name, co.domains) == (COMPANY, "Acme", ["acme.com", "acme.io"])
    (o,) = run("hubspot", "owners", [{"id": "42", "email": "O@PayReady.com", "firstName": "Olga",
                                      "lastName": "Owner", "teams": []}]).identities
    assert (o.name, o.emails, o.is_internal) == ("Olga Owner", ["o@payready.com"], True)


def test_hubspot_malformed_records():
    out = run("hubspot", "engagements_notes", [
        {"properties": {"hs_note_body": "no id"}},
        nested({"hs_timestamp": "not a time"}),
        nested({}),
    ])
    assert out.processed == 1
    assert [("primary key" in d.reason, "unparseable time" in d.reason) for d in out.dead] == [
        (True, False), (False, True)]


# ----------------------------------------------------------------------------- salesforce


def test_salesforce_identities():
    out = run("salesforce", "Contact", [{"Id": "0031", "FirstName": "Carl", "LastName": "C",
                                         "Email": "CARL@acme.com", "AccountId": "0011",
                                         "attributes": {"type": "Contact"}}])
    (c,) = out.identities
    assert c.company_key == IdentityKey("salesforce", "Account", "0011")
    assert (c.name, c.emails) == ("Carl C", ["carl@acme.com"])
    assert c.attributes["attributes"] == {"type": "Contact"}
    (lead,) = run("salesforce", "Lead", [{"Id": "00Q1", "Name": "Lee", "Company": "Beta"}]).identities
    assert lead.company_name == "Beta" and lead.key.source_type == "Lead"
    (user,) = run("salesforce", "User", [{"Id": "0051", "Name": "Rita"}]).identities
    assert user.is_internal is True
    (acct,) = run("salesforce", "Account", [{"Id": "0011", "Name": "Acme",
                                             "Website": "http://acme.com/", "IsDeleted": True}]
                  ).identities
    assert (acct.entity_type, acct.domains, acct.attributes["deleted"]) == (
        COMPANY, ["acme.com"], True)


def test_salesforce_task_links_who_what_owner():
    task = {"Id": "00T1", "WhoId": "003ABC", "WhatId": "001XYZ", "OwnerId": "005R",
            "Subject": "Call Carl", "Description": "Discussed pricing",
            "ActivityDate": "2024-03-04", "CreatedDate": "2024-03-01T08:00:00.000+0000",
            "CallDurationInSeconds": 300, "CallType": "Outbound", "Status": "Completed",
            "IsDeleted": False}
    out = run("salesforce", "Task", [task], ctx(Identity(IdentityKey("salesforce", "User", "005R"),
                                                         PERSON, name="Rita Rep")))
    (t,) = out.interactions
    assert t.key == IdentityKey("salesforce", "Task", "00T1") and t.kind == TASK
    assert (t.title, t.body, t.duration_s, t.direction) == (
        "Call Carl", "Discussed pricing", 300, "outbound")
    assert t.occurred_at == dt.datetime(2024, 3, 4, tzinfo=UTC)
    assert [(p.role, p.identity) for p in t.participants] == [
        ("contact", IdentityKey("salesforce", "Contact", "003ABC")),
        ("owner", IdentityKey("salesforce", "User", "005R"))]
    assert t.participants[1].name == "Rita Rep"
    assert t.companies == [IdentityKey("salesforce", "Account", "001XYZ")]
    assert t.metadata["extra"]["Status"] == "Completed" and "deleted" not in t.metadata


def test_salesforce_event_note_lead_and_deleted():
    event = {"Id": "00U1", "WhoId": "00QL", "WhatId": "006OPP", "AccountId": "001A",
             "StartDateTime": "2024-03-05T15:00:00.000+0000", "DurationInMinutes": 30,
             "Subject": "Demo", "IsDeleted": True}
    (e,) = run("salesforce", "Event", [event]).interactions
    assert e.occurred_at == dt.datetime(2024, 3, 5, 15, tzinfo=UTC) and e.duration_s == 1800
    assert e.participants[0].identity == IdentityKey("salesforce", "Lead", "00QL")
    assert e.companies == [IdentityKey("salesforce", "Account", "001A")]
    assert e.metadata["related"] == {"WhatId": "006OPP"} and e.metadata["deleted"] is True
    notes = [{"Id": "0021", "ParentId": "001A", "Title": "T", "Body": "b",
              "CreatedDate": "2024-03-06T00:00:00Z"},
             {"Id": "0022", "ParentId": "003C", "Title": "T2", "Body": "<p>x</p>"}]
    n1, n2 = run("salesforce", "Note", notes).interactions
    assert n1.kind == NOTE and n1.companies == [IdentityKey("salesforce", "Account", "001A")]
    assert n2.participants[0].identity == IdentityKey("salesforce", "Contact", "003C")
    assert n2.body == "x" and n2.occurred_at is None


def test_salesforce_malformed_records():
    out = run("salesforce", "Task", [{"Subject": "no id"}, {"Id": "00T2", "ActivityDate": "x"},
                                     ["list"], {"Id": "00T3"}])
    assert out.processed == 1 and len(out.dead) == 3
    assert all(d.reason for d in out.dead) and out.dead[2].record == {"value": ["list"]}


def test_gong_ms_fast_path_for_ints_equals_the_float_path():
    from ingest_worker.sources import gong

    for value in (0, 1, -5, 123456789, 2**53, -(2**53), 2**53 + 1, 10**18, True, None, "", "12.6", 7.5, 8.5):
        n = text.number(value)
        assert gong._ms(value) == (int(round(n)) if n is not None else None), value
