"""A sweep's jobs reuse the "before" figures, and a job that reuses them trains exactly as one that measured."""

from __future__ import annotations

from speciarl.train import train


def test_a_job_reusing_before_trains_exactly_as_if_it_had_measured(make_config, tmp_path):
    cache = tmp_path / "cache"
    common = ("debug=default", "eval.best_of_n=2", "trainer.max_steps=2", "trainer.val_check_interval=2")
    first = train(make_config(*common, "optimizer.lr=1e-4", f"eval.before_cache={cache}"))
    assert first["eval_cache"]["reused"] == []
    # another training setting, the same base and measurement: both rows are read back
    reused = train(make_config(*common, "optimizer.lr=3e-4", f"eval.before_cache={cache}"))
    assert reused["eval_cache"]["reused"] == ["before", "before_best_of_2"]
    # the same job measuring for itself
    measured = train(make_config(*common, "optimizer.lr=3e-4", "eval.before_cache=null"))
    assert "eval_cache" not in measured
    for row in ("before", "before_best_of_2", "after"):
        assert reused[row] == measured[row], row
    assert reused["before"] == first["before"]
