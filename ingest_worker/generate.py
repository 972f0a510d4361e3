"""Realistic, streaming sample data for the four sources in the "files" landing layout.

``generate(out_dir, scale, seed)`` writes ``<out>/<source>/<stream>.jsonl`` (Airbyte protocol
RECORD messages, one STATE message last in each file) and ``<out>/ground_truth.jsonl`` (who is
who: one line per source identity). Output is a pure function of ``(scale, seed)``: the anchor
date comes from the seed, never from the clock. Work is done one *scale unit* at a time (40
companies, 150 customer persons, 8 reps and their interactions), so memory does not grow with
``scale``; records are written as they are made.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import random
from pathlib import Path
from typing import Callable, Optional

from ingest_worker import generate_people as gp
from ingest_worker.generate_people import (
    HS_ENG, N_BOTS, N_CALLS, N_THREADS, PERSONS_PER_UNIT, SF_ACT, SOURCES, UTC,
    _fill, _name, _pick, _rep_for, _transcript, _when, _world,
)

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "common" / "sample_data"

STREAMS = {
    "gong": ["users", "extensiveCalls", "callTranscripts"],
    "slack": ["users", "channels", "channel_messages", "threads"],
    "hubspot": ["owners", "contacts", "companies", "engagements_notes", "engagements_calls",
                "engagements_emails", "engagements_meetings"],
    "salesforce": ["User", "Account", "Contact", "Lead", "Task", "Event", "Note"],
}
CURSORS = {"extensiveCalls": "started", "callTranscripts": "started", "channel_messages": "float_ts",
           "threads": "float_ts"}


def anchor_for(seed: int) -> dt.datetime:
    """The fixed "now" of a generated world (derived from the seed only)."""
    return dt.datetime(2025, 10, 1, 17, 0, tzinfo=UTC) + dt.timedelta(days=(seed * 37) % 120)


class _Out:
    """Open stream files, count lines, write ground truth; STATE messages on close."""

    def __init__(self, out: Path, anchor: dt.datetime):
        self.files, self.counts = {}, {s: {t: 0 for t in STREAMS[s]} for s in STREAMS}
        self.malformed = {s: {} for s in STREAMS}
        self.anchor = anchor
        self.sync_ms = int(anchor.timestamp() * 1000) + 3 * 3600_000
        for s, streams in STREAMS.items():
            (out / s).mkdir(parents=True, exist_ok=True)
            for t in streams:
                self.files[(s, t)] = open(out / s / f"{t}.jsonl", "w", encoding="utf-8", newline="\n")
        self.gt = open(out / "ground_truth.jsonl", "w", encoding="utf-8", newline="\n")
        self.n_truth = 0

    def rec(self, source: str, stream: str, data: dict, malformed: bool = False) -> None:
        n = self.counts[source][stream]
        msg = {"type": "RECORD", "record": {"stream": stream, "data": data,
                                            "emitted_at": self.sync_ms + SOURCES.index(source) * 60_000 + n // 25}}
        self.files[(source, stream)].write(json.dumps(msg, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.counts[source][stream] = n + 1
        if malformed:
            self.malformed[source][stream] = self.malformed[source].get(stream, 0) + 1

    def truth(self, source: str, source_type: str, source_id: str, entity_type: str, truth_id: str):
        self.gt.write(json.dumps({"source": source, "source_type": source_type, "source_id": str(source_id),
                                  "entity_type": entity_type, "truth_id": truth_id}) + "\n")
        self.n_truth += 1

    def close(self) -> None:
        for (s, t), f in self.files.items():
            state = {"type": "STATE", "state": {"type": "STREAM", "stream": {
                "stream_descriptor": {"name": t, "namespace": None},
                "stream_state": {CURSORS.get(t, "updatedAt"): gp.iso_z(self.anchor)}},
                "sourceStats": {"recordCount": float(self.counts[s][t])}}}
            f.write(json.dumps(state, separators=(",", ":")) + "\n")
            f.close()
        self.gt.close()


class _Ids:
    """Monotonic id counters shared by all units (so ids never collide across units)."""

    def __init__(self, seed: int):
        self.seed, self.n = seed, {}

    def next(self, kind: str) -> int:
        self.n[kind] = self.n.get(kind, 0) + 1
        return self.n[kind]

    def gong(self, kind: str) -> str:
        base = {"user": 234599484848423, "call": 778234227402593, "party": 491870023311870,
                "speaker": 612284700011344}[kind]
        return str(base * 10_000 + self.next("g" + kind) * 7919 + self.seed)

    def hs(self, kind: str) -> str:
        base = {"owner": 51_000_000, "user": 9_100_000, "contact": 1_000, "company": 5_200_000_000,
                "eng": 35_846_000_000}[kind]
        return str(base + self.next("h" + kind) * (1 if kind in ("owner", "contact") else 13))

    def sf(self, prefix: str) -> str:
        return gp.sf_id(prefix, 11_000_000 + self.next("s" + prefix) * 37)

    def slack(self, prefix: str) -> str:
        return gp.slack_id(prefix, self.seed, self.next("k" + prefix))


# --------------------------------------------------------------------------- gong
def _gong(rng, w, ids: _Ids, out: _Out, anchor) -> None:
    for r in w["reps"]:
        data = {"id": r["gong"], "emailAddress": r["email"], "created": gp.iso_gong(anchor - dt.timedelta(days=400)),
                "active": True, "emailAliases": [r["alias"]] if rng.random() < 0.5 else [],
                "firstName": r["first"], "lastName": r["last"], "title": r["title"],
                "phoneNumber": r["phone"], "extension": None,
                "managerId": w["reps"][0]["gong"] if r is not w["reps"][0] else None,
                "personalMeetingUrls": [f"https://zoom.us/j/{rng.randrange(10**9, 10**10)}"],
                "settings": {"webConferencesRecorded": True, "telephonyCallsImported": False},
                "meetingConsentPageUrl": None, "spokenLanguages": [{"language": "en-US", "primary": True}]}
        out.rec("gong", "users", data)
        out.truth("gong", "users", r["gong"], "person", r["truth"])
    calls = sorted((_when(rng, anchor), i) for i in range(N_CALLS))
    for n, (start, _) in enumerate(calls):
        c, cust = _pick(rng, w, None, k=rng.choice([1, 1, 2, 2, 3]))
        rep = _rep_for(rng, w, c)
        reps = [rep] + ([rng.choice([r for r in w["reps"] if r is not rep])] if rng.random() < 0.3 else [])
        kind = rng.choice(list(gp.CALL_TYPES))
        call_id = ids.gong("call")
        dur = rng.randrange(15, 61) * 60
        parties, ppl = [], []
        for r in reps:
            sid = ids.gong("speaker")
            parties.append({"id": ids.gong("party"), "emailAddress": r["email"], "name": f"{r['first']} {r['last']}",
                            "title": r["title"], "userId": r["gong"], "speakerId": sid, "affiliation": "Internal",
                            "phoneNumber": None, "methods": ["Invitee"], "context": []})
            ppl.append(("rep", r, sid))
        for p in cust:
            first, last = _name(rng, p, "gong", 0.5)
            name = f"{last}, {first}" if rng.random() < 0.08 else f"{first} {last}"
            email = None if rng.random() < 0.15 else (p.get("work2") if p.get("work2") and rng.random() < 0.5 else p["work"])
            spoke = rng.random() < 0.92 or p is cust[0]
            sid = ids.gong("speaker") if spoke else None
            parties.append({"id": ids.gong("party"), "emailAddress": email,
                            "name": name if email or rng.random() < 0.7 else p["phone"],
                            "title": p["title"] if rng.random() < 0.6 else None, "userId": None, "speakerId": sid,
                            "affiliation": "External" if email or rng.random() < 0.5 else "Unknown",
                            "phoneNumber": p["phone"] if email is None else None,
                            "methods": ["Invitee"] if email else ["Attendee"], "context": []})
            if spoke:
                ppl.append(("cust", p, sid))
        malformed = w["u"] == 0 and n == 7
        private = not malformed and rng.random() < 0.07
        turns, topics, talk = _transcript(rng, w, c, kind, ppl, dur)
        meta = {"id": call_id, "url": f"https://app.gong.io/call?id={call_id}",
                "title": f"{gp.company_variant(rng, c['base'], rng.choice([0, 1, 3]))} <> Pay Ready | {kind}",
                "scheduled": gp.iso_gong(start - dt.timedelta(minutes=rng.choice([0, 0, 2, 5]))),
                "started": gp.iso_gong(start), "duration": dur, "primaryUserId": rep["gong"],
                "direction": "Conference", "system": rng.choice(["Zoom", "Zoom", "Google Meet", "Microsoft Teams"]),
                "scope": "External", "media": "Video", "language": "eng", "workspaceId": "5562739194953732039",
                "sdrDisposition": None, "clientUniqueId": None, "customData": None, "purpose": None,
                "meetingUrl": f"https://zoom.us/j/{rng.randrange(10**9, 10**10)}", "isPrivate": private,
                "calendarEventId": f"{rng.getrandbits(64):016x}"}
        stats = [{"name": "Talk Ratio", "value": round(talk["rep"] / max(1, talk["rep"] + talk["cust"]), 2)},
                 {"name": "Longest Monologue", "value": rng.randrange(40, 240)},
                 {"name": "Longest Customer Story", "value": rng.randrange(20, 180)},
                 {"name": "Interactivity", "value": round(rng.uniform(2, 9), 1)},
                 {"name": "Patience", "value": round(rng.uniform(0.4, 2.5), 2)},
                 {"name": "Question Rate", "value": round(rng.uniform(0.5, 6), 1)}]
        data = {"id": call_id, "metaData": meta, "parties": parties,
                "interaction": {"speakers": [{"id": sid, "userId": x["gong"] if role == "rep" else None,
                                              "talkTime": talk["by"].get(sid, 0)} for role, x, sid in ppl],
                                "interactionStats": stats,
                                "questions": {"companyCount": talk["q_rep"], "nonCompanyCount": talk["q_cust"]},
                                "video": [{"name": "Presentation", "duration": rng.randrange(0, dur // 3)}]},
                "content": {"topics": topics, "brief": f"{c['base']} {kind.lower()} call: discussed "
                            + ", ".join(t["name"].lower() for t in topics[1:]) + ".",
                            "keyPoints": [{"text": _fill(rng, rng.choice(gp.NOTE_POINTS), w, c, cust[0] if cust else None)}],
                            "trackers": [{"id": "1", "name": "Competitors", "type": "KEYWORD", "count": talk["comp"]},
                                         {"id": "2", "name": "Pricing", "type": "KEYWORD", "count": talk["price"]}],
                            "callOutcome": {"id": "1", "category": "Answered", "name": rng.choice(
                                ["Next meeting scheduled", "Proposal sent", "No decision", "Closed won"])}},
                "collaboration": {"publicComments": []},
                "media": {"audioUrl": None, "videoUrl": None}}
        if malformed:  # no id anywhere: processors must dead-letter it
            data.pop("id")
            meta.pop("id")
            out.rec("gong", "extensiveCalls", data, malformed=True)
            continue
        out.rec("gong", "extensiveCalls", data)
        for pt in parties:
            tid = next((x["truth"] for role, x, sid in ppl if sid == pt["speakerId"] and sid), None)
            if tid is None:
                tid = _party_truth(pt, reps, cust)
            out.truth("gong", "parties", pt["id"], "person", tid)
        if not private:
            out.rec("gong", "callTranscripts", {"callId": call_id, "started": meta["started"], "transcript": turns})
    if w["u"] == 0:
        out.rec("gong", "callTranscripts", {"callId": None, "started": "not-a-date", "transcript": [
            {"speakerId": "1", "topic": None, "sentences": [{"start": 0, "end": 1000, "text": "orphan"}]}]},
                malformed=True)


def _party_truth(pt: dict, reps: list, cust: list) -> str:
    for r in reps:
        if pt["userId"] == r["gong"]:
            return r["truth"]
    for p in cust:
        # a party without an email is matched by phone only (None must not match a missing work2)
        if pt["phoneNumber"] == p["phone"] or (pt["emailAddress"] and pt["emailAddress"] in (p["work"], p.get("work2"))):
            return p["truth"]
    raise AssertionError("party without a person")


# --------------------------------------------------------------------------- slack
def _ts(t: dt.datetime, rng) -> str:
    return f"{int(t.timestamp())}.{rng.randrange(1, 999999):06d}"


def _slack(rng, w, ids: _Ids, out: _Out, anchor, seed: int) -> None:
    u = w["u"]
    bots = [("Gong", gp.slack_id("U", seed, -1), gp.slack_id("B", seed, -1)),
            ("HubSpot", gp.slack_id("U", seed, -2), gp.slack_id("B", seed, -2))]
    team, ext_team = "T0" + gp.slack_id("", seed, 0)[:8], "T0" + gp.slack_id("", seed, 1)[:8]
    created = int((anchor - dt.timedelta(days=500)).timestamp())
    def user(uid, name, real, display, email, title, ph, is_bot=False, deleted=False, tid=team):
        return {"id": uid, "team_id": tid, "name": name, "deleted": deleted, "real_name": real,
                "tz": "America/Los_Angeles", "tz_label": "Pacific Standard Time", "tz_offset": -28800,
                "is_admin": False, "is_owner": False, "is_bot": is_bot, "is_app_user": False,
                "is_restricted": tid != team, "updated": created,
                "profile": {"email": email, "real_name": real, "display_name": display, "title": title,
                            "phone": ph, "first_name": real.split(" ")[0], "last_name": " ".join(real.split(" ")[1:]),
                            "real_name_normalized": gp.strip_accents(real), "team": tid}}
    if u == 0:
        for k, (name, uid, bid) in enumerate(bots):
            d = user(uid, name.lower(), name, name, None, "", "", is_bot=True)
            d["profile"]["bot_id"] = bid
            out.rec("slack", "users", d)
            out.truth("slack", "users", uid, "person", f"P{PERSONS_PER_UNIT - N_BOTS + k + 1:06d}")
        out.rec("slack", "users", {"name": "ghost", "deleted": True, "profile": {}}, malformed=True)
    for r in w["reps"]:
        disp = r["nick"][0] if rng.random() < 0.5 else r["first"]
        out.rec("slack", "users", user(r["slack"], gp.slug(r["first"]) + "." + gp.slug(r["last"]),
                                       f"{r['first']} {r['last']}", disp, r["email"], r["title"], r["phone"]))
        out.truth("slack", "users", r["slack"], "person", r["truth"])
    for p in w["customers"]:
        if p["slack"]:
            first, last = _name(rng, p, "slack", 0.6)
            email = gp.plus_address(p["work"], "slack") if p["plus"] else p["work"]
            out.rec("slack", "users", user(p["slack"], gp.slug(first) + gp.slug(last)[:1], f"{first} {last}", first,
                                           email, p["title"], None, deleted=p["deleted"], tid=ext_team))
            out.truth("slack", "users", p["slack"], "person", p["truth"])
    sfx = f"-pod{u + 1}" if u else ""
    chans = [(ids.slack("C"), n + sfx, None) for n in ("sales", "deals", "customer-success", "competitive-intel")]
    chans += [(ids.slack("C"), f"ext-{gp.slug(c['base'])}-payready", c) for c in w["companies"] if c["shared"]]
    for cid, name, c in chans:
        out.rec("slack", "channels", {"id": cid, "name": name, "name_normalized": name, "is_channel": True,
                                      "is_private": False, "is_archived": False, "is_general": False,
                                      "created": created + rng.randrange(86400 * 30), "creator": w["reps"][0]["slack"],
                                      "is_shared": c is not None, "is_ext_shared": c is not None,
                                      "is_member": True, "num_members": rng.randrange(5, 40),
                                      "topic": {"value": "", "creator": "", "last_set": 0},
                                      "purpose": {"value": f"Shared channel with {c['base']}" if c else f"#{name}",
                                                  "creator": "", "last_set": 0}, "context_team_id": team})
    starts = sorted((_when(rng, anchor), i) for i in range(N_THREADS))
    for n, (t, _) in enumerate(starts):
        cid, cname, c = rng.choice(chans[4:]) if rng.random() < 0.25 and len(chans) > 4 else rng.choice(chans[:4])
        if c is None:
            c = rng.choices(w["companies"], w["cw"])[0]
        custs = [w["customers"][i] for i in c["people"]]
        slack_custs = [p for p in custs if p["slack"]]
        rep = _rep_for(rng, w, c)
        ts = _ts(t, rng)
        msg = {"type": "message", "channel_id": cid, "ts": ts, "float_ts": float(ts), "team": team}
        roll = rng.random()
        if roll < 0.1:
            name, buid, bid = bots[rng.randrange(2)]
            msg.update(subtype="bot_message", bot_id=bid, username=name,
                       text=(f"New call recorded: {c['base']} <> Pay Ready | {rng.choice(list(gp.CALL_TYPES))}"
                             if name == "Gong" else f"Deal stage changed: {c['base']} \u2192 "
                             + rng.choice(["Contract Sent", "Negotiation", "Closed Won", "Demo Scheduled"])))
        elif roll < 0.13:
            msg.update(subtype="channel_join", user=rep["slack"], text=f"<@{rep['slack']}> has joined the channel")
        else:
            author = rep
            if cname.startswith("ext-") and slack_custs and rng.random() < 0.5:
                author = rng.choice(slack_custs)
                text = _fill(rng, rng.choice(gp.SLACK_CUST), w, c)
            else:
                p = rng.choice(custs) if custs else None
                text = _fill(rng, rng.choice(gp.SLACK_REP), w, c, p, rep)
                if p and p["slack"] and rng.random() < 0.6:
                    text = text.replace(p["first"], f"<@{p['slack']}>", 1)
                if rng.random() < 0.2:
                    text = f"<@{rng.choice(w['reps'])['slack']}> " + text
            msg.update(user=author["slack"], text=text, client_msg_id=f"{rng.getrandbits(128):032x}")
        if u == 0 and n == 11:
            msg.update(ts="yesterday", float_ts=None)
            out.rec("slack", "channel_messages", msg, malformed=True)
            continue
        replies = []
        if "user" in msg and msg.get("subtype") is None and rng.random() < 0.55:
            rt = t
            for _ in range(rng.choice([1, 1, 2, 3, 4, 6])):
                rt += dt.timedelta(minutes=rng.choice([2, 5, 15, 40, 90, 300, 1500]))
                pool = w["reps"] + (slack_custs if cname.startswith("ext-") else [])
                ru = rng.choice([x for x in pool if x["slack"] != msg["user"]] or pool)
                text = _fill(rng, rng.choice(gp.SLACK_REPLY if ru in w["reps"] else gp.SLACK_CUST), w, c)
                if rng.random() < 0.25:
                    text = f"<@{msg['user']}> {text}"
                rts = _ts(rt, rng)
                replies.append({"type": "message", "channel_id": cid, "ts": rts, "float_ts": float(rts),
                                "thread_ts": ts, "parent_user_id": msg["user"], "user": ru["slack"], "text": text,
                                "team": team, "client_msg_id": f"{rng.getrandbits(128):032x}"})
            msg.update(thread_ts=ts, reply_count=len(replies),
                       reply_users=sorted({r["user"] for r in replies}),
                       reply_users_count=len({r["user"] for r in replies}), latest_reply=replies[-1]["ts"])
        else:
            msg.update(reply_count=0, reply_users=[])
        out.rec("slack", "channel_messages", msg)
        if replies:
            out.rec("slack", "threads", dict(msg))
            for r in replies:
                out.rec("slack", "threads", r)


# --------------------------------------------------------------------------- hubspot
def _hs(id_, created, updated, props: dict, **assoc) -> dict:
    d = {"id": id_, "createdAt": gp.iso_z(created), "updatedAt": gp.iso_z(max(created, updated)), "archived": False,
         "properties": props}
    d.update({"properties_" + k: v for k, v in props.items()})
    d.update(assoc)
    return d


def _note_html(rng, w, c, p, rep) -> str:
    pts = rng.sample(gp.NOTE_POINTS, rng.randrange(2, 5))
    items = "".join(f"<li>{html.escape(_fill(rng, x, w, c, p, rep), quote=False)}</li>" for x in pts)
    who = f"{p['first']} ({p['title']})" if p else "their team"
    return (f"<p>Spoke with {who} at {c['base']} re: pricing &amp; rollout.</p><ul>{items}</ul>"
            f"<p>Next steps: {_fill(rng, rng.choice(gp.REP_LINES['Next Steps']), w, c, p, rep)}<br>"
            f"&mdash; {rep['first']}</p>")


def _hubspot(rng, w, ids: _Ids, out: _Out, anchor) -> None:
    old = anchor - dt.timedelta(days=600)
    for r in w["reps"]:
        t = old + dt.timedelta(days=rng.randrange(200))
        out.rec("hubspot", "owners", {"id": r["hs"], "email": r["alias"] if rng.random() < 0.25 else r["email"],
                                      "firstName": r["first"], "lastName": r["last"], "userId": int(r["hs_user"]),
                                      "userIdIncludingInactive": int(r["hs_user"]), "createdAt": gp.iso_z(t),
                                      "updatedAt": gp.iso_z(t + dt.timedelta(days=30)), "archived": False,
                                      "teams": [{"id": "4412", "name": "Sales", "primary": True}]})
        out.truth("hubspot", "owners", r["hs"], "person", r["truth"])
    cust = w["customers"]
    for c in w["companies"]:
        if not c["hs"]:
            continue
        t = _when(rng, anchor, 500)
        name = gp.company_variant(rng, c["base"], c["hs_style"])
        props = {"name": name, "domain": c["domains"][0], "website": f"https://www.{c['domains'][0]}",
                 "hs_additional_domains": ";".join(c["domains"][1:]) or None, "industry": c["industry"].upper().replace(" ", "_"),
                 "city": rng.choice(["Austin", "Denver", "Chicago", "Boston", "Seattle", "Atlanta"]),
                 "numberofemployees": str(rng.choice([45, 120, 350, 900, 2400])),
                 "hubspot_owner_id": w["reps"][c["owner"]]["hs"], "lifecyclestage": rng.choice(["lead", "opportunity", "customer"]),
                 "createdate": gp.iso_z(t), "hs_lastmodifieddate": gp.iso_z(anchor - dt.timedelta(days=rng.randrange(1, 30))),
                 "hs_object_id": c["hs"]}
        out.rec("hubspot", "companies", _hs(c["hs"], t, anchor - dt.timedelta(days=rng.randrange(1, 30)), props,
                                            contacts=[cust[i]["hs"] for i in c["people"] if cust[i]["hs"]]))
        out.truth("hubspot", "companies", c["hs"], "company", c["truth"])
    for p in cust:
        if not p["hs"]:
            continue
        c, t = w["companies"][p["co"]], _when(rng, anchor, 400)
        first, last = _name(rng, p, "hubspot", 0.3)
        if rng.random() < 0.03:
            first, last = f"{first} {last}", None
        email = gp.plus_address(p["work"], "hubspot") if p["plus"] and rng.random() < 0.6 else p["work"]
        extra = [x for x in (p["personal"], p.get("work2")) if x]
        if p["personal"] and rng.random() < 0.15:
            email, extra = p["personal"], [p["work"]] + extra[1:]
        props = {"email": email, "firstname": first, "lastname": last,
                 "company": gp.company_variant(rng, c["base"], rng.choice([0, 1, 3, 4])), "jobtitle": p["title"],
                 "phone": p["phone"] if rng.random() < 0.7 else None, "hs_additional_emails": ";".join(extra) or None,
                 "associatedcompanyid": c["hs"], "hubspot_owner_id": w["reps"][c["owner"]]["hs"],
                 "lifecyclestage": rng.choice(["lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity"]),
                 "createdate": gp.iso_z(t), "lastmodifieddate": gp.iso_z(anchor - dt.timedelta(hours=rng.randrange(24, 900))),
                 "hs_object_id": p["hs"]}
        out.rec("hubspot", "contacts", _hs(p["hs"], t, anchor - dt.timedelta(days=rng.randrange(1, 40)), props,
                                           companies=[c["hs"]] if c["hs"] else []))
        out.truth("hubspot", "contacts", p["hs"], "person", p["truth"])
    if w["u"] == 0:
        out.rec("hubspot", "contacts", {"createdAt": gp.iso_z(anchor), "archived": False,
                                        "properties": {"email": "nobody@example.com"}}, malformed=True)
    for stream, count in HS_ENG.items():
        for n, (t, _) in enumerate(sorted((_when(rng, anchor), i) for i in range(count))):
            c, ppl = _pick(rng, w, "hs", k=rng.choice([1, 1, 1, 2]))
            rep, p = _rep_for(rng, w, c), (ppl[0] if ppl else None)
            eid = ids.hs("eng")
            props = {"hs_timestamp": gp.iso_z(t), "hubspot_owner_id": rep["hs"], "hs_createdate": gp.iso_z(t),
                     "hs_lastmodifieddate": gp.iso_z(t + dt.timedelta(minutes=rng.randrange(1, 3000))),
                     "hs_object_id": eid}
            if stream == "engagements_notes":
                props["hs_note_body"] = _note_html(rng, w, c, p, rep)
            elif stream == "engagements_calls":
                props.update(hs_call_title=f"Call with {p['first'] if p else c['base']}",
                             hs_call_body=_note_html(rng, w, c, p, rep),
                             hs_call_duration=str(rng.randrange(60, 3600) * 1000),
                             hs_call_direction=rng.choice(["OUTBOUND", "OUTBOUND", "INBOUND"]),
                             hs_call_status="COMPLETED", hs_call_to_number=p["phone"] if p else None,
                             hs_call_has_transcript=str(rng.random() < 0.3).lower(), hs_call_transcription_id=None)
            elif stream == "engagements_emails":
                inbound = p is not None and rng.random() < 0.35
                text = _fill(rng, rng.choice(gp.EMAIL_BODIES), w, c, p, rep)
                pe = (p["personal"] if p and p["personal"] and rng.random() < 0.3 else p["work"]) if p else None
                props.update(hs_email_subject=_fill(rng, rng.choice(gp.EMAIL_SUBJECTS), w, c, p, rep),
                             hs_email_text=text, hs_email_html="<div>" + text.replace("\n", "<br>") + "</div>",
                             hs_email_direction="INCOMING_EMAIL" if inbound else "EMAIL", hs_email_status="SENT",
                             hs_email_from_email=pe if inbound else rep["email"],
                             hs_email_to_email=rep["email"] if inbound else pe)
            else:
                props.update(hs_meeting_title=f"{c['base']} <> Pay Ready - {rng.choice(list(gp.CALL_TYPES))}",
                             hs_meeting_body=_note_html(rng, w, c, p, rep), hs_meeting_start_time=gp.iso_z(t),
                             hs_meeting_end_time=gp.iso_z(t + dt.timedelta(minutes=rng.choice([30, 45, 60]))),
                             hs_meeting_outcome=rng.choice(["COMPLETED", "COMPLETED", "NO_SHOW", "RESCHEDULED"]),
                             hs_meeting_location="Zoom")
            rec = _hs(eid, t, t + dt.timedelta(minutes=5), props, contacts=[x["hs"] for x in ppl],
                      companies=[c["hs"]] if c["hs"] else [], deals=[])
            bad = w["u"] == 0 and n == 3 and stream in ("engagements_notes", "engagements_calls")
            if bad:
                rec.pop("id")
            out.rec("hubspot", stream, rec, malformed=bad)


# --------------------------------------------------------------------------- salesforce
def _sf(typ: str, id_, t: dt.datetime, mod: dt.datetime, **fields) -> dict:
    d = {"attributes": {"type": typ, "url": f"/services/data/v59.0/sobjects/{typ}/{id_}"}, "Id": id_}
    d.update(fields)
    d.update(IsDeleted=False, CreatedDate=gp.iso_sf(t), LastModifiedDate=gp.iso_sf(max(t, mod)),
             SystemModstamp=gp.iso_sf(max(t, mod)))
    return d


def _salesforce(rng, w, ids: _Ids, out: _Out, anchor) -> None:
    old = anchor - dt.timedelta(days=700)
    for r in w["reps"]:
        out.rec("salesforce", "User", _sf("User", r["sf"], old, old + dt.timedelta(days=rng.randrange(300)),
                Username=r["email"] + ".prod", Email=r["email"], FirstName=r["first"], LastName=r["last"],
                Name=f"{r['first']} {r['last']}", Alias=(r["first"][0] + r["last"][:4]).lower(), Title=r["title"],
                Phone=r["phone"], IsActive=True, UserType="Standard", CompanyName="Pay Ready"))
        out.truth("salesforce", "User", r["sf"], "person", r["truth"])
    for c in w["companies"]:
        if c["sf"]:
            t = _when(rng, anchor, 600)
            dom = c["domains"][-1] if rng.random() < 0.3 else c["domains"][0]
            out.rec("salesforce", "Account", _sf("Account", c["sf"], t, anchor - dt.timedelta(days=rng.randrange(1, 60)),
                    Name=gp.company_variant(rng, c["base"], c["sf_style"]),
                    Website=rng.choice([f"www.{dom}", f"https://{dom}", f"http://www.{dom}/"]),
                    Industry=c["industry"], Type=rng.choice(["Prospect", "Customer - Direct"]),
                    NumberOfEmployees=rng.choice([45, 120, 350, 900]), OwnerId=w["reps"][c["owner"]]["sf"],
                    ParentId=None, BillingCity=rng.choice(["Austin", "Denver", "Chicago", "Boston"])))
            out.truth("salesforce", "Account", c["sf"], "company", c["truth"])
    for p in w["customers"]:
        if not p["sf"]:
            continue
        c, t = w["companies"][p["co"]], _when(rng, anchor, 400)
        first, last = _name(rng, p, "salesforce", 0.1)
        owner, mod = w["reps"][c["owner"]]["sf"], anchor - dt.timedelta(days=rng.randrange(1, 50))
        if p["sf_kind"] == "Contact":
            email = p.get("work2") if p.get("work2") and rng.random() < 0.5 else p["work"]
            out.rec("salesforce", "Contact", _sf("Contact", p["sf"], t, mod, AccountId=c["sf"], FirstName=first,
                    LastName=last, Name=f"{first} {last}", Email=email, Phone=p["phone"], Title=p["title"], OwnerId=owner))
            out.truth("salesforce", "Contact", p["sf"], "person", p["truth"])
        lead_id = p["sf"] if p["sf_kind"] == "Lead" else (ids.sf("00Q") if rng.random() < 0.15 else None)
        if lead_id:
            conv = lead_id != p["sf"]
            email = p["personal"] if p["personal"] and rng.random() < 0.4 else p["work"]
            if w["u"] and random.Random(f"inbox:{p['truth']}").random() < 0.05:
                # a lead captured from a team mailbox: several people share it (not in the bundled sample)
                email = random.Random(p["truth"]).choice(gp.SHARED_INBOXES) + "@" + c["domains"][0]
            out.rec("salesforce", "Lead", _sf("Lead", lead_id, t - dt.timedelta(days=20), mod, FirstName=first,
                    LastName=last, Name=f"{first} {last}", Email=email, Title=p["title"],
                    Company=gp.company_variant(rng, c["base"], rng.randrange(7)), Phone=p["phone"],
                    Status="Closed - Converted" if conv else rng.choice(["Open - Not Contacted", "Working - Contacted"]),
                    IsConverted=conv, ConvertedContactId=p["sf"] if conv else None,
                    ConvertedAccountId=c["sf"] if conv else None, LeadSource=rng.choice(["Web", "Event", "Referral"]),
                    OwnerId=owner))
            out.truth("salesforce", "Lead", lead_id, "person", p["truth"])
    if w["u"] == 0:
        out.rec("salesforce", "Contact", {"attributes": {"type": "Contact"}, "FirstName": "No", "LastName": "Id"},
                malformed=True)
    for typ, count in SF_ACT.items():
        prefix = {"Task": "00T", "Event": "00U", "Note": "002"}[typ]
        for n, (t, _) in enumerate(sorted((_when(rng, anchor), i) for i in range(count))):
            c, ppl = _pick(rng, w, "sf")
            rep, p = _rep_for(rng, w, c), (ppl[0] if ppl else None)
            who = p["sf"] if p else None
            what = c["sf"] if (p is None or p["sf_kind"] == "Contact") else None
            rid, mod = ids.sf(prefix), t + dt.timedelta(minutes=rng.randrange(1, 600))
            if typ == "Task":
                sub = rng.choice(["Call", "Call", "Email", "Email", "Task"])
                subj = _fill(rng, {"Call": "Call with {first}", "Email": "Email: {subject}"}.get(
                    sub, rng.choice(gp.TASK_SUBJECTS)), w, c, p, rep)
                desc = (_fill(rng, rng.choice(gp.EMAIL_BODIES), w, c, p, rep) if sub == "Email" else
                        " ".join(_fill(rng, x, w, c, p, rep) for x in rng.sample(gp.NOTE_POINTS, 2)))
                rec = _sf("Task", rid, t, mod, WhoId=who, WhatId=what, Subject=subj, Description=desc,
                          ActivityDate=t.date().isoformat(), Status="Completed", Priority="Normal", TaskSubtype=sub,
                          CallDurationInSeconds=rng.randrange(60, 2400) if sub == "Call" else None,
                          CallType="Outbound" if sub == "Call" else None, OwnerId=rep["sf"])
                if w["u"] == 0 and n in (4, 9):
                    rec.pop("Id")
                    out.rec("salesforce", "Task", rec, malformed=True)
                    continue
            elif typ == "Event":
                mins = rng.choice([30, 30, 45, 60])
                rec = _sf("Event", rid, t - dt.timedelta(days=rng.randrange(1, 10)), mod, WhoId=who, WhatId=what,
                          Subject=_fill(rng, rng.choice(gp.EVENT_SUBJECTS), w, c, p, rep),
                          Description=_fill(rng, rng.choice(gp.NOTE_POINTS), w, c, p, rep),
                          StartDateTime=gp.iso_sf(t), EndDateTime=gp.iso_sf(t + dt.timedelta(minutes=mins)),
                          ActivityDateTime=gp.iso_sf(t), DurationInMinutes=mins, Location="Zoom", OwnerId=rep["sf"])
            else:
                parent = what if (what and rng.random() < 0.6) or not who else who
                body = "\n".join("- " + _fill(rng, x, w, c, p, rep)
                                 for x in rng.sample(gp.NOTE_POINTS, rng.randrange(2, 5)))
                rec = _sf("Note", rid, t, mod, ParentId=parent, Title=f"{c['base']} - {rng.choice(list(gp.CALL_TYPES))} notes",
                          Body=body, IsPrivate=False, OwnerId=rep["sf"])
            out.rec("salesforce", typ, rec)


def generate(out_dir: Path, scale: int = 1, seed: int = 7,
             progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Write the sample landing folder; returns counts (see module docstring).

    ``progress(done_units, total_units)`` is called after each scale unit.
    """
    out_dir = Path(out_dir)
    anchor = anchor_for(seed)
    out, ids = _Out(out_dir, anchor), _Ids(seed)
    try:
        for u in range(max(1, int(scale))):
            rng = random.Random(f"payready:{seed}:{u}")
            w = _world(rng, u, ids, anchor)
            _gong(random.Random(f"gong:{seed}:{u}"), w, ids, out, anchor)
            _slack(random.Random(f"slack:{seed}:{u}"), w, ids, out, anchor, seed)
            _hubspot(random.Random(f"hubspot:{seed}:{u}"), w, ids, out, anchor)
            _salesforce(random.Random(f"sf:{seed}:{u}"), w, ids, out, anchor)
            if progress:
                progress(u + 1, scale)
    finally:
        out.close()
    result = {s: dict(out.counts[s]) for s in STREAMS}
    result["malformed"] = {s: dict(m) for s, m in out.malformed.items()}
    result["malformed_total"] = sum(sum(m.values()) for m in out.malformed.values())
    result["ground_truth"] = out.n_truth
    result["total_records"] = sum(sum(out.counts[s].values()) for s in STREAMS)
    result["anchor"] = anchor.isoformat()
    return result
