"""Helpers of the real-export tests: sample folders, configurations, the CLI in process."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from connectors.base import CompanyRef
from connectors.factory import build_source
from sync.foundation.config import Settings, parse_settings
from sync.foundation.entities import get_kind
from sync.foundation.tomlout import toml_text
from sync.reference.rules.normalise import KindMapping, Normalised, normalise
from tests.fixtures.sandbox import CANARY_KEY, COMPANY_ID, TENANT_ID

SAMPLES = Path(__file__).parent / "samples"
COMPANY = CompanyRef("uk", COMPANY_ID)


def copy_samples(erp: str, to: Path) -> Path:
    """A writable copy of one ERP's sample exports."""
    target = to / erp
    shutil.copytree(SAMPLES / erp, target)
    return target


def settings(sandbox_url: str, state: Path, source: dict[str, Any],
             **extra: Any) -> dict[str, Any]:
    """A whole configuration: the sandbox, ``source`` as source ``erp``, one company ``uk``."""
    company = {"name": "uk", "company_id": COMPANY_ID, "source": "erp",
               **extra.pop("company", {})}
    return {
        "state": {"url": f"sqlite:///{state}", "lease_seconds": 3},
        "icompleat": {"base_url": sandbox_url, "tenant_id": TENANT_ID, "api_key": CANARY_KEY,
                      "requests_per_minute": 0, "timeout_seconds": 5, "backoff_seconds": 0.01,
                      "max_backoff_seconds": 0.05},
        "sources": {"erp": source}, "companies": [company], **extra,
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """``data`` as a TOML file at ``path``."""
    path.write_text(toml_text(data), encoding="utf-8")
    return path


def read_kind(source: dict[str, Any], kind: str, **extra: Any) -> Normalised:
    """One kind of ``source`` read and normalised as a sync would (presets resolved)."""
    parsed: Settings = parse_settings({"sources": {"erp": source}, **extra})
    config = parsed.sources["erp"]
    reader = build_source("erp", config)
    try:
        frame: pd.DataFrame = reader.read(kind, COMPANY).frame
    finally:
        reader.close()
    return normalise(get_kind(kind), frame, KindMapping.from_config(config.kinds.get(kind)),
                     parsed.validation)


def codes(norm: Normalised) -> list[str]:
    """The keys of the rows that can be sent, sorted."""
    return sorted(map(str, norm.frame.index))


def reasons(norm: Normalised) -> dict[str, set[str]]:
    """Reason -> the keys (or row numbers) rejected for it."""
    out: dict[str, set[str]] = {}
    for r in norm.rejected:
        out.setdefault(r.reason, set()).add(r.key or f"row {r.row}")
    return out
