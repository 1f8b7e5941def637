"""Judge a JSONL of (ground truth, prediction) pairs with any configured judge; audit it against humans.

    python -m speciarl.verify input=pairs.jsonl                        # taxonomy judge
    python -m speciarl.verify input=pairs.jsonl verifier=tiered verifier.llm.base_url=http://host:8000/v1
    python -m speciarl.verify input=pairs.jsonl verifier=llm_local verifier.llm.model_path=/models/judge

Each input line is a JSON object with ``ground_truth`` and ``prediction`` (or ``completion``, from
which the ``<answer>`` is extracted); an optional ``human`` field holds a human verdict (one of the
six categories), and then the agreement of the judge with it is reported. The output JSONL repeats
every input line with ``verdict`` added, in order; a line that could not be read keeps its place,
with ``verdict: null`` and an ``error``. Prints the category counts, C/S/HM and the judge's
counters. Exit status 1 when any line was unreadable or could not be judged (judge errors).
"""

from __future__ import annotations

from speciarl.cli_help import answer_help

answer_help("verify", __name__)  # before torch and Lightning load: --help in about a second

import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from speciarl.core.categories import Category, Judgement, Outcome, extract_answer, parse_judgement
from speciarl.data.jsonl_lines import NotUtf8Error, decode_line, jsonl_lines
from speciarl.evaluation.loop import resolve
from speciarl.evaluation.metrics import summary
from speciarl.runs.atomic_files import atomic_file
from speciarl.verifier.redaction import reject_url_credentials

log = logging.getLogger("speciarl.verify")
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def read_pairs(
    path: Path, keys: DictConfig | dict[str, str]
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Every line of ``path`` as a row, and per row what kept it from being judged (None: nothing).

    The problems are kept apart from the rows: a row's own fields (an ``"error"`` among them)
    are data to carry through, never instructions to skip it. Lines are split on ``\n`` only
    (``data.jsonl_lines``): a raw U+2028 inside a string stays in its line.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"no input file at {path}: expected a JSONL of {{'{keys['ground_truth']}': ..., "
            f"'{keys['prediction']}': ...}} objects"
        )
    rows: list[dict[str, Any]] = []
    problems: list[str | None] = []
    for number, raw in jsonl_lines(path):
        try:
            row = json.loads(decode_line(path, number, raw))
        except NotUtf8Error as err:
            rows.append({"line": number})
            problems.append(str(err))
            continue
        except json.JSONDecodeError as err:
            rows.append({"line": number})
            problems.append(f"not JSON: {err.msg}")
            continue
        if not isinstance(row, dict):
            rows.append({"line": number})
            problems.append("not a JSON object")
            continue
        rows.append(row)
        problems.append(_pair_problem(row, keys))
    return rows, problems


def _pair_problem(row: dict[str, Any], keys: Any) -> str | None:
    """Why ``row`` holds no (ground truth, prediction) pair; fills the prediction from a completion."""
    truth = row.get(keys["ground_truth"])
    if not isinstance(truth, str) or not truth.strip():
        return f"no {keys['ground_truth']!r} string"
    if keys["prediction"] in row:
        prediction = row[keys["prediction"]]
        if prediction is not None and not isinstance(prediction, str):
            return f"{keys['prediction']!r} must be a string or null"
        return None
    if isinstance(row.get(keys["completion"]), str):
        row[keys["prediction"]] = extract_answer(row[keys["completion"]])
        return None
    return f"neither {keys['prediction']!r} nor {keys['completion']!r}"


def judge_rows(
    judge: Any, rows: list[dict[str, Any]], problems: list[str | None], keys: Any, chunk: int
) -> list[Judgement | None]:
    """The judge's verdict for every readable row (None for unreadable ones), ``chunk`` pairs per call.

    A judge call that raises (a damaged cache, a bug) does not lose the file: its rows get
    ``judge error`` with the exception in ``judge_failure``, the error is logged with its
    traceback, and the other chunks are still judged, so every line is written.
    """
    readable = [i for i, problem in enumerate(problems) if problem is None]
    verdicts: list[Judgement | None] = [None] * len(rows)
    for start in range(0, len(readable), chunk):
        part = readable[start : start + chunk]
        try:
            got = resolve(
                judge.judge(
                    [rows[i][keys["ground_truth"]] for i in part], [rows[i][keys["prediction"]] for i in part]
                )
            )
        except Exception as err:
            log.exception(
                "judging non-blank lines %d..%d failed; written as judge errors", part[0] + 1, part[-1] + 1
            )
            got = [Outcome.JUDGE_ERROR] * len(part)
            for i in part:
                rows[i]["judge_failure"] = f"{type(err).__name__}: {err}"
        for i, verdict in zip(part, got, strict=True):
            verdicts[i] = verdict
    return verdicts


