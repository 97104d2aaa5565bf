"""Record validation as icompleat-api.md Part B says, driven by the kinds registry.

``Code`` 1..20 characters (the registry's limit where it is tighter), ``Name`` 1..100, other
strings at most 100, no control characters and no lone surrogates; ``Rate`` >= 0; ``IsoCode`` two
letters; at most one base currency, and exactly one once a set is complete. A field the kind does
not have is refused. Null, absent and empty optional fields are all stored as absent, as iCompleat
omits empty fields. Every error is ErrorCode 12 naming the record and the field.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.icompleat.sandbox.wire import Record, invalid
from sync.foundation.entities import CODE_MAX, NAME_MAX, TEXT_MAX, FieldSpec, Kind

CURRENCY_API = "currencycodes"
FIELD_TYPE_MAX = 20


def describe(payload: str, index: int, raw: Any) -> str:
    """How a message names record ``index`` of ``payload``: with its code when it has one."""
    code = raw.get("Code") if isinstance(raw, Mapping) else None
    return f"{payload}[{index}] (Code {code!r})" if isinstance(code, str) else f"{payload}[{index}]"


def check_text(value: Any, *, where: str, field: str, max_length: int | None,
               required: bool = False) -> str | None:
    """``value`` as a clean string (None when absent and optional); ErrorCode 12 otherwise."""
    if value is None or value == "":
        if required:
            raise invalid(where, field, "is required; send 1 or more characters")
        return None
    if not isinstance(value, str):
        raise invalid(where, field, f"must be text, got {type(value).__name__}")
    if max_length is not None and len(value) > max_length:
        raise invalid(where, field, f"must be at most {max_length} characters, got "
                                    f"{len(value)}; shorten it")
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise invalid(where, field, f"contains the character U+{ord(bad):04X} (a control "
                                    "character or lone surrogate); remove it")
    return value


def _number(value: Any, *, where: str, spec: FieldSpec) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(where, spec.name, f"must be a number, got {value!r}")
    if value < 0:
        raise invalid(where, spec.name, f"must be 0 or more, got {value!r}")
    if spec.type == "int":
        if value != int(value):
            raise invalid(where, spec.name, f"must be a whole number, got {value!r}")
        return int(value)
    return value


def _value(spec: FieldSpec, value: Any, where: str) -> Any:
    if spec.type == "str":
        text = check_text(value, where=where, field=spec.name, max_length=spec.max_length,
                          required=spec.required)
        if text is not None and spec.check == "iso_country" and not (
                len(text) == 2 and text.isascii() and text.isalpha()):
            raise invalid(where, spec.name, f"must be a 2-letter ISO country code, got {text!r}")
        return text
    if value is None:
        if spec.required:
            raise invalid(where, spec.name, "is required")
        return None
    if spec.type in ("int", "float"):
        return _number(value, where=where, spec=spec)
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise invalid(where, spec.name, f"must be true or false, got {value!r}")
        return value
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise invalid(where, spec.name, "must be a list of objects")
    return value


def clean_record(kind: Kind, raw: Any, where: str) -> Record:
    """One reference record checked against ``kind``; absent and empty values left out."""
    if not isinstance(raw, Mapping):
        raise invalid(where, "Code", "belongs to a record, but the record is not an object")
    specs = {s.name: s for s in kind.fields if s.sent}
    unknown = [k for k in raw if k not in specs]
    if unknown:
        raise invalid(where, str(unknown[0]), f"is not a field of {kind.singular_payload}; "
                                              f"known fields: {', '.join(specs)}")
    clean: Record = {}
    for name, spec in specs.items():
        value = _value(spec, raw.get(name), where)
        if value is not None:
            clean[name] = value
    if clean.get("IsBase") and clean.get("Rate") != 1:
        raise invalid(where, "Rate", "of the base currency must be 1")
    return clean


def check_base_currency(records: Iterable[Record], *, complete: bool, where: str) -> None:
    """At most one base currency in a set, and exactly one when the set is ``complete``."""
    bases = [r["Code"] for r in records if r.get("IsBase")]
    if len(bases) > 1:
        raise invalid(where, "IsBase", f"is true for {len(bases)} currencies {bases}; exactly "
                                       "one currency may be the base")
    if complete and not bases:
        raise invalid(where, "IsBase", "is true for no currency; exactly one currency must "
                                       "be the base")


def clean_value(raw: Any, where: str) -> Record:
    """One custom field list value ``{Code, Name}``."""
    if not isinstance(raw, Mapping):
        raise invalid(where, "Code", "belongs to a value, but the value is not an object")
    unknown = [k for k in raw if k not in ("Code", "Name")]
    if unknown:
        raise invalid(where, str(unknown[0]), "is not a field of a custom field value; "
                                              "known fields: Code, Name")
    return {"Code": check_text(raw.get("Code"), where=where, field="Code",
                               max_length=CODE_MAX, required=True),
            "Name": check_text(raw.get("Name"), where=where, field="Name",
                               max_length=NAME_MAX, required=True)}


def clean_definition(raw: Any, where: str, *, partial: bool = False) -> Record:
    """A custom field definition ``{Name, Type, Mandatory, Active}`` (``partial``: any subset)."""
    if not isinstance(raw, Mapping):
        raise invalid(where, "Name", "belongs to a custom field, but it is not an object")
    known = ("Id", "Name", "Type", "Mandatory", "Active", "Values")
    unknown = [k for k in raw if k not in known]
    if unknown:
        raise invalid(where, str(unknown[0]), f"is not a custom field property; known: {known}")
    clean: Record = {}
    if not partial or "Name" in raw:
        clean["Name"] = check_text(raw.get("Name"), where=where, field="Name",
                                   max_length=NAME_MAX, required=True)
    if not partial or raw.get("Type") is not None:
        clean["Type"] = check_text(raw.get("Type"), where=where, field="Type",
                                   max_length=FIELD_TYPE_MAX) or "List"
    for flag, default in (("Mandatory", False), ("Active", True)):
        value = raw.get(flag)
        if value is not None and not isinstance(value, bool):
            raise invalid(where, flag, f"must be true or false, got {value!r}")
        if value is not None or not partial:
            clean[flag] = default if value is None else value
    return clean


def check_short_text(value: Any, *, where: str, field: str) -> str:
    """A required single text value of at most 100 characters (a journal number, a title)."""
    text = check_text(value, where=where, field=field, max_length=TEXT_MAX, required=True)
    assert text is not None  # required=True never returns None
    return text
