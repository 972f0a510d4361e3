import hashlib
import uuid
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from common import chunking
from common.chunking import ChunkDraft, chunk_interaction, estimate_tokens

pytestmark = pytest.mark.unit


def _turns(n, words=12, speakers=("Ana", "Ben")):
    return [
        {
            "text": " ".join(f"w{i}x{j}" for j in range(words)) + ".",
            "start_ms": i * 5_000,
            "end_ms": i * 5_000 + 4_000,
            "speaker_name": speakers[i % len(speakers)],
        }
        for i in range(n)
    ]


def test_estimate_tokens_errs_high():
    assert estimate_tokens("") == 0
    assert estimate_tokens(None) == 0
    assert estimate_tokens("Hello, world!") == 6  # 4 pieces * 1.3 -> 5.2 -> 6
    assert estimate_tokens("one two three") == 4


def test_empty_input():
    assert chunk_interaction("k", "note", None, None, []) == []
    blank_turn = {"text": " ", "start_ms": 0, "end_ms": 1, "speaker_name": None}
    assert chunk_interaction("k", "call", "  ", "\n\n  \n", [blank_turn]) == []


def test_call_rendering_and_metadata():
    turns = [
        {"text": "Hi there.", "start_ms": 65_000, "end_ms": 70_000, "speaker_name": "Ana"},
        {"text": "Hello!", "start_ms": 71_500, "end_ms": 72_000, "speaker_name": "Ben"},
        {"text": "No name.", "start_ms": 3_725_000, "end_ms": 3_726_000, "speaker_name": None},
    ]
    [chunk] = chunk_interaction("gong:call:1", "call", "Intro call", None, turns)
    assert chunk.text == (
        "Intro call\n\n[01:05] Ana: Hi there.\n[01:11] Ben: Hello!\n[62:05] No name."
    )
    assert (chunk.start_ms, chunk.end_ms) == (65_000, 3_726_000)
    assert chunk.speakers == ["Ana", "Ben"]
    assert chunk.ordinal == 0
    assert chunk.token_count == estimate_tokens(chunk.text)
    assert chunk.content_hash == hashlib.sha256(chunk.text.encode()).hexdigest()
    assert chunk.chunk_id == str(uuid.uuid5(chunking.CHUNK_NAMESPACE, "gong:call:1#0"))


def test_thread_rendering_has_no_timestamps():
    turns = [{"text": "ship it", "start_ms": 1, "end_ms": 2, "speaker_name": "Cy"}]
    [chunk] = chunk_interaction("slack:thread:C1:1.2", "thread", None, None, turns)
    assert chunk.text == "Cy: ship it"


def test_turn_windows_respect_max_and_overlap():
    chunks = chunk_interaction("k", "call", None, None, _turns(40, words=12))
    assert len(chunks) > 3
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.token_count <= chunking.MAX_TOKENS
    for prev, nxt in zip(chunks, chunks[1:]):
        last_line = prev.text.split("\n")[-1]
        assert nxt.text.split("\n")[0] == last_line  # one-turn overlap
        assert estimate_tokens(last_line) <= chunking.OVERLAP_TOKENS
    # every turn appears somewhere, in order
    joined = "\n".join(c.text for c in chunks)
    positions = [joined.index(f"w{i}x0 ") for i in range(40)]
    assert positions == sorted(positions)


def test_no_overlap_when_last_turn_is_big():
    chunks = chunk_interaction("k", "thread", None, None, _turns(10, words=60))
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.text.split("\n")[0] != prev.text.split("\n")[-1]


def test_long_turn_split_by_sentences_then_words():
    sentences = " ".join(f"Sentence {i} has some words in it." for i in range(80))
    run_on = " ".join(f"word{i}" for i in range(600))
    turns = [
        {"text": sentences, "start_ms": 0, "end_ms": 9, "speaker_name": "Ana"},
        {"text": run_on, "start_ms": 10, "end_ms": 99, "speaker_name": "Ben"},
    ]
    chunks = chunk_interaction("k", "call", None, None, turns)
    assert all(c.token_count <= chunking.MAX_TOKENS for c in chunks)
    for c in chunks:
        for line in c.text.split("\n"):
            assert line.startswith(("[00:00] Ana: ", "[00:00] Ben: "))
    ana = [line for c in chunks for line in c.text.split("\n") if "Ana:" in line]
    assert all(line.endswith(".") for line in ana)  # cut at sentence ends
    words = " ".join(c.text for c in chunks)
    assert all(f"word{i}" in words for i in range(600))


def test_single_giant_token_word_is_cut():
    chunks = chunk_interaction("k", "note", None, "-" * 1000, [])
    assert all(c.token_count <= chunking.MAX_TOKENS for c in chunks)
    assert sum(c.text.count("-") for c in chunks) >= 1000


def test_note_paragraph_packing_and_title():
    paras = [" ".join(f"p{p}w{j}" for j in range(40)) + "." for p in range(12)]
    body = "\r\n\r\n".join(paras[:6]) + "\n\n\n  \n" + "\n\n".join(paras[6:])
    chunks = chunk_interaction("hubspot:note:9", "note", "Renewal notes", body, [])
    assert chunks[0].text.startswith("Renewal notes\n\np0w0 ")
    assert not any(c.text.startswith("Renewal") for c in chunks[1:])
    assert all(c.token_count <= chunking.MAX_TOKENS for c in chunks)
    assert all(c.start_ms is None and c.end_ms is None and c.speakers == [] for c in chunks)
    text = "\n\n".join(c.text for c in chunks)
    assert all(p in text for p in paras)


