"""The sample-data generator: protocol shape, determinism, ground truth, realism, scaling."""
from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # no installed package / pytest pythonpath needed
    sys.path.insert(0, _ROOT)

from ingest_worker.generate import SAMPLE_DIR, STREAMS, generate

pytestmark = pytest.mark.unit

REQUIRED = {
    ("gong", "users"): ["id", "emailAddress", "firstName", "lastName"],
    ("gong", "extensiveCalls"): ["id", "metaData", "parties", "interaction", "content"],
    ("gong", "callTranscripts"): ["callId", "started", "transcript"],
    ("slack", "users"): ["id", "name", "real_name", "deleted", "is_bot", "profile"],
    ("slack", "channels"): ["id", "name"],
    ("slack", "channel_messages"): ["channel_id", "ts", "float_ts", "reply_count", "reply_users"],
    ("slack", "threads"): ["channel_id", "ts", "float_ts", "thread_ts", "user", "text"],
    ("hubspot", "owners"): ["id", "email", "firstName", "lastName", "userId", "archived"],
    ("salesforce", "User"): ["Id", "attributes", "SystemModstamp", "Email"],
    ("salesforce", "Account"): ["Id", "Name", "Website", "Industry"],
    ("salesforce", "Contact"): ["Id", "AccountId", "FirstName", "LastName", "Email", "Phone", "Title"],
    ("salesforce", "Lead"): ["Id", "FirstName", "LastName", "Email", "Company", "Status", "IsConverted"],
    ("salesforce", "Task"): ["Id", "WhoId", "WhatId", "Subject", "Description", "ActivityDate", "Status",
                             "TaskSubtype", "CallDurationInSeconds", "OwnerId"],
    ("salesforce", "Event"): ["Id", "WhoId", "WhatId", "Subject", "StartDateTime", "EndDateTime", "OwnerId"],
    ("salesforce", "Note"): ["Id", "ParentId", "Title", "Body", "CreatedDate"],
}
HS_CRM = ["contacts", "companies", "engagements_notes", "engagements_calls", "engagements_emails",
          "engagements_meetings"]
SF_PREFIX = {"User": "005", "Account": "001", "Contact": "003", "Lead": "00Q", "Task": "00T",
             "Event": "00U", "Note": "002"}


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.jsonl")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _records(root: Path, source: str, stream: str) -> list[dict]:
    out = []
    with open(root / source / f"{stream}.jsonl", encoding="utf-8") as f:
        for line in f:
            msg = json.loads(line)
            if msg["type"] == "RECORD":
                out.append(msg["record"]["data"])
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen1")
    counts = generate(root, scale=1, seed=7)
    return root, counts


def test_deterministic_same_seed_same_bytes(world, tmp_path):
    root, counts = world
    again = generate(tmp_path / "again", scale=1, seed=7)
    assert again == counts
    assert _tree_hash(tmp_path / "again") == _tree_hash(root)
    generate(tmp_path / "other", scale=1, seed=8)
    assert _tree_hash(tmp_path / "other") != _tree_hash(root)


def test_every_line_is_protocol_message_with_right_stream(world):
    root, counts = world
    for source, streams in STREAMS.items():
        for stream in streams:
            lines = (root / source / f"{stream}.jsonl").read_text(encoding="utf-8").splitlines()
            assert lines, (source, stream)
            msgs = [json.loads(x) for x in lines]
            assert msgs[-1]["type"] == "STATE"
            assert msgs[-1]["state"]["stream"]["stream_descriptor"]["name"] == stream
            recs = msgs[:-1]
            assert all(m["type"] == "RECORD" for m in recs)
            for m in recs:
                r = m["record"]
                assert r["stream"] == stream and isinstance(r["data"], dict)
                assert isinstance(r["emitted_at"], int) and r["emitted_at"] > 1_600_000_000_000
            assert len(recs) == counts[source][stream]


def test_required_keys_present(world):
    root, counts = world
    for (source, stream), keys in REQUIRED.items():
        bad = counts["malformed"][source].get(stream, 0)
        ok = [r for r in _records(root, source, stream) if all(k in r for k in keys)]
        assert len(ok) >= counts[source][stream] - bad > 0, (source, stream)
    for stream in HS_CRM:
        for r in (x for x in _records(root, "hubspot", stream) if "id" in x):
            assert {"createdAt", "updatedAt", "archived", "properties"} <= r.keys()
            for k, v in r["properties"].items():
                assert r["properties_" + k] == v
    for stream, prefix in SF_PREFIX.items():
        for r in _records(root, "salesforce", stream):
            if "Id" in r:
                assert len(r["Id"]) == 18 and r["Id"].startswith(prefix)
                assert r["attributes"]["type"] == stream


def test_gong_call_shape_and_transcripts(world):
    root, _ = world
    calls = {c["id"]: c for c in _records(root, "gong", "extensiveCalls") if "id" in c}
    users = {u["id"] for u in _records(root, "gong", "users")}
    for c in calls.values():
        assert c["metaData"]["id"] == c["id"]
        for p in c["parties"]:
            assert p["affiliation"] in ("Internal", "External", "Unknown")
            if p["affiliation"] == "Internal":
                assert p["userId"] in users and p["emailAddress"].endswith("@payready.com")
    questions = 0
    for t in _records(root, "gong", "callTranscripts"):
        if t.get("callId") is None:
            continue
        call = calls[t["callId"]]
        speakers = {p["speakerId"]: p["affiliation"] for p in call["parties"] if p["speakerId"]}
        last_end = -1
        sides = []
        for turn in t["transcript"]:
            assert turn["speakerId"] in speakers
            sides.append(speakers[turn["speakerId"]] == "Internal")
            for s in turn["sentences"]:
                assert s["start"] < s["end"] and s["start"] >= last_end
                last_end = s["end"]
                questions += s["text"].endswith("?")
        assert any(sides) and not all(sides)
    assert questions > 50


