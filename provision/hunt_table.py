"""The seed's four-column hunt-group table, read and written as text. Pure.

    Sip number <TAB or ,> Next Number <TAB or ,> Service number <TAB or ,> Start number

`1` means an empty field; `0000` or `00000` in Next Number ends the chain. A first row whose
first field is not a number is taken as the header. Blank lines and lines starting with
`#` are ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kemi.directory import TERMINATORS

EMPTY = "1"
HEADER = ("Sip number", "Next Number", "Service number", "Start number")
FIELDS = HEADER


class TableError(ValueError):
    def __init__(self, line: int, field: str | None, rule: str):
        where = f"line {line}" + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {rule}")
        self.line, self.field, self.rule = line, field, rule


@dataclass(frozen=True)
class HuntRow:
    line: int
    sip_number: str
    next_number: str | None        # None: the chain ends (0000)
    service_number: str | None = None
    start_number: str | None = None


def _cell(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", EMPTY) else value


DIGITS = re.compile(r"[0-9]+")


def parse(text: str) -> list[HuntRow]:
    rows: list[HuntRow] = []
    first = True
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.strip().startswith("#"):
            continue
        line = raw.strip(" \r\n")  # keep tabs: empty trailing cells are still cells
        cells = line.split("\t") if "\t" in line else line.split(",")
        if first:
            first = False
            if not re.search(r"\d", cells[0]):
                continue  # the header: only the first line, and only text without digits
        if len(cells) != 4:
            raise TableError(line_no, None, f"expected 4 fields ({', '.join(HEADER)}), found {len(cells)}")
        sip, nxt, service, start = (c.strip() for c in cells)
        for name, value in zip(HEADER, (sip, nxt, service, start)):
            if value and not DIGITS.fullmatch(value):
                raise TableError(line_no, name, f"{value!r} is not a number (digits only; 1 means empty)")
        if _cell(sip) is None:
            raise TableError(line_no, HEADER[0], "every row needs a SIP number")
        if _cell(nxt) is None:
            raise TableError(line_no, HEADER[1], "every SIP number needs a next number or 0000 to end the chain")
        rows.append(HuntRow(line_no, sip, None if nxt in TERMINATORS else nxt, _cell(service), _cell(start)))
    return rows


def format_rows(rows: list[tuple[str, str | None, str | None, str | None]], sep: str = "\t") -> str:
    """Rows of (sip, next or None, service or None, start or None) as the seed's table."""
    lines = [sep.join(HEADER)]
    for sip, nxt, service, start in rows:
        lines.append(sep.join((sip, nxt or "0000", service or EMPTY, start or EMPTY)))
    return "\n".join(lines) + "\n"
