"""The lines of a JSONL file, split the way JSON Lines means: on ``\\n`` only.

``str.splitlines()`` also splits on U+2028, U+2029, U+0085, form feeds and other characters that
JSON allows raw inside a string, so a valid line holding one becomes two invalid halves (and
every later line number shifts). Here the file is split as bytes on ``\\n`` (a trailing ``\\r``
is dropped: Windows line ends) and each line is decoded on its own, so a byte that is not UTF-8
is reported with the file, the line and the column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


class NotUtf8Error(ValueError):
    """A line of a text input is not UTF-8."""


def decode_line(path: Path, number: int, raw: bytes) -> str:
    """The line as text, or :class:`NotUtf8Error` naming the file, line, column and byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        byte = raw[err.start]
        raise NotUtf8Error(
            f"{path}:{number}: not UTF-8 text (byte 0x{byte:02x} at column {err.start + 1}); "
            "save the file as UTF-8"
        ) from None


def jsonl_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` for every non-blank line of ``path`` (numbers from 1).

    Decode each with :func:`decode_line`: a caller decides whether a bad line stops the read.
    """
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark, as some editors write
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if raw.strip():
            yield number, raw
