"""Building sources and sinks from a configuration file's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.factory import build_sinks, build_source, build_sources
from connectors.files import FilesSink, FilesSource
from connectors.memory import MemorySink, MemorySource
from connectors.sql import SqlSink, SqlSource
from sync.foundation.config import parse_settings
from sync.foundation.errors import ConfigError, SourceError
from sync.foundation.secrets import REDACTOR
from tests.connectors.data import COMPANY

CANARY = "canary-Db-Secret-91ac"


def test_every_type_is_built_from_settings(tmp_path: Path) -> None:
    """Each [sources.X] and [sinks.X] table gives the matching implementation."""
    settings = parse_settings({
        "sources": {"a": {"type": "sql", "url": f"sqlite:///{tmp_path}/erp.db"},
                    "b": {"type": "files", "directory": str(tmp_path)},
                    "c": {"type": "memory", "rows": {"suppliers": [{"Code": "X"}]},
                          "kinds": {"tax_codes": {}}}},
        "sinks": {"d": {"type": "sql", "url": f"sqlite:///{tmp_path}/erp.db"},
                  "e": {"type": "files", "directory": str(tmp_path)},
                  "f": {"type": "memory", "journal_prefix": "Q"}},
    })
    sources = build_sources(settings)
    sinks = build_sinks(settings)
    assert [type(s) for s in sources.values()] == [SqlSource, FilesSource, MemorySource]
    assert [type(s) for s in sinks.values()] == [SqlSink, FilesSink, MemorySink]
    assert set(sources["c"].kinds()) == {"suppliers", "tax_codes"}
    assert len(sources["c"].read("tax_codes", COMPANY).frame) == 0
    for built in (*sources.values(), *sinks.values()):
        built.close()


def test_password_file_is_used_and_never_shown(tmp_path: Path) -> None:
    """The password comes from password_file, is masked in logs and absent from errors."""
    secret_file = tmp_path / "erp_password"
    secret_file.write_text(CANARY + "\n", encoding="utf-8")
    settings = parse_settings({"sources": {"erp": {
        "type": "sql", "url": "postgresql+psycopg://erp@127.0.0.1:1/erp", "timeout_seconds": 2,
        "password_file": str(secret_file), "kinds": {"suppliers": {"query": "SELECT 1"}}}}})
    source = build_source("erp", settings.sources["erp"])
    assert REDACTOR(f"password={CANARY}") == "password=**********"
    with pytest.raises(SourceError) as caught:
        source.read("suppliers", COMPANY)
    assert CANARY not in f"{caught.value} {caught.value!r}"
    source.close()


def test_unreadable_password_file_names_its_key(tmp_path: Path) -> None:
    """A password file that cannot be read fails the build, naming the key."""
    settings = parse_settings({"sinks": {"erp": {
        "type": "sql", "url": "sqlite:///x.db", "password_file": str(tmp_path / "none")}}})
    with pytest.raises(ConfigError) as caught:
        build_sinks(settings)
    assert caught.value.key == "sinks.erp.password_file"


def test_memory_rows_for_an_unknown_kind_name_the_key() -> None:
    """Configured memory rows under a misspelt kind fail validation, naming the key."""
    with pytest.raises(ConfigError) as caught:
        parse_settings({"sources": {"m": {"type": "memory",
                                          "rows": {"supplier": [{"Code": "A"}]}}}})
    assert caught.value.key is not None
    assert caught.value.key.startswith("sources.m")
    assert caught.value.key.endswith("rows")
    assert "'supplier'" in str(caught.value)
