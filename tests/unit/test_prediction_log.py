"""Predictions survive an interruption: resume, a cut last line, and a refusal to mix two runs."""

import json

import pytest

from speciarl.evaluation.prediction_log import PredictionLog


def test_resume_and_cut_line(tmp_path):
    path = tmp_path / "p.jsonl"
    log = PredictionLog(path, {"model": "a"})
    log.append([{"index": 0, "category": "specific"}, {"index": 1, "category": "wrong"}])
    with path.open("a") as fh:
        fh.write('{"index": 2, "categ')  # killed mid-write
    again = PredictionLog(path, {"model": "a"})
    assert again.done == {0, 1}
    again.append([{"index": 2, "category": "generic"}])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["index"] for r in lines] == [0, 1, 2]


def test_different_run_is_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    PredictionLog(path, {"model": "a", "best_of": 1}).append([{"index": 0}])
    with pytest.raises(ValueError, match=r"differs in \['best_of'\]"):
        PredictionLog(path, {"model": "a", "best_of": 8})
    fresh = PredictionLog(path, {"model": "a", "best_of": 8}, resume=False)
    assert fresh.done == set()
