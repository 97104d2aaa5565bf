"""S12 at the pure level: bad text never crashes a run and follows the documented rules.

Non-UTF-8 bytes, control characters, lone surrogates and overlong fields are quarantined with a
reason; emoji, RTL marks and combining accents are kept (NFC) and NBSP becomes a space; a second
plan over the same input against the post-apply state is empty.
"""

from __future__ import annotations

import pandas as pd

from tests.reference.rules.model import Remote, check, run
from tests.reference.rules.support import SUPPLIERS, source_frame

ROWS: list[tuple[str, object, str | None]] = [
    # code, name as read, the rejection reason (None: accepted)
    ("B01", b"Caf\xe9 Lyon", "bad_encoding"),          # Latin-1 bytes, not UTF-8
    ("B02", "Bell\x07 Ltd", "control_chars"),
    ("B03", "Escape \x1b[31m Ltd", "control_chars"),
    ("B04", "Broken \udce9 Ltd", "bad_encoding"),      # a lone surrogate (surrogateescape)
    ("B05", "Lost \ufffd Ltd", "bad_encoding"),        # U+FFFD: a reader already gave up
    ("B06", "N" * 101, "too_long"),
    ("B07", "Emoji 🚚📦 Ltd", None),
    ("B08", "\u200fشركة الشحن\u200f", None),           # RTL marks kept
    ("B09", "Cafe\u0301 Ltd", None),                   # NFD accent -> NFC
    ("B10", "Non\u00a0breaking\u00a0Ltd", None),       # NBSP -> space
    ("B11", "  Padded Ltd\t", None),
    ("B12", "Zero\u200dJoiner 👩\u200d💻", None),
    ("B13", b"Caf\xc3\xa9 UTF-8 bytes", None),
]


def erp() -> pd.DataFrame:
    """The ERP rows above, plus clean ones."""
    codes = [c for c, _, _ in ROWS] + [f"C{i:03d}" for i in range(50)]
    names = [n for _, n, _ in ROWS] + [f"Clean {i}" for i in range(50)]
    return source_frame({"Code": codes, "Name": names})


def test_bad_text_is_quarantined_with_its_reason() -> None:
    """Each bad row is rejected with the documented reason; nothing crashes."""
    result = run(Remote(SUPPLIERS), erp())
    got = {r.key: r.reason for r in result.normalised.rejected}
    assert got == {code: why for code, _, why in ROWS if why is not None}
    for rejection in result.normalised.rejected:
        assert rejection.field == "Name"
        assert rejection.message.startswith(f"Suppliers row {rejection.row} ({rejection.key})")


def test_good_text_is_transformed_by_the_documented_rules() -> None:
    """Emoji and RTL marks are kept, NFD becomes NFC, NBSP a space, padding is trimmed."""
    frame = run(Remote(SUPPLIERS), erp()).normalised.frame
    assert frame.at["B07", "Name"] == "Emoji 🚚📦 Ltd"
    assert frame.at["B08", "Name"] == "\u200fشركة الشحن\u200f"
    assert frame.at["B09", "Name"] == "Caf\u00e9 Ltd"
    assert frame.at["B10", "Name"] == "Non breaking Ltd"
    assert frame.at["B11", "Name"] == "Padded Ltd"
    assert frame.at["B12", "Name"] == "Zero\u200dJoiner 👩\u200d💻"
    assert frame.at["B13", "Name"] == "Café UTF-8 bytes"


def test_the_second_run_makes_zero_writes() -> None:
    """After applying, a second plan over the same input is empty (the read-back agrees)."""
    remote = Remote(SUPPLIERS)
    first = run(remote, erp())
    assert first.calls == {"refresh": 1}
    assert check(remote, first.normalised.frame).ok
    second = run(remote, erp())
    assert second.plan.strategy == "none"
    assert sum(second.calls.values()) == 0
    assert second.company_plan().plan_hash == run(remote, erp()).company_plan().plan_hash


def test_fixing_a_row_releases_it() -> None:
    """Once the ERP row is fixed, it is sent like any other."""
    remote = Remote(SUPPLIERS)
    run(remote, erp())
    fixed = erp()
    fixed.loc[fixed["Code"] == "B02", "Name"] = "Bell Ltd"
    result = run(remote, fixed)
    assert remote.records["B02"]["Name"] == "Bell Ltd"
    assert "B02" not in {r.key for r in result.normalised.rejected}
