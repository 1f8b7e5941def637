"""The judge-load benchmark runs end to end on a small stream (its figures are in docs/judge.md)."""

import json
import runpy
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "judge_load.py"


def test_small_stream(tmp_path, monkeypatch, capsys):
    out = tmp_path / "load.json"
    monkeypatch.setattr(
        sys, "argv", [str(BENCHMARK), "--steps", "2", "--prompts", "8", "--rollouts", "4", "--out", str(out)]
    )
    runpy.run_path(str(BENCHMARK), run_name="__main__")
    results = {r["setup"]: r for r in json.loads(out.read_text())["results"]}
    assert "| exact + taxonomy + cache (tiered) |" in capsys.readouterr().out
    everything = results["LLM for every verdict"]
    tiered = results["exact + taxonomy + cache (tiered)"]
    no_cache = results["exact match + taxonomy, no cache"]
    # the taxonomy places most answers, so the tiers cut the LLM's share; the cache never adds to it
    assert tiered["first_step_share"] < 0.5 * everything["first_step_share"]
    assert tiered["first_step_share"] == no_cache["first_step_share"]
    assert tiered["requests_total"] <= no_cache["requests_total"]
