"""The ``airbyte`` landing reader against Airbyte-shaped destination tables in real Postgres: ties,
page boundaries inside ties, late rows, dedup updates, column churn, a generation rise; every row
version delivered, none twice (except the documented re-delivery on a generation rise)."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from common import db
from ingest_worker import landing_airbyte as la
from ingest_worker.landing_airbyte import AirbyteCursor, final_table_name, raw_table_name

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
META_COLS = ('"_airbyte_raw_id" varchar NOT NULL, "_airbyte_extracted_at" timestamptz NOT NULL, '
             '"_airbyte_meta" jsonb NOT NULL, "_airbyte_generation_id" bigint NOT NULL')


def T(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def rid(n: int) -> str:
    return str(uuid.UUID(int=n))  # ordered like n: lets a test place rows inside a tie


# ------------------------------------------------------------------------------------------ naming
def test_final_table_name_rules():
    assert final_table_name("channel_messages") == "channel_messages"
    assert final_table_name("Account") == "Account"  # case preserved (identifiers are quoted)
    assert final_table_name("engagements-calls v2") == "engagements_calls_v2"
    assert final_table_name("3d.stream") == "_3d_stream"
    assert final_table_name("Café") == "Cafe"  # NFKD, combining marks dropped
    assert final_table_name("x" * 63) == "x" * 63
    long = final_table_name("a" * 70)
    assert len(long) == 63 and long.startswith("a" * 54 + "_")
    # Java String.hashCode() of the sanitized name, signed decimal, last 8 characters
    assert la._java_hash("hello") == 99162322
    assert long[55:] == str(la._java_hash("a" * 70))[-8:]
    assert final_table_name("b" * 70) != final_table_name("b" * 69 + "c")


def test_raw_table_name_rules():
    assert raw_table_name("public", "channel_messages") == "public_raw__stream_channel_messages"
    assert raw_table_name("public", "a__b") == "public_raw___stream_a__b"
    assert raw_table_name("my___ns", "x") == "my___ns_raw____stream_x"
    assert raw_table_name("public", "Account") == "public_raw__stream_account"  # 3.x lowercases
    assert raw_table_name("Sales Force", "Lead") == "sales_force_raw__stream_lead"
    assert len(raw_table_name("public", "y" * 80)) == 63


# ---------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def ab(domain):
    schema = f"ab_{uuid.uuid4().hex[:10]}"
    with db.transaction(domain) as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield schema
    with db.transaction(domain) as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def create_final(settings, schema: str, table: str, data_cols: str) -> None:
    with db.transaction(settings) as conn:
        conn.execute(sa.text(f'CREATE TABLE "{schema}"."{table}" ({META_COLS}, {data_cols})'))
        conn.execute(sa.text(f'CREATE INDEX ON "{schema}"."{table}" ("_airbyte_extracted_at")'))


def land(settings, schema: str, table: str, rows: list[dict], gen: int = 1) -> list[str]:
    """Insert rows (``_id``, ``_at``, optional ``_changes``, data columns); returns raw ids."""
    ids = []
    with db.transaction(settings) as conn:
        for row in rows:
            raw_id = row.get("_id") or str(uuid.uuid4())
            meta = {"sync_id": 1, "changes": row.get("_changes", [])}
            data = {k: v for k, v in row.items() if not k.startswith("_")}
            cols = ", ".join(f'"{k}"' for k in data)
            vals = ", ".join(f":c{i}" for i in range(len(data)))
            params = {f"c{i}": (json.dumps(v) if isinstance(v, (dict, list)) else v)
                      for i, v in enumerate(data.values())}
            conn.execute(sa.text(
                f'INSERT INTO "{schema}"."{table}" (_airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta,'
                f' _airbyte_generation_id{", " + cols if cols else ""}) VALUES (:rid, :at, :meta, :gen'
                f'{", " + vals if vals else ""})'),
                {"rid": raw_id, "at": row["_at"], "meta": json.dumps(meta), "gen": gen, **params})
            ids.append(raw_id)
    return ids


class Consumer:
    """A caller as the ingest worker would be: one transaction per batch, cursor saved with it."""

    def __init__(self, settings, schema: str, stream: str, source: str = "slack", **kw):
        self.settings, self.schema, self.stream, self.source, self.kw = settings, schema, stream, source, kw
        self.seen: set = set()
        self.delivered: list[str] = []
        self.records: dict[str, dict] = {}
        self.batches: list[la.AirbyteBatch] = []

    def read(self, batch_size: int = 3, lookback: float = 60, fail_after: int | None = None) -> list[str]:
        with db.transaction(self.settings) as conn:
            cursor = la.load_cursor(conn, self.source, self.stream)
        got: list[str] = []
        # reading happens on one connection; each batch is "processed" in its own transaction
        with db.engine_for(self.settings).connect() as reader:
            for n, batch in enumerate(la.read_batches(reader, self.schema, self.stream, cursor, batch_size,
                                                      lookback, seen_ids=self.seen, **self.kw)):
                if fail_after is not None and n == fail_after:
                    raise RuntimeError("worker died mid-batch")
                with db.transaction(self.settings) as conn:
                    la.save_cursor(conn, self.source, self.stream, batch.cursor_after, len(batch.records))
                self.batches.append(batch)
                for rec in batch.records:  # "committed": counts as delivered
                    got.append(rec.position)
                    self.delivered.append(rec.position)
                    self.records[rec.position] = rec.data
            reader.rollback()
        return got


# ---------------------------------------------------------------------------------- final layout
def test_final_layout_every_version_once(domain, ab):
    create_final(domain, ab, "channel_messages",
                 '"ts" varchar, "text" varchar, "blocks" jsonb, "reply_count" bigint, '
                 '"score" decimal(38, 9), "edited_at" timestamptz')
    landed: list[str] = []
    c = Consumer(domain, ab, "channel_messages")

    # sync 1: a tie of four at T10 (the first page ends inside it), a tie of two at T20
    landed += land(domain, ab, "channel_messages", [
        {"_id": rid(0x001), "_at": T(0), "ts": "1.0", "text": "first", "blocks": [{"type": "rich_text"}],
         "reply_count": 2, "score": "1.500000000", "edited_at": T(1)},
        *({"_id": rid(0x100 + i), "_at": T(10), "ts": f"10.{i}", "text": f"tie {i}", "score": "7"}
          for i in (1, 2, 3, 4)),
        {"_id": rid(0x20b), "_at": T(20), "ts": "20.b", "text": "b"},
        {"_id": rid(0x20d), "_at": T(20), "ts": "20.d", "text": "d",
         "_changes": [{"field": "text", "change": "TRUNCATED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"}]},
    ])
    got = c.read(batch_size=3)
    assert got == landed  # in (extracted_at, raw_id) order
    assert [len(b.records) for b in c.batches] == [3, 3, 1]
    assert c.batches[0].cursor_after == AirbyteCursor(T(10), rid(0x102), 1)  # page boundary in the tie
    first = c.records[rid(0x001)]
    assert first == {"ts": "1.0", "text": "first", "blocks": [{"type": "rich_text"}], "reply_count": 2,
                     "score": 1.5, "edited_at": T(1).isoformat()}
    assert c.records[rid(0x101)]["score"] == 7 and isinstance(c.records[rid(0x101)]["score"], int)
    assert c.records[rid(0x20d)]["_airbyte_changes"][0]["change"] == "TRUNCATED"
    assert "_airbyte_changes" not in c.records[rid(0x20b)]
    with db.transaction(domain) as conn:
        assert la.load_cursor(conn, "slack", "channel_messages") == AirbyteCursor(T(20), rid(0x20d), 1)

    assert c.read() == []  # nothing new: the look-back rows are all known

    # sync 2 commits late: rows tied with the cursor (smaller and greater raw_id), an older row inside
    # the look-back, new rows, and a dedup update of row 0x001 (new raw_id and extracted_at)
    late = land(domain, ab, "channel_messages", [
        {"_id": rid(0x20c), "_at": T(20), "ts": "20.c", "text": "late tie, smaller id"},
        {"_id": rid(0x20e), "_at": T(20), "ts": "20.e", "text": "tie, greater id"},
        {"_id": rid(0x150), "_at": T(15), "ts": "15", "text": "late, older"},
        {"_at": T(30), "ts": "30.1", "text": "new"},
    ])
    updated = str(uuid.uuid4())
    with db.transaction(domain) as conn:
        conn.execute(sa.text(
            f'UPDATE "{ab}"."channel_messages" SET _airbyte_raw_id = :new, _airbyte_extracted_at = :at, '
            f'"text" = \'first, edited\' WHERE _airbyte_raw_id = :old'), {"new": updated, "at": T(31), "old": rid(1)})
    landed += late + [updated]
    got = c.read(batch_size=2)
    assert sorted(got) == sorted(late + [updated])
    assert c.records[updated]["text"] == "first, edited"
    read2 = [b.cursor_after for b in c.batches[3:]]
    # batches of late rows only keep the saved cursor: it never goes back
    assert read2[:2] == [AirbyteCursor(T(20), rid(0x20d), 1)] * 2
    assert read2[-1] == AirbyteCursor(T(31), updated, 1)
    assert all(a.key() <= b.key() for a, b in zip(read2, read2[1:]))

    # schema churn between reads: a column added, one dropped
    with db.transaction(domain) as conn:
        conn.execute(sa.text(f'ALTER TABLE "{ab}"."channel_messages" ADD COLUMN "subtype" varchar'))
        conn.execute(sa.text(f'ALTER TABLE "{ab}"."channel_messages" DROP COLUMN "reply_count"'))
    churn = land(domain, ab, "channel_messages", [
        {"_at": T(40), "ts": "40.1", "text": "with subtype", "subtype": "bot_message"},
        {"_at": T(40), "ts": "40.2", "text": "plain"}])
    landed += churn
    assert sorted(c.read()) == sorted(churn)
    assert {c.records[i].get("subtype") for i in churn} == {"bot_message", None}
    assert all("reply_count" not in c.records[i] and "subtype" in c.records[i] for i in churn)

    assert Counter(c.delivered) == Counter(landed)  # every version once, none skipped
    assert len(c.delivered) == len(set(c.delivered))

    # generation rise: a refresh replaced the table (one older-generation row retained, as in a
    # refresh that keeps history); the read starts over and says so on the first batch
    with db.transaction(domain) as conn:
        conn.execute(sa.text(f'DELETE FROM "{ab}"."channel_messages" WHERE _airbyte_raw_id <> :keep'),
                     {"keep": churn[0]})
    refreshed = land(domain, ab, "channel_messages",
                     [{"_at": T(50 + i), "ts": f"{i}", "text": f"refreshed {i}"} for i in range(5)], gen=2)
    before = len(c.batches)
    got = c.read(batch_size=2)
    rise = c.batches[before:]
    assert [b.generation_rose for b in rise] == [True, False, False]
    assert sorted(got) == sorted(refreshed + [churn[0]])  # every current row, once in this read
    assert rise[0].cursor_after == AirbyteCursor(T(50), refreshed[0], 2)  # starts afresh
    assert rise[-1].cursor_after == AirbyteCursor(T(54), refreshed[-1], 2)

    after = land(domain, ab, "channel_messages", [{"_at": T(60), "ts": "60", "text": "gen 2 append"}], gen=2)
    assert c.read() == after
    assert not any(b.generation_rose for b in c.batches[before + 3:])
    # overall: each version delivered once, the retained row twice (documented re-delivery)
    assert Counter(c.delivered) == Counter(landed + refreshed + after + [churn[0]])


def test_rolled_back_batch_is_delivered_again(domain, ab):
    create_final(domain, ab, "Account", '"Id" varchar, "Name" varchar, "AnnualRevenue" decimal(38, 9)')
    ids = land(domain, ab, "Account", [{"_at": T(i), "Id": f"001{i}", "Name": f"Acme {i}",
                                        "AnnualRevenue": "1000000.25"} for i in range(5)])
    c = Consumer(domain, ab, "Account", source="salesforce")
    assert c.read(batch_size=2) == ids
    assert c.records[ids[0]] == {"Id": "0010", "Name": "Acme 0", "AnnualRevenue": 1000000.25}
    late = land(domain, ab, "Account", [{"_at": T(2.5), "Id": "late", "Name": "Late"},
                                        {"_at": T(10), "Id": "new", "Name": "New"}])
    seen_before = set(c.seen)
    with pytest.raises(RuntimeError):
        c.read(batch_size=1, fail_after=1)  # batch 0 (the late row) committed, batch 1 died
    assert c.seen == seen_before | {late[0]}
    assert c.read(batch_size=1) == [late[1]]  # the late row is not delivered twice, nothing lost
    assert Counter(c.delivered) == Counter(ids + late)


def test_columns_change_between_pages(domain, ab):
    create_final(domain, ab, "users", '"id" varchar, "name" varchar, "tz" varchar')
    ids = land(domain, ab, "users", [{"_at": T(i), "id": str(i), "name": f"u{i}", "tz": "UTC"} for i in range(4)])
    with db.engine_for(domain).connect() as conn:
        out = []
        for batch in la.read_batches(conn, ab, "users", AirbyteCursor(), 2, 60):
            out.append(batch)
            if len(out) == 1:
                conn.execute(sa.text(f'ALTER TABLE "{ab}"."users" DROP COLUMN "tz"'))
        conn.rollback()
    assert [r.position for b in out for r in b.records] == ids
    assert "tz" in out[0].records[0].data and "tz" not in out[1].records[0].data


def test_missing_table_and_generation_rise_from_older_rows(domain, ab):
    with db.engine_for(domain).connect() as conn:
        assert list(la.read_batches(conn, ab, "never_synced", AirbyteCursor(), 10, 60)) == []
    create_final(domain, ab, "owners", '"id" varchar')
    with db.engine_for(domain).connect() as conn:
        # an empty table (e.g. after a clear that wrote nothing): nothing to read, no generation to see
        assert list(la.read_batches(conn, ab, "owners", AirbyteCursor(T(1), "r", 1), 10, 60)) == []
    land(domain, ab, "owners", [{"_id": "y", "_at": T(-600), "id": "o3"}], gen=3)
    with db.engine_for(domain).connect() as conn:
        batches = list(la.read_batches(conn, ab, "owners", AirbyteCursor(T(1), "r", 1), 10, 0))
        conn.rollback()
    assert [b.generation_rose for b in batches] == [True]
    assert [r.position for r in batches[0].records] == ["y"]  # far older than the cursor, still read
    assert batches[0].cursor_after == AirbyteCursor(T(-600), "y", 3)


# ------------------------------------------------------------------------------------ raw layout
def test_raw_layout(domain, ab):
    table = raw_table_name("public", "channel_messages")
    with db.transaction(domain) as conn:
        conn.execute(sa.text(
            f'CREATE TABLE "{ab}"."{table}" (_airbyte_raw_id varchar NOT NULL, _airbyte_data jsonb NOT NULL, '
            '_airbyte_extracted_at timestamptz NOT NULL, _airbyte_loaded_at timestamptz, '
            '_airbyte_meta jsonb, _airbyte_generation_id bigint)'))
        for n, (at, data, changes) in enumerate([
                (T(0), {"ts": "1", "text": "a", "reply_count": 1}, []),
                (T(0), {"ts": "2", "text": "b"}, [{"field": "text", "change": "NULLED", "reason": "x"}]),
                (T(5), [1, 2], []),
                (T(9), {"ts": "3", "text": "c"}, [])]):
            conn.execute(sa.text(
                f'INSERT INTO "{ab}"."{table}" VALUES (:rid, :data, :at, NULL, :meta, 0)'),
                {"rid": rid(n + 1), "data": json.dumps(data), "at": at,
                 "meta": json.dumps({"sync_id": 7, "changes": changes})})
    c = Consumer(domain, ab, "channel_messages", source="slack_raw", layout="raw", namespace="public")
    assert c.read(batch_size=2) == [rid(1), rid(2), rid(4)]
    assert c.records[rid(1)] == {"ts": "1", "text": "a", "reply_count": 1}
    assert c.records[rid(2)]["_airbyte_changes"][0]["change"] == "NULLED"
    malformed = [m for b in c.batches for m in b.malformed]
    assert [(m[0], m[1]) for m in malformed] == [(rid(3), "_airbyte_data is not a JSON object")]
    with db.transaction(domain) as conn:
        conn.execute(sa.text(f'INSERT INTO "{ab}"."{table}" VALUES (:rid, \'{{"ts": "late"}}\', :at, NULL, '
                             '\'{}\', 0)'), {"rid": rid(9), "at": T(3)})
    assert c.read(batch_size=2) == [rid(9)]  # late raw row in the look-back; the rest known
    assert c.read() == []
