"""Configuration written as TOML reads back as the same mapping."""

import tomllib

from sync.foundation.tomlout import toml_text


def test_round_trip_with_tables_arrays_and_unicode() -> None:
    """Nested tables, arrays of tables, inline tables and non-ASCII text survive a round trip."""
    data = {
        "state": {"url": "sqlite:///s.db", "lease_seconds": 5.5},
        "sources": {"erp": {"type": "memory", "rows": {"tax_codes": [{"Code": "T1", "Rate": 20}]}}},
        "companies": [{"name": "Café ünïcode", "kinds": ["suppliers"], "enabled": True},
                      {"name": "b", "schedules": {"reference": "15m"}}],
    }
    assert tomllib.loads(toml_text(data)) == data
