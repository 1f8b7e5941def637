"""Plain progress lines, model cards and the adapter's portable base model (no training here)."""

from __future__ import annotations

import io
import json
import re

import pytest

from speciarl.runs.console import Progress, step_fields
from speciarl.runs.model_card import (
    TINY_BASE,
    CardInfo,
    base_model_id,
    card_info_from_run,
    figures_rows,
    portable_base_model,
    render_card,
)


def test_plain_progress_prints_first_then_every_interval_then_last():
    out = io.StringIO()  # not a terminal: plain lines
    progress = Progress("train", 5, "step", stream=out, every=3600)
    for step in range(1, 6):
        progress.update(step, {"reward": 0.25, "hm": 0.5})
    lines = out.getvalue().splitlines()
    # The first update and the last; the three between fall inside the hour-long interval.
    assert [line.split("  ")[0] for line in lines] == ["train: step 1/5", "train: step 5/5"]
    assert "reward 0.250  hm 0.500" in lines[0]
    assert progress.bar is None


def test_plain_progress_line_rate_and_time_left_worked_by_hand():
    progress = Progress("best-of-8", 10, "image", stream=io.StringIO(), every=0)
    progress.started = 100.0
    progress.done = 4
    # 4 images in 8 s: 2.00 s/image; 6 left at that rate: 12 s.
    assert progress.line("", 108.0) == "best-of-8: image 4/10  (2.00 s/image, 0m12s left)"


def test_step_fields_show_llm_share_only_when_an_llm_judges():
    assert step_fields({"reward": 0.5, "hm": 0.25}) == {"reward": 0.5, "hm": 0.25}
    assert step_fields({"reward": 0.5, "hm": 0.25, "train/judge_llm_share": 0.125})["llm"] == 0.125


RESULTS = {
    "before": {"val/correctness": 0.9, "val/specificity": 0.1, "val/hm": 0.18, "val/n": 512.0},
    "before_best_of_8": {"val/correctness": 0.99, "val/specificity": 0.5, "val/hm": 0.66},
    "after": {"val/correctness": 0.92, "val/specificity": 0.3, "val/hm": 0.45246, "val/n": 512.0},
    "steps": 5,
}


def test_card_carries_metadata_and_the_results_figures():
    info = CardInfo("Qwen/Qwen2.5-VL-7B-Instruct", "dapo+speciarl", "speciarl", "cub200", "adapter", RESULTS)
    card = render_card(info)
    meta = card.split("---")[1]
    assert "license: apache-2.0" in meta and "base_model: Qwen/Qwen2.5-VL-7B-Instruct" in meta
    assert "library_name: peft" in meta
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", card, re.M)
    assert [r[0] for r in rows] == ["base", "base best-of-8", "dapo+speciarl"]
    assert [float(r[3]) for r in rows] == [0.18, 0.66, 0.4525]
    assert figures_rows(RESULTS, "m")[2] == ("m", 0.92, 0.3, 0.45246)


def test_base_model_is_named_portably():
    assert base_model_id({"path": "/models/Qwen/Qwen2.5-VL-7B-Instruct"}) == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert base_model_id({"path": "Qwen/Qwen2.5-VL-7B-Instruct"}) == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert base_model_id({"_target_": "speciarl.built_models.tiny_loading.tiny_policy"}) == TINY_BASE


def test_portable_base_model_replaces_a_local_path_only(tmp_path):
    config = tmp_path / "adapter_config.json"
    config.write_text(json.dumps({"base_model_name_or_path": "/home/me/.cache/speciarl/tiny", "r": 8}))
    portable_base_model(tmp_path, "tiny-qwen2.5-vl")
    assert json.loads(config.read_text()) == {"base_model_name_or_path": "tiny-qwen2.5-vl", "r": 8}
    config.write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-VL-7B-Instruct"}))
    portable_base_model(tmp_path, "something-else")
    assert json.loads(config.read_text())["base_model_name_or_path"] == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_card_info_from_a_folder_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        card_info_from_run(tmp_path, {}, "full")
    assert card_info_from_run(None, {}, "full").method == "unknown"


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal, as a tty does: the progress draws a live bar."""

    def isatty(self) -> bool:
        return True


def test_terminal_progress_is_a_live_bar_with_the_fields():
    out = _Terminal()
    progress = Progress("train", 5, "step", stream=out)
    for step in range(1, 4):
        progress.update(step, {"reward": 0.25, "hm": 0.5})
    assert progress.bar is not None
    screen = out.getvalue()
    assert "\r" in screen and "train:" in screen and "3/5" in screen and "reward 0.250  hm 0.500" in screen
    assert "\n" not in screen  # redrawn in place, not one line per update
    progress.close()
    assert progress.bar is None
