"""`payready demo` on a fresh data folder: real embedded stack, real workers, a summary that adds up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from ingest_worker.generate import SAMPLE_DIR
from tests.conftest import ROOT


def test_demo_runs_end_to_end_and_its_counts_add_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYREADY_")}
    env["PAYREADY_DATA_DIR"] = str(tmp_path / "data")
    out = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, "-m", "common.cli", "demo", "--json", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    run = summary["run"]
    assert run["status"] == "succeeded"
    landed = Counter()
    for path in SAMPLE_DIR.glob("*/*.jsonl"):
        landed[path.parent.name] += sum(1 for line in path.open() if json.loads(line).get("type") == "RECORD")
    for source, counts in run["sources"].items():
        assert counts["in"] == landed[source]
        assert counts["in"] == counts["processed"] + counts["dead_lettered"]
    counts = summary["counts"]
    assert counts["dead_letters"] == sum(c["dead_lettered"] for c in run["sources"].values())
    assert counts["interactions"] > 500 and counts["persons"] > 50 and counts["companies"] > 10
    assert counts["chunks_embedded"] == counts["chunks"] > 0
    assert summary["sample_timeline"]["items"], "the summary shows a real timeline"
    assert summary["sample_answer"]["passages"][0]["score"] > 0.2
    asked = summary["sample_question"]  # a natural-language question: source filter read, answer cited
    assert asked["understood"]["sources"] == ["gong"] and asked["citations"]
    assert all(c["source"] == "gong" for c in asked["citations"]) and asked["answer"].startswith("[1]")
    assert "Question: " in proc.stdout
    assert "Timeline of" in proc.stdout and "succeeded" in proc.stdout
    # one person and one company unified across sources, each identity with how it was linked
    unified = {u["type"]: u for u in summary["unified"]}
    assert len({i["source"] for i in unified["person"]["identities"]}) == 4
    assert len({i["source"] for i in unified["company"]["identities"]}) >= 2
    assert "One person across sources" in proc.stdout
    # nothing left running: the stack file is gone and a second demo can start at once
    assert not (tmp_path / "data" / "demo" / "stack.json").exists()
