"""The one clock helper: the host's time as aware UTC, and naive database values made aware.

Every module calls ``clock.utcnow()`` through this module (not a copied name), so a test that
steps the host clock patches one attribute. Leases never use it: they run on database time.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The host's clock, aware UTC: for informational times (runs, journal, ledger, tokens)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware datetime (naive values read back from a database are UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def require_aware(value: datetime, name: str) -> datetime:
    """``value`` if it carries a time zone; ValueError naming ``name`` otherwise."""
    if value.tzinfo is None:
        raise ValueError(f"{name}: naive datetime {value.isoformat()}; pass an aware UTC one")
    return value
