"""ingest_worker/landing.py: Airbyte JSONL lines to batches of records, malformed lines and checkpoints."""
from __future__ import annotations

import json

from ingest_worker.landing import available_streams, read_batches, stream_path

STREAM = "users"


def rec(data, stream=STREAM, emitted_at=1700000000000):
    return json.dumps({"type": "RECORD", "record": {"stream": stream, "data": data, "emitted_at": emitted_at}})


STATE = json.dumps({"type": "STATE", "state": {"data": {"cursor": "x"}}})
LOG = json.dumps({"type": "LOG", "log": {"level": "INFO", "message": "hi"}})


def write(tmp_path, lines):
    path = tmp_path / "src" / f"{STREAM}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def read_all(path, start=0, size=1000):
    return list(read_batches(path, STREAM, start, size))


def test_records_carry_their_line_position_and_data(tmp_path):
    path = write(tmp_path, [rec({"id": 1}), STATE, rec({"id": 2}, emitted_at=5), LOG])
    batches = read_all(path)
    assert len(batches) == 1
    b = batches[0]
    assert b.stream == STREAM
    assert [(r.position, r.data, r.emitted_at) for r in b.records] == [
        (1, {"id": 1}, 1700000000000), (3, {"id": 2}, 5)]
    assert b.malformed == []
    assert b.end_offset == 4  # STATE and LOG are consumed lines too


def test_record_without_stream_name_is_accepted(tmp_path):
    line = json.dumps({"type": "RECORD", "record": {"data": {"id": 9}}})
    [b] = read_all(write(tmp_path, [line]))
    assert [(r.position, r.data, r.emitted_at) for r in b.records] == [(1, {"id": 9}, None)]


def test_malformed_lines_are_reported_with_reason_and_raw_text(tmp_path):
    lines = [
        "{not json",
        "[1, 2, 3]",
        json.dumps({"type": "RECORD", "record": {"stream": STREAM}}),
        json.dumps({"type": "RECORD"}),
        rec({"id": 1}, stream="companies"),
        rec({"id": 2}),
    ]
    [b] = read_all(write(tmp_path, lines))
    assert [r.position for r in b.records] == [6]
    by_line = {line: (reason, raw) for line, reason, raw in b.malformed}
    assert sorted(by_line) == [1, 2, 3, 4, 5]
    assert "not JSON" in by_line[1][0]
    assert "not a JSON object" in by_line[2][0]
    assert "without record.data" in by_line[3][0]
    assert "without record.data" in by_line[4][0]
    assert "companies" in by_line[5][0]
    assert by_line[1][1] == "{not json"
    assert b.end_offset == 6


def test_batches_split_by_size_with_checkpoint_after_each(tmp_path):
    path = write(tmp_path, [rec({"id": i}) for i in range(1, 6)])
    batches = read_all(path, size=2)
    non_empty = [b for b in batches if b.records or b.malformed]
    assert [[r.data["id"] for r in b.records] for b in non_empty] == [[1, 2], [3, 4], [5]]
    assert [b.end_offset for b in non_empty] == [2, 4, 5]
    assert all(len(b.records) <= 2 for b in batches)
    assert batches[-1].end_offset == 5


def test_malformed_lines_count_toward_batch_size(tmp_path):
    path = write(tmp_path, ["oops", rec({"id": 1}), rec({"id": 2})])
    first = read_all(path, size=2)[0]
    assert len(first.records) + len(first.malformed) == 2
    assert first.end_offset == 2


def test_resume_from_offset_yields_only_later_lines(tmp_path):
    path = write(tmp_path, [rec({"id": i}) for i in range(1, 8)])
    seen = []
    offset = 0
    # consume one batch at a time, restarting from the checkpoint like a worker would
    for _ in range(10):
        batches = list(read_batches(path, STREAM, offset, 3))
        if not batches or batches[0].end_offset == offset:
            break
        b = batches[0]
        assert all(r.position > offset for r in b.records)
        seen += [r.data["id"] for r in b.records]
        offset = b.end_offset
    assert seen == list(range(1, 8))
    assert offset == 7


def test_resume_at_specific_offset(tmp_path):
    path = write(tmp_path, [rec({"id": i}) for i in range(1, 6)])
    batches = read_all(path, start=3)
    assert [r.position for b in batches for r in b.records] == [4, 5]
    assert batches[-1].end_offset == 5


def test_trailing_state_only_tail_still_advances_checkpoint(tmp_path):
    path = write(tmp_path, [rec({"id": 1}), rec({"id": 2}), STATE, STATE])
    batches = read_all(path, start=2)
    assert [r for b in batches for r in b.records] == []
    assert batches and batches[-1].end_offset == 4


def test_state_tail_after_full_batch_is_checkpointed(tmp_path):
    path = write(tmp_path, [rec({"id": 1}), rec({"id": 2}), STATE, LOG])
    batches = read_all(path, size=2)
    assert batches[0].end_offset == 2
    assert batches[-1].end_offset == 4


def test_nothing_new_keeps_offset(tmp_path):
    path = write(tmp_path, [rec({"id": 1})])
    batches = read_all(path, start=1)
    assert all(not b.records and not b.malformed for b in batches)
    assert all(b.end_offset == 1 for b in batches)


def test_blank_lines_are_skipped_but_consumed(tmp_path):
    path = write(tmp_path, ["", rec({"id": 1}), "   "])
    [b] = read_all(path)
    assert [r.position for r in b.records] == [2]
    assert b.malformed == []
    assert b.end_offset == 3


def test_missing_file_yields_nothing(tmp_path):
    assert read_all(tmp_path / "absent.jsonl") == []


def test_stream_path_and_available_streams(tmp_path):
    assert stream_path(tmp_path, "gong", "calls") == tmp_path / "gong" / "calls.jsonl"
    (tmp_path / "gong").mkdir()
    (tmp_path / "gong" / "users.jsonl").write_text("")
    (tmp_path / "gong" / "calls.jsonl").write_text("")
    (tmp_path / "gong" / "notes.txt").write_text("")
    assert available_streams(tmp_path, "gong") == ["calls", "users"]
    assert available_streams(tmp_path, "slack") == []


def test_invalid_utf8_and_oversize_lines_are_malformed_with_bounded_raw(tmp_path, monkeypatch):
    from ingest_worker import landing

    monkeypatch.setattr(landing, "MAX_RECORD_BYTES", 2000)
    good = json.dumps({"type": "RECORD", "record": {"stream": "s", "data": {"id": 1}, "emitted_at": 1}}).encode()
    huge = json.dumps({"type": "RECORD", "record": {"stream": "s", "data": {"x": "y" * 50_000}}}).encode()
    path = tmp_path / "s.jsonl"
    path.write_bytes(good + b"\n" + b'{"type": "RECORD", "record": {"stream": "s", "data": {"n": "\xff\xfe"}}}\n'
                     + huge + b"\n" + good + b"\n")
    (batch,) = list(landing.read_batches(path, "s", 0, 100))
    assert [r.position for r in batch.records] == [1, 4]
    reasons = {line: reason for line, reason, _ in batch.malformed}
    assert "not valid UTF-8" in reasons[2] and "exceeds 2000" in reasons[3]
    assert all(len(raw) <= landing.RAW_KEEP for _, _, raw in batch.malformed)
    assert batch.end_offset == 4