def test_slack_threads_come_later_and_repeat_parent(world):
    root, _ = world
    msgs = {(m["channel_id"], m["ts"]): m for m in _records(root, "slack", "channel_messages")}
    threads = _records(root, "slack", "threads")
    parents = [m for m in threads if m["ts"] == m["thread_ts"]]
    assert parents
    for m in threads:
        parent = msgs[(m["channel_id"], m["thread_ts"])]
        assert float(m["ts"]) >= float(parent["ts"])
    texts = " ".join(m.get("text", "") for m in msgs.values())
    assert re.search(r"<@U[0-9A-Z]+>", texts)
    assert any(m.get("subtype") == "bot_message" and m.get("bot_id") for m in msgs.values())


def test_ground_truth_covers_every_identity(world):
    root, _ = world
    truth = {}
    for line in (root / "ground_truth.jsonl").read_text().splitlines():
        g = json.loads(line)
        key = (g["source"], g["source_type"], g["source_id"])
        assert key not in truth
        assert re.fullmatch(r"[PC]\d{6,}", g["truth_id"])
        assert g["entity_type"] == ("person" if g["truth_id"][0] == "P" else "company")
        truth[key] = g
    expected = set()
    for source, stream, pk in [("gong", "users", "id"), ("slack", "users", "id"), ("hubspot", "owners", "id"),
                               ("hubspot", "contacts", "id"), ("hubspot", "companies", "id"),
                               ("salesforce", "User", "Id"), ("salesforce", "Contact", "Id"),
                               ("salesforce", "Lead", "Id"), ("salesforce", "Account", "Id")]:
        expected |= {(source, stream, str(r[pk])) for r in _records(root, source, stream) if r.get(pk)}
    for c in _records(root, "gong", "extensiveCalls"):
        if c.get("id"):
            expected |= {("gong", "parties", p["id"]) for p in c["parties"]}
    assert expected == set(truth)


def test_same_people_across_sources(world):
    root, _ = world
    sources = defaultdict(set)
    for line in (root / "ground_truth.jsonl").read_text().splitlines():
        g = json.loads(line)
        sources[g["truth_id"]].add(g["source"])
    assert sum(1 for s in sources.values() if len(s) >= 3) >= 20
    assert sum(1 for s in sources.values() if len(s) == 4) >= 5  # the reps, at least


def test_realistic_variation(world):
    root, _ = world
    hs = [r for r in _records(root, "hubspot", "contacts") if "id" in r]
    sf = _records(root, "salesforce", "Contact") + _records(root, "salesforce", "Lead")
    parties = [p for c in _records(root, "gong", "extensiveCalls") for p in c["parties"]]
    firsts = {r["properties"]["firstname"] for r in hs} | {p["name"].split()[0] for p in parties}
    assert firsts & {"Bob", "Liz", "Bill", "Mike", "Jen", "Kate", "Jim", "Rick", "Chris", "Tom", "Joe", "Alex"}
    emails = [r["properties"]["email"] or "" for r in hs] + [r.get("Email") or "" for r in sf]
    emails += [x for r in hs for x in (r["properties"]["hs_additional_emails"] or "").split(";") if x]
    assert any(e.endswith(("@gmail.com", "@yahoo.com")) for e in emails)
    assert any("+" in e.split("@")[0] for e in emails)
    assert any("," in (p["name"] or "") for p in parties)  # "Last, First"
    names = [r["properties"]["name"] for r in _records(root, "hubspot", "companies")]
    names += [r["Name"] for r in _records(root, "salesforce", "Account")]
    assert any(n.isupper() or "Corporation" in n for n in names) and any(", Inc." in n for n in names)
    bodies = " ".join(r["properties"]["hs_note_body"] for r in _records(root, "hubspot", "engagements_notes") if "id" in r)
    assert "<p>" in bodies and "<ul><li>" in bodies and "&amp;" in bodies and "<br>" in bodies
    assert any("é" in (p["name"] or "") for p in parties + [{"name": r["properties"]["firstname"]} for r in hs])


def test_malformed_counts(world):
    root, counts = world
    assert counts["malformed_total"] >= 8
    assert all(sum(m.values()) >= 2 for m in counts["malformed"].values())
    pk = {"gong": "id", "slack": "id", "hubspot": "id", "salesforce": "Id"}
    found = defaultdict(int)
    for source, streams in STREAMS.items():
        for stream in streams:
            for r in _records(root, source, stream):
                key = {"callTranscripts": "callId", "channel_messages": "ts", "threads": "ts",
                       "channels": "id"}.get(stream, pk[source])
                v = r.get(key)
                if not v or (key == "ts" and not re.fullmatch(r"\d+\.\d+", str(v))):
                    found[source] += 1
    assert dict(found) == {s: sum(m.values()) for s, m in counts["malformed"].items()}


def test_scale_two_doubles(world, tmp_path):
    _, one = world
    two = generate(tmp_path / "two", scale=2, seed=7)
    assert 1.9 * one["total_records"] <= two["total_records"] <= 2.1 * one["total_records"]
    assert 1.9 * one["ground_truth"] <= two["ground_truth"] <= 2.1 * one["ground_truth"]
    ids = [r["Id"] for r in _records(tmp_path / "two", "salesforce", "Contact") if "Id" in r]
    assert len(ids) == len(set(ids))


def test_bundled_sample_matches_generator(tmp_path):
    assert (SAMPLE_DIR / "ground_truth.jsonl").exists()
    size = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert size < 3_200_000
    generate(tmp_path / "s", scale=1, seed=7)
    assert _tree_hash(tmp_path / "s") == _tree_hash(SAMPLE_DIR)
