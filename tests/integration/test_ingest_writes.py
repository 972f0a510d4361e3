"""The set-based writer against real Postgres: unchanged interactions are not re-chunked, changed ones
are, a batch repeating a key keeps its last version, and chunks cut from a batch equal chunks cut
from the stored rows."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from common import db
from ingest_worker import rechunk, store
from ingest_worker.model import CALL, PERSON, Identity, IdentityKey, Interaction, Outcome, Participant, Turn

UTC = dt.timezone.utc


def _call(call_id: str, title: str, turns: list[tuple[str, str, int]], partial: bool = False) -> Interaction:
    return Interaction(
        key=IdentityKey("gong", "extensiveCalls", call_id), kind=CALL,
        occurred_at=None if partial else dt.datetime(2026, 10, 1, 10, tzinfo=UTC),
        title=None if partial else title, partial=partial,
        participants=[] if partial else [Participant(role="rep", identity=IdentityKey("gong", "parties", "p1"),
                                                     name="Ada Park", speaker_id="s1")],
        turns=[Turn(turn_key=f"{spk}:{start}", text=text, start_ms=start, speaker_id=spk) for spk, text, start in turns])


def _write(settings, *interactions: Interaction, identities=()) -> store.WriteStats:
    with db.transaction(settings) as conn:
        return store.write_outcome(conn, Outcome(interactions=list(interactions), identities=list(identities),
                                                 processed=len(interactions)), None, "gong", {})


def _chunks(settings, call_id: str) -> dict:
    with db.transaction(settings) as conn:
        rows = conn.execute(sa.text(
            "SELECT c.id, c.ordinal, c.content_hash, c.text, c.xmin::text AS version FROM chunks c "
            "JOIN interactions i ON i.id = c.interaction_id WHERE i.source_id = :id ORDER BY c.ordinal"),
            {"id": call_id}).all()
    return {r.ordinal: r for r in rows}


def test_unchanged_interactions_are_not_rechunked_and_changed_ones_are(domain):
    first = _write(domain, _call("c1", "Kickoff", [("s1", "Hello there.", 0)]),
                   _call("c2", "Renewal", [("s1", "Pricing is fine.", 0)]))
    assert first.rechunked == 2 and first.chunks_changed == 2
    c1, c2 = _chunks(domain, "c1"), _chunks(domain, "c2")

    again = _write(domain, _call("c1", "Kickoff", [("s1", "Hello there.", 0)]),
                   _call("c2", "Renewal", [("s1", "Pricing is fine.", 0)]))
    assert again.rechunked == 0 and again.chunks_changed == 0
    assert _chunks(domain, "c1") == c1 and _chunks(domain, "c2") == c2, "rows not even rewritten (same xmin)"

    edited = _write(domain, _call("c1", "Kickoff", [("s1", "Hello there.", 0)]),
                    _call("c2", "Renewal", [("s1", "Pricing is too high.", 0)]))
    assert edited.rechunked == 1 and edited.chunks_changed == 1
    assert _chunks(domain, "c1") == c1
    after = _chunks(domain, "c2")
    assert after[0].id == c2[0].id and after[0].content_hash != c2[0].content_hash
    assert "Pricing is too high." in after[0].text and "Ada Park" in after[0].text


def test_partial_turns_rechunk_the_stored_call(domain):
    _write(domain, _call("c3", "Discovery", []))
    before = _chunks(domain, "c3")
    stats = _write(domain, _call("c3", "", [("s1", "We need SSO.", 5000)], partial=True))
    assert stats.rechunked == 1
    after = _chunks(domain, "c3")
    assert after[0].id == before[0].id
    assert after[0].text.startswith("Discovery") and "[00:05] Ada Park: We need SSO." in after[0].text


def test_a_batch_repeating_a_key_keeps_the_last_version(domain):
    person = IdentityKey("gong", "users", "u9")
    stats = _write(domain,
                   _call("c4", "Old title", [("s1", "First take.", 0), ("s1", "Second take.", 0)]),
                   _call("c4", "New title", [("s1", "Third take.", 0)]),
                   identities=[Identity(key=person, entity_type=PERSON, name="Old Name"),
                               Identity(key=person, entity_type=PERSON, name="New Name")])
    assert stats.interactions == 1 and stats.identities == 1
    with db.transaction(domain) as conn:
        title = conn.execute(sa.text("SELECT title FROM interactions WHERE source_id = 'c4'")).scalar()
        turns = conn.execute(sa.text("SELECT t.text FROM interaction_turns t JOIN interactions i "
                                     "ON i.id = t.interaction_id WHERE i.source_id = 'c4'")).scalars().all()
        name = conn.execute(sa.text("SELECT name FROM source_identities WHERE source_id = 'u9'")).scalar()
    assert (title, turns, name) == ("New title", ["Third take."], "New Name")


def test_chunks_cut_from_the_batch_equal_chunks_cut_from_the_stored_rows(domain):
    turns = [("s2", "Tie at the same start.", 1000), ("s1", "Another one at it.", 1000),
             ("s1", "Card 4111 1111 1111 1111 on file. " + "word " * 300, 2000)]
    stats = _write(domain, _call("c5", "Tie-break", turns))
    assert stats.rechunked == 1
    with db.transaction(domain) as conn:
        iid = conn.execute(sa.text("SELECT id FROM interactions WHERE source_id = 'c5'")).scalar()
        heads, stored_turns = rechunk.from_db(conn, [iid])
        assert rechunk.write(conn, heads, stored_turns, stored=True) == 0, "re-reading changes no chunk"
    texts = [r.text for r in _chunks(domain, "c5").values()]
    assert len(texts) > 1 and "4111 1111" not in " ".join(texts) and "[CARD]" in texts[0]


def _line(stream: str, data: dict) -> str:
    import json

    return json.dumps({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": 1}})


def test_identities_from_earlier_batches_and_earlier_runs_name_the_speakers(domain, tmp_path):
    """The run's identity cache: users written by an earlier batch of the same run, and by an
    earlier run, both name message authors and mentions."""
    from common import runs, settings as settings_mod
    from ingest_worker import pipeline

    folder = tmp_path / "landing" / "slack"
    folder.mkdir(parents=True)
    (folder / "users.jsonl").write_text(_line("users", {"id": "U1", "real_name": "Ada Park"}) + "\n")
    (folder / "channel_messages.jsonl").write_text(_line("channel_messages", {
        "channel_id": "C1", "ts": "1790000000.000100", "user": "U1", "text": "hello"}) + "\n")
    settings = settings_mod._replace(domain, landing_dir=tmp_path / "landing", batch_size=1)

    def sync() -> None:
        run = runs.start_run(settings, ["slack"], trigger="test")
        pipeline.process_source(settings, "slack", run.run_id)
        runs.finish_run(settings, run.run_id)

    sync()  # users then messages, one record per batch
    with (folder / "users.jsonl").open("a") as fh:
        fh.write(_line("users", {"id": "U2", "real_name": "Bo Chen"}) + "\n")
    with (folder / "channel_messages.jsonl").open("a") as fh:
        fh.write(_line("channel_messages", {"channel_id": "C1", "ts": "1790000001.000100", "user": "U1",
                                            "text": "ping <@U2>", "thread_ts": "1790000000.000100"}) + "\n")
    sync()  # U1 comes from the earlier run, U2 from this run's users batch
    with db.transaction(settings) as conn:
        turns = conn.execute(sa.text(
            "SELECT t.speaker_name, t.text FROM interaction_turns t JOIN interactions i ON i.id = t.interaction_id "
            "WHERE i.source = 'slack' ORDER BY t.start_ms")).all()
    assert [tuple(t) for t in turns] == [("Ada Park", "hello"), ("Ada Park", "ping @Bo Chen")]


def test_children_land_on_their_interaction_with_and_without_a_known_id(domain):
    """Child rows carry the id RETURNING gave, or are matched by key when it gave none (unchanged
    interaction): both ways they attach to the right interaction, and a wrong key attaches nothing."""
    from ingest_worker import upserts

    _write(domain, _call("k1", "One", [("s1", "First.", 0)]), _call("k2", "Two", [("s1", "Second.", 0)]))
    with db.transaction(domain) as conn:
        ids = dict(conn.execute(sa.text("SELECT source_id, id FROM interactions WHERE source_id IN ('k1', 'k2')")).all())
        items = [_call("k1", "One", [("s1", "First.", 0), ("s1", "More.", 5)]),
                 _call("k2", "Two", [("s1", "Second.", 0), ("s1", "Also.", 5)]),
                 _call("missing", "Nope", [("s1", "Lost.", 0)])]
        turns_of = {i.key: upserts.turn_rows(i) for i in items}
        participants_of = {i.key: upserts.participant_rows(i) for i in items}
        known = {items[0].key: ids["k1"]}  # k2 (and the missing key) go by key
        changed = upserts.upsert_children(conn, items, turns_of, participants_of, known)
        assert changed == {ids["k1"], ids["k2"]}
        rows = conn.execute(sa.text(
            "SELECT i.source_id, t.turn_key FROM interaction_turns t JOIN interactions i ON i.id = t.interaction_id "
            "WHERE i.source_id IN ('k1', 'k2', 'missing') ORDER BY 1, 2")).all()
    assert [tuple(r) for r in rows] == [("k1", "s1:0"), ("k1", "s1:5"), ("k2", "s1:0"), ("k2", "s1:5")]


_TABLES = ("interactions", "interaction_turns", "participants", "chunks", "source_identities")


def _xact_writes(conn) -> dict[str, tuple[int, int]]:
    """Rows inserted and updated per table by this backend's not yet reported transactions
    (Postgres' own counters; they are only reported between transactions, so two readings in one
    transaction differ by exactly what it wrote in between)."""
    rows = conn.execute(sa.text(
        "SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables WHERE schemaname = current_schema() "
        "AND relname = ANY(:t)"), {"t": list(_TABLES)}).all()
    return {r.relname: (r.n_tup_ins, r.n_tup_upd) for r in rows}


def _written(before: dict, after: dict) -> dict[str, tuple[int, int]]:
    return {t: (after[t][0] - before[t][0], after[t][1] - before[t][1]) for t in _TABLES}


def test_a_new_interaction_row_is_written_once_with_its_content_hash(domain):
    """New interactions are cut before the insert, so their row goes in with its hash: no second
    write of every new row (an UPDATE would count in n_tup_upd). That holds for a partial one too
    (looked up first: absent, so new), and the hash equals the one cut from the stored state."""
    with db.transaction(domain) as conn:
        before = _xact_writes(conn)
        stats = store.write_outcome(conn, Outcome(interactions=[
            _call("w1", "Once", [("s1", "Only one write.", 0)]), _call("w2", "Twice?", []),
            _call("w3", "", [("s1", "Turns before their call.", 0)], partial=True)], processed=3), None, "gong", {})
        inserted, updated = _written(before, _xact_writes(conn))["interactions"]
        assert stats.rechunked == 3 and inserted == 3
        assert updated == 0, "no new row is written twice"
        stored = dict(conn.execute(sa.text(
            "SELECT source_id, content_hash FROM interactions WHERE source_id IN ('w1', 'w2', 'w3')")).all())
        ids = dict(conn.execute(sa.text(
            "SELECT source_id, id FROM interactions WHERE source_id IN ('w1', 'w2', 'w3')")).all())
        heads, turns = rechunk.from_db(conn, list(ids.values()))
        recut = {h.source_id: rechunk.cut(h, turns.get(h.id, []))[1] for h in heads}
    assert stored == recut and all(stored.values())


def test_redelivering_a_batch_writes_no_row(domain):
    """Exactly once: the same outcome again inserts and updates nothing in any ingest table."""
    def batch() -> Outcome:
        return Outcome(interactions=[_call("r1", "Again", [("s1", "Same words.", 0)]),
                                     _call("r2", "", [("s1", "Late turns.", 0)], partial=True)],
                       identities=[Identity(key=IdentityKey("gong", "users", "ru"), entity_type=PERSON, name="Ru")],
                       processed=3)

    with db.transaction(domain) as conn:
        store.write_outcome(conn, batch(), None, "gong", {})
    with db.transaction(domain) as conn:
        before = _xact_writes(conn)
        stats = store.write_outcome(conn, batch(), None, "gong", {})
        writes = _written(before, _xact_writes(conn))
    assert stats.rechunked == 0 and stats.chunks_changed == 0
    assert writes == {t: (0, 0) for t in writes}


def test_a_new_row_nothing_was_cut_for_still_gets_chunks_and_its_hash(domain, monkeypatch):
    """If the look-up of partial interactions says stored but the upsert inserts (a row deleted in
    between), the row is cut after the insert and its hash set by UPDATE: never left without."""
    from ingest_worker import upserts

    real = upserts.stored_ids
    monkeypatch.setattr(upserts, "stored_ids", lambda conn, keys: {k: -1 for k in keys} if keys else real(conn, keys))
    stats = _write(domain, _call("f1", "", [("s1", "Arrived first.", 0)], partial=True))
    assert stats.rechunked == 1 and stats.chunks_changed == 1
    with db.transaction(domain) as conn:
        iid, content_hash = conn.execute(sa.text("SELECT id, content_hash FROM interactions WHERE source_id = 'f1'")).one()
        heads, turns = rechunk.from_db(conn, [iid])
    assert content_hash == rechunk.cut(heads[0], turns[iid])[1]
    assert "Arrived first." in _chunks(domain, "f1")[0].text


def test_a_transcript_landing_on_a_stored_call_goes_in_by_plain_insert(domain, monkeypatch):
    """A call stored without turns whose transcript lands now (the usual Gong order): its turns,
    and its chunks at positions it did not have, go in without a conflict check; the positions it
    had are upserted. The result equals a re-cut of the stored rows, and a second delivery of the
    transcript (turns stored now) takes the upsert and changes nothing."""
    from ingest_worker import upserts

    _write(domain, _call("t1", "Pricing call", []))
    before = _chunks(domain, "t1")
    statements: list[str] = []
    real = upserts.execute

    def spy(conn, sql, rows, **params):
        statements.append(sql.split(" SELECT", 1)[0].split(" (", 1)[0] + (" +upsert" if "ON CONFLICT" in sql else ""))
        return real(conn, sql, rows, **params)

    monkeypatch.setattr(upserts, "execute", spy)
    monkeypatch.setattr(rechunk, "execute", spy)
    transcript = _call("t1", "", [("s1", "Long turn. " + "word " * 220, 1000), ("s1", "We sign Friday.", 9000)],
                       partial=True)
    stats = _write(domain, transcript)
    assert stats.rechunked == 1 and stats.chunks_changed >= 2
    assert "INSERT INTO interaction_turns AS t" in statements, statements
    assert "INSERT INTO interaction_turns AS t +upsert" not in statements, statements
    assert statements.count("INSERT INTO chunks AS c") == 1 and statements.count("INSERT INTO chunks AS c +upsert") == 1
    after = _chunks(domain, "t1")
    assert after[0].id == before[0].id and len(after) > len(before)
    assert "We sign Friday." in after[max(after)].text
    with db.transaction(domain) as conn:
        iid = conn.execute(sa.text("SELECT id FROM interactions WHERE source_id = 't1'")).scalar()
        heads, turns = rechunk.from_db(conn, [iid])
        assert rechunk.write(conn, heads, turns, stored=True) == 0, "re-reading changes no chunk"

    statements.clear()
    again = _write(domain, transcript)
    assert again.rechunked == 0 and again.chunks_changed == 0
    assert "INSERT INTO interaction_turns AS t +upsert" in statements and "INSERT INTO interaction_turns AS t" not in statements
    assert _chunks(domain, "t1") == after
