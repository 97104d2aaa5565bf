"""Per-value validation (IBAN, BIC, VAT) over suppliers whose bank details are their own.

The end-to-end benchmark (e2e_bench.py) repeats 10,000 generated suppliers under new codes, so
its million rows hold about 10,000 distinct IBANs and VAT numbers. A real ERP's suppliers each
have their own: every distinct value costs a library call (python-stdnum, schwifty) of tens
of microseconds. This benchmark gives every supplier its own valid GB IBAN and VAT number and
times, each in a fresh process, with one state database:

- optionally (``--before PATH``, a checkout of an earlier version) that version's dry run, as
  the baseline of the same machine and moment;
- a dry run before any run applied (every value judged; a dry run keeps nothing);
- the remote copy stored (as a full sync would), then a run that applies: it compares every
  row, judges every value and keeps the good ones;
- after one row's country became one that does not exist (the row is held back, nothing is
  sent, and no run can reuse the last one's fingerprint), a dry run and a run that applies:
  neither judges the values again (that row's VAT number, now with another country, is the
  one value judged).

Usage: ``python benchmarks/validation_bench.py [--sizes 100000 1000000] [--before PATH]``.
Results with the machine in ``benchmarks/results/validation_bench.md`` (``--tag``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_bench import (
    COMPANY,
    KEY,
    TENANT,
    child,
    icsync,
    make_erp,
    measure,
    publish,
    sync_run,
    write_config,
)
from machine import machine

_LETTERS = {chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)}
_VAT_WEIGHTS = (8, 7, 6, 5, 4, 3, 2)


def gb_iban(i: int) -> str:
    """A valid GB IBAN of its own for each ``i`` (NatWest's bank code, ISO 13616 check)."""
    bban = f"NWBK{600000 + i // 100_000_000:06d}{i % 100_000_000:08d}"
    digits = "".join(_LETTERS.get(c, c) for c in bban + "GB00")
    return f"GB{98 - int(digits) % 97:02d}{bban}"


def gb_vat(i: int) -> str:
    """A valid GB VAT number of its own for each ``i`` (the modulus 97 rule)."""
    head = f"{1000000 + i % 9_000_000:07d}"
    total = sum(int(d) * w for d, w in zip(head, _VAT_WEIGHTS, strict=True))
    return f"GB{head}{-total % 97:02d}"


def own_details(erp: Path) -> int:
    """Give every supplier its own IBAN and VAT number; how many suppliers."""
    with closing(sqlite3.connect(erp)) as db, db:
        rowids = [r[0] for r in db.execute("SELECT rowid FROM suppliers")]
        db.executemany("UPDATE suppliers SET iban = ?, vat_number = ?, sort_code = NULL "
                       "WHERE rowid = ?", ((gb_iban(r), gb_vat(r), r) for r in rowids))
    return len(rowids)


def dry_run(config: Path, before: Path | None = None) -> dict[str, Any]:
    """``icsync sync --dry-run`` of the suppliers in a fresh process: wall, CPU, peak RSS and
    the engine's stages."""
    env = os.environ.copy()
    if before is not None:
        env["PYTHONPATH"] = str(before)
    res = measure(icsync("sync", "--config", str(config), "--kind", "suppliers", "--dry-run",
                         "--json"), env=env)
    data = json.loads(res.pop("stdout"))
    kind = data["companies"][0]["kinds"][0]
    res.pop("stderr")
    res.update({"stages": kind.get("stages", {}), "rejected": kind["rejected"]})
    return res


def one_size(n: int, url: str, before: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        erp, state, config = work / "erp.db", work / "state.db", work / "icsync.toml"
        make_erp(erp, n)
        rows = own_details(erp)
        with closing(sqlite3.connect(erp)) as db:
            distinct = db.execute("SELECT count(DISTINCT iban), count(DISTINCT vat_number) "
                                  "FROM suppliers").fetchone()
        out: dict[str, Any] = {"rows": rows, "distinct_iban": distinct[0],
                               "distinct_vat": distinct[1]}
        if before is not None:
            write_config(config, url, erp, work / "before.db")
            out["before"] = dry_run(config, before)
        write_config(config, url, erp, state)
        out["dry_cold"] = dry_run(config)
        out["seed"] = child("seed", str(config))
        out["apply_cold"] = sync_run(config)
        # One row changed (its country one that does not exist: held back, nothing to send),
        # so neither run below can reuse the last run's fingerprint: both compare every row.
        with closing(sqlite3.connect(erp)) as db, db:
            db.execute("UPDATE suppliers SET iso = 'ZZ' WHERE rowid = 1")
        out["dry_warm"] = dry_run(config)
        out["apply_warm"] = sync_run(config)
        return out


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# Per-value validation over suppliers with their own IBAN and VAT number", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB; Python "
             f"{m['python']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}, schwifty "
             f"{m['schwifty']}; load average at start {m['load_average']}.", "",
             "Each cell is one fresh process (`icsync sync [--dry-run] --kind suppliers`): wall s"
             " / CPU s / peak RSS MB, and the validate stage.", "",
             "| rows | distinct IBAN / VAT | before: dry run | dry run, nothing kept | "
             "run that applies (keeps) | dry run after | run that applies after |",
             "|---:|---|---|---|---|---|---|"]
    for s in res["sizes"]:
        def cell(run: dict[str, Any] | None) -> str:
            if run is None:
                return "-"
            return (f"{run['seconds']:.2f} / {run['cpu_seconds']:.2f} / {run['peak_mb']:.0f} "
                    f"(validate {run['stages'].get('validate', 0):.2f})")
        lines.append(f"| {s['rows']:,} | {s['distinct_iban']:,} / {s['distinct_vat']:,} | "
                     f"{cell(s.get('before'))} | {cell(s['dry_cold'])} | "
                     f"{cell(s['apply_cold'])} | {cell(s['dry_warm'])} | "
                     f"{cell(s['apply_warm'])} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--before", type=Path, help="an earlier checkout, the baseline")
    parser.add_argument("--tag", default="validation_bench")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from connectors.icompleat.sandbox import SandboxServer

    results: dict[str, Any] = {"machine": machine("pandas", "pyarrow", "schwifty"),
                               "sizes": []}
    with SandboxServer(tenant_id=TENANT, company_ids=[COMPANY], api_key=KEY) as sandbox:
        for n in args.sizes:
            results["sizes"].append(one_size(n, sandbox.url, args.before))
            print(json.dumps(results["sizes"][-1], default=str)[:600], flush=True)
    publish(results, markdown(results), args.tag, save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
