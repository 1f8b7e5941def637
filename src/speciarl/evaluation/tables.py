"""The one markdown table writer of the reports: grid summaries, the reproduction, evaluations.

Every table in ``summary.md`` (``speciarl.runs.sweep``), ``table.md`` (``speciarl.reproduce``) and
``report.md`` (``speciarl.evaluation.report``) comes from :func:`markdown_table`, so they share
one layout: a header row, a ``|---|`` rule, one row per item.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a GitHub markdown table; cells are written with ``str``.

    A ``|`` inside a cell is escaped, so a label or an error message cannot split a column.
    """
    lines = [_row(header), "|" + "---|" * len(header)]
    lines += [_row(row) for row in rows]
    return lines


def titled_table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A blank line, ``title``, a blank line and the table: one section of a report."""
    return ["", title, "", *markdown_table(header, rows)]


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
