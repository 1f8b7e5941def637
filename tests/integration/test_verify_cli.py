"""``python -m speciarl.verify``: judge a JSONL with any judge, count, write verdicts, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from chat_server import ChatCompletionsServer
from speciarl.verify import CONF_DIR, verify

ROWS = [
    {"ground_truth": "crimson circle", "prediction": "red disc", "human": "specific"},
    {"ground_truth": "crimson circle", "prediction": "circle", "human": "generic"},
    {"ground_truth": "crimson circle", "completion": "<think>red</think><answer>round</answer>"},
    {"ground_truth": "crimson circle", "prediction": None},
    {"ground_truth": "crimson circle", "prediction": "crimsn circle", "human": "specific"},
    {"ground_truth": "crimson circle", "prediction": "crimsn circle"},
]


def write_input(path: Path, extra_lines: list[str] = ()) -> Path:
    lines = [json.dumps(r) for r in ROWS[:3]] + list(extra_lines) + [json.dumps(r) for r in ROWS[3:]]
    path.write_text("\n".join(lines) + "\n")
    return path


def compose_verify(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="verify", overrides=list(overrides))


def test_taxonomy_judge_counts_and_writes_every_line_in_order(tmp_path, capsys):
    source = write_input(tmp_path / "pairs.jsonl", ["this line is not json", '{"prediction": "circle"}'])
    status = verify(compose_verify(f"input={source}"))
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "pairs.verdicts.jsonl").read_text().splitlines()]
    assert [r["verdict"] for r in rows] == [
        "specific",
        "less specific",
        "generic",
        None,  # not JSON
        None,  # no ground truth
        "parse failure",
        "wrong",  # unknown to the taxonomy, and no LLM behind it
        "wrong",
    ]
    assert rows[3]["error"].startswith("not JSON") and rows[4]["error"] == "no 'ground_truth' string"
    assert rows[2]["prediction"] == "round"  # extracted from the completion
    assert status == 1  # two lines could not be read
    assert "8 lines: 6 judged, 2 unreadable" in out
    assert "  wrong                  2" in out
    # human verdicts on 3 lines; the judge agrees on 1 (specific), not on "generic" or the misspelling
    assert "agreement with human verdicts: 0.333 over 3 pairs" in out


def test_tiered_judge_caches_across_runs(tmp_path, capsys):
    source = write_input(tmp_path / "pairs.jsonl")
    cache = tmp_path / "verdicts.sqlite"
    with ChatCompletionsServer(lambda request: "specific") as server:
        overrides = ["verifier=tiered", f"verifier.llm.base_url={server.url}", f"verifier.cache.url={cache}"]
        assert verify(compose_verify(f"input={source}", *overrides)) == 0
        calls = len(server.completions)
        capsys.readouterr()
        # a fresh judge and cache connection, as after a restart
        assert verify(compose_verify(f"input={source}", *overrides)) == 0
        calls_again = len(server.completions) - calls
    out = capsys.readouterr().out
    assert_second_run_read_the_cache(calls, calls_again, tmp_path / "pairs.verdicts.jsonl", out)


@pytest.mark.slow
def test_the_command_line_with_the_tiered_judge_caches_across_processes(tmp_path):
    source = write_input(tmp_path / "pairs.jsonl")
    cache = tmp_path / "verdicts.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(CONF_DIR).parent / "src"), *sys.path])}
    with ChatCompletionsServer(lambda request: "specific") as server:
        args = [
            sys.executable,
            "-m",
            "speciarl.verify",
            f"input={source}",
            f"output={tmp_path / 'out.jsonl'}",
            "verifier=tiered",
            f"verifier.llm.base_url={server.url}",
            f"verifier.cache.url={cache}",
        ]
        first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        calls = len(server.completions)
        second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        calls_again = len(server.completions) - calls
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert_second_run_read_the_cache(calls, calls_again, tmp_path / "out.jsonl", second.stdout)


def assert_second_run_read_the_cache(calls: int, calls_again: int, verdicts: Path, printed: str) -> None:
    """The tiered judge asked the LLM once (the misspelling), and the rerun only read the cache."""
    assert calls == 1  # the misspelling, asked once for its two lines
    assert calls_again == 0
    rows = [json.loads(line) for line in verdicts.read_text().splitlines()]
    assert [r["verdict"] for r in rows] == [
        "specific",
        "less specific",
        "generic",
        "parse failure",
        "specific",
        "specific",
    ]
    assert "agreement with human verdicts: 0.667 over 3 pairs" in printed
    assert "cache 2" in printed and "llm 0" in printed