def test_long_paragraph_overlaps_by_sentence():
    body = " ".join(f"Point {i} is short." for i in range(200))
    chunks = chunk_interaction("k", "email", None, body, [])
    assert len(chunks) > 2
    for prev, nxt in zip(chunks, chunks[1:]):
        last_sentence = prev.text.rsplit(". ", 1)[-1]
        assert nxt.text.startswith(last_sentence)


def test_turns_win_over_body_and_title_only_chunk():
    turns = [{"text": "hey", "start_ms": None, "end_ms": None, "speaker_name": "Ana"}]
    [c] = chunk_interaction("k", "thread", None, "summary", turns)
    assert c.text == "Ana: hey" and c.start_ms is None
    [t] = chunk_interaction("k", "task", "Send the contract", None, [])
    assert t.text == "Send the contract"


def test_deterministic_and_stable_ids():
    args = ("gong:call:42", "call", "T", None, _turns(30))
    a, b = chunk_interaction(*args), chunk_interaction(*args)
    assert a == b
    assert len({c.chunk_id for c in a}) == len(a)
    edited = _turns(30)
    edited[-1]["text"] = "changed."
    c = chunk_interaction("gong:call:42", "call", "T", None, edited)
    assert [x.chunk_id for x in c] == [x.chunk_id for x in a]
    assert c[0].content_hash == a[0].content_hash
    assert c[-1].content_hash != a[-1].content_hash
    other = chunk_interaction("gong:call:43", "call", "T", None, _turns(30))
    assert other[0].chunk_id != a[0].chunk_id
    assert isinstance(a[0], ChunkDraft)


def test_custom_limits():
    chunks = chunk_interaction("k", "thread", None, None, _turns(20, words=5),
                               max_tokens=30, overlap_tokens=0)
    assert all(c.token_count <= 30 for c in chunks)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.text.split("\n")[0] != prev.text.split("\n")[-1]


def test_chunk_id_for_is_uuid5_of_key_and_ordinal():
    import uuid

    from common import chunking

    for key in ("gong:extensiveCalls:123", "slack:threads:C1:1700000000.000100", "hubspot:x:é ü 漢字", ""):
        for ordinal in (0, 1, 17, 1234):
            expected = str(uuid.uuid5(chunking.CHUNK_NAMESPACE, f"{key}#{ordinal}"))
            assert chunking.chunk_id_for(key, ordinal) == expected


def test_squash_equals_the_whitespace_regex_on_every_code_point():
    import re
    import sys

    from common import chunking

    ws = re.compile(r"\s")
    chars = [chr(cp) for cp in range(sys.maxunicode + 1)]
    # str.split() splits on str.isspace characters: the same set as \s, so both squash alike
    assert [c for c in chars if ws.match(c)] == [c for c in chars if c.isspace()]
    for text in (" a\u2003\u2003b \n", "\tx\x1c\x1fy\xa0", "", "   ", "one"):
        assert chunking._squash(text) == re.sub(r"\s+", " ", text).strip()


def test_piece_count_equals_the_token_regex():
    """The byte-shape count gives ``len(findall)`` exactly: chunk boundaries, and so chunk ids,
    hashes and stored vectors, depend on it."""
    import random
    import re

    token = re.compile(r"\w+|[^\w\s]")
    ascii_chars = [chr(i) for i in range(128)]
    for a in ascii_chars:
        for b in ("", "a", " ", ".", "_", "9"):
            assert chunking._pieces(a + b) == len(token.findall(a + b)), repr(a + b)
    rng = random.Random(3)
    alphabet = ascii_chars + ["é", "ß", "\u00a0", "\u2028", "中", "…"]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert chunking._pieces(text) == len(token.findall(text)), repr(text)


_WORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(str.strip)
_TEXT = st.lists(st.one_of(_WORDS, st.sampled_from([".", "!", "?", "\n\n", "\n", "  ", "\t"]),
                           st.text(alphabet="x", min_size=40, max_size=400)), max_size=120).map(" ".join)
_TURN = st.fixed_dictionaries({"text": _TEXT, "start_ms": st.integers(0, 10**7), "end_ms": st.integers(0, 10**7),
                               "speaker_name": st.one_of(st.none(), st.sampled_from(["Ana", "Ben", "Çelik"]), _TEXT)})


@given(title=st.one_of(st.none(), _TEXT), body=st.one_of(st.none(), _TEXT), turns=st.lists(_TURN, max_size=6),
       kind=st.sampled_from(["call", "thread", "note", "email"]), max_tokens=st.integers(24, 240))
@settings(max_examples=300, deadline=None)
def test_any_text_cuts_into_bounded_ordered_chunks_that_keep_every_word(title, body, turns, kind, max_tokens):
    """Whatever the text (any Unicode, giant words, no punctuation): every chunk fits the budget,
    ordinals run 0..n-1 with distinct ids, the cut is deterministic, and no word of the source is lost."""
    drafts = chunk_interaction("k", kind, title, body, turns, max_tokens=max_tokens, overlap_tokens=max_tokens // 4)
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))
    assert len({d.chunk_id for d in drafts}) == len(drafts)
    assert all(d.text.strip() and d.token_count == estimate_tokens(d.text) <= max_tokens for d in drafts)
    again = chunk_interaction("k", kind, title, body, turns, max_tokens=max_tokens, overlap_tokens=max_tokens // 4)
    assert [(d.text, d.content_hash) for d in again] == [(d.text, d.content_hash) for d in drafts]
    source = " ".join(filter(None, [title] + ([t["text"] for t in turns] if any(t["text"].strip() for t in turns)
                                              else [body])))
    # nothing is lost: overlap and the turns' prefixes only add characters, and a word over the
    # budget may be cut in two, so the source's characters are compared as counts
    missing = Counter("".join(source.split())) - Counter("".join(" ".join(d.text for d in drafts).split()))
    assert not missing, missing
