"""Writing configuration as TOML (the demo writes real configuration files; tests do too).

The standard library reads TOML but does not write it; icsync's configuration needs only
strings, numbers, booleans, lists, inline tables, tables and arrays of tables.
"""

from __future__ import annotations

import json
from typing import Any


def toml_value(value: Any) -> str:
    """One TOML value (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def toml_text(data: dict[str, Any], prefix: str = "") -> str:
    """A configuration mapping as TOML: nested mappings become tables, lists of mappings
    arrays of tables (``[[companies]]``)."""
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict) and not _is_table_array(v)]
    for key, value in data.items():
        name = f"{prefix}{json.dumps(key)}"
        if isinstance(value, dict):
            lines += ["", f"[{name}]", toml_text(value, f"{name}.")]
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{name}]]", toml_text(item, f"{name}.")]
    return "\n".join(lines)
