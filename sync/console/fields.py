"""The field reference of every kind, from the kinds registry: a table for the terminal and a
Markdown page (docs/fields.md), so neither can drift from what the engine checks and sends."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from sync.foundation.entities import CHECK_NOTES, FIELD_NOTES, KINDS_LIST, FieldSpec, Kind
from sync.foundation.presets import PRESETS

DOC_TITLE = "# The fields of every kind"


def kinds_of(name: str | None) -> list[Kind]:
    """Every kind, or the one called ``name`` (ValueError naming the known ones)."""
    if name is None:
        return list(KINDS_LIST)
    found = [k for k in KINDS_LIST if name in (k.name, k.api, k.label.lower())]
    if not found:
        raise ValueError(f"unknown kind {name!r}; known kinds: "
                         f"{', '.join(k.name for k in KINDS_LIST)}")
    return found


def limit_of(spec: FieldSpec) -> str:
    """The length limit, or what bounds a non-text value."""
    if spec.type == "str":
        return f"{spec.max_length} chars" if spec.max_length else "-"
    return {"int": "whole number", "float": "number", "bool": "true/false",
            "json": "JSON"}[spec.type]


def notes_of(kind: Kind, spec: FieldSpec) -> str:
    """Key, check and where-ERP-data-goes notes of one field, as one sentence list."""
    parts = []
    if spec.name in kind.key:
        parts.append("part of the record key (matched ignoring case and surrounding spaces)")
    if spec.check is not None:
        parts.append(CHECK_NOTES[spec.check])
    if (kind.name, spec.name) in FIELD_NOTES:
        parts.append(FIELD_NOTES[(kind.name, spec.name)])
    return "; ".join(parts)


def rows(kind: Kind) -> Iterable[tuple[str, str, str, str, str, str]]:
    """(field, type, limit, required, sent, notes) for each field of ``kind``."""
    for spec in kind.fields:
        yield (spec.name, spec.type, limit_of(spec), "yes" if spec.required else "no",
               "sent" if spec.sent else "validated only", notes_of(kind, spec))


def table(kind: Kind) -> Table:
    """The fields of one kind as a terminal table (data printed as text, never markup)."""
    out = Table(title=f"{kind.label} ({kind.name}; iCompleat payload {kind.payload})",
                title_justify="left")
    for name in ("field", "type", "limit", "required", "iCompleat", "notes"):
        out.add_column(name, overflow="fold", no_wrap=name == "field")
    for row in rows(kind):
        out.add_row(*(Text(cell) for cell in row))
    return out


def _preset_lines() -> list[str]:
    lines = ["## Presets", "",
             "`preset = \"NAME\"` in a `[sources.<name>]` table (or one kind's table) maps that "
             "ERP's own columns; anything written beside it wins, entry by entry.", "",
             "| preset | ERP | source | kinds |", "|---|---|---|---|"]
    for name, data in PRESETS.items():
        lines.append(f"| `{name}` | {data['erp']} | {data['source']} | "
                     f"{', '.join(data['kinds'])} |")
    return lines


def markdown() -> str:
    """docs/fields.md: every kind's fields, then the presets."""
    lines = [DOC_TITLE, "",
             "Generated from the kinds registry (`sync/foundation/entities.py`) by `icsync fields "
             "--markdown`; a test fails when this page is out of date. A mapping "
             "(`[sources.<name>.kinds.<kind>] mapping`) fills these fields from the ERP's "
             "columns; a field without one takes the column of the same name, ignoring case.",
             ""]
    for kind in KINDS_LIST:
        lines += [f"## {kind.label} (`{kind.name}`)", "",
                  f"Key: {' + '.join(kind.key)}. iCompleat payload `{kind.payload}`; synced "
                  f"after kinds of a lower order (this one: {kind.order}).", "",
                  "| field | type | limit | required | iCompleat | notes |",
                  "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                  for row in rows(kind)]
        lines.append("")
    lines += _preset_lines()
    return "\n".join(lines) + "\n"