def agreement(
    rows: list[dict[str, Any]], verdicts: list[Judgement | None], human_key: str
) -> dict[str, Any] | None:
    """Share of rows where the judge agrees with the human verdict, and the confusion counts."""
    pairs = []
    for row, verdict in zip(rows, verdicts, strict=True):
        human = row.get(human_key)
        if verdict is None or not isinstance(human, str):
            continue
        try:
            pairs.append((parse_judgement(human.strip().lower()), verdict))
        except ValueError:
            continue
    if not pairs:
        return None
    confusion = Counter((h.value, j.value) for h, j in pairs)
    return {
        "n": len(pairs),
        "agreement": sum(h == j for h, j in pairs) / len(pairs),
        "confusion": {f"{h} -> {j}": n for (h, j), n in sorted(confusion.items())},
    }


def report(
    verdicts: list[Judgement | None], unreadable: int, audit: dict[str, Any] | None, stats: Any
) -> str:
    judged = [v for v in verdicts if v is not None]
    counts = Counter(v.value for v in judged)
    figures = summary(judged)
    lines = [f"{len(verdicts)} lines: {len(judged)} judged, {unreadable} unreadable"]
    for name in [c.value for c in Category] + [o.value for o in (Outcome.PARSE_FAILURE, Outcome.JUDGE_ERROR)]:
        lines.append(f"  {name:<16}{counts.get(name, 0):>8}")
    lines.append(
        f"correctness {figures['correctness']:.3f}  specificity {figures['specificity']:.3f}  hm {figures['hm']:.3f}"
    )
    if audit:
        lines.append(f"agreement with human verdicts: {audit['agreement']:.3f} over {audit['n']} pairs")
        lines.append("  human -> judge counts:")
        lines.extend(f"    {k}: {v}" for k, v in audit["confusion"].items())
    if stats:
        lines.append("judge: " + ", ".join(f"{k} {v:g}" for k, v in sorted(dict(stats).items())))
    return "\n".join(lines)


def verify(cfg: DictConfig) -> int:
    """Judge the file, write the verdicts, print the report; the exit status (0 when all judged)."""
    reject_url_credentials(cfg)
    source = Path(cfg.input).expanduser()
    keys = cfg.fields
    rows, problems = read_pairs(source, keys)
    judge = instantiate(cfg.verifier)
    verdicts = judge_rows(judge, rows, problems, keys, int(cfg.chunk))
    target = Path(cfg.output).expanduser() if cfg.output else source.with_suffix(".verdicts.jsonl")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target, "w") as fh:  # whole or not at all (runs.atomic_files)
        for row, problem, verdict in zip(rows, problems, verdicts, strict=True):
            record = {**row, "verdict": None if verdict is None else verdict.value}
            if problem is not None:
                record["error"] = problem
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    unreadable = sum(problem is not None for problem in problems)
    for row, problem in zip(rows, problems, strict=True):
        if problem is not None:
            log.warning("%s line %s skipped: %s", source, row.get("line", "?"), problem)
    audit = agreement(rows, verdicts, keys["human"])
    totals = getattr(judge, "totals", None)
    print(report(verdicts, unreadable, audit, totals))
    print(f"verdicts written to {target}")
    errors = sum(v is Outcome.JUDGE_ERROR for v in verdicts)
    return 1 if unreadable or errors else 0


@hydra.main(config_path=CONF_DIR, config_name="verify", version_base="1.3")
def main(cfg: DictConfig) -> None:
    sys.exit(verify(cfg))


if __name__ == "__main__":
    main()
