"""End to end: ``icsync sync --dry-run --kind suppliers --json`` at 10k, 100k and 1M suppliers.

Per size, every phase in its own fresh process, measured from outside (wall time, user + system
CPU and peak resident set size of that process, from ``wait4``), in this order:

- ``adbc``: reference line, the same query read as an Arrow table through ADBC's SQLite driver;
- ``baseline``: reference line, plain pandas ``read_sql`` plus a blake2b digest per row into a
  dict (the cheapest plain Python that could still find changed rows);
- ``dry``: the real command, state empty (so iCompleat's empty list is read back first), with
  the engine's breakdown by stage from its ``--json`` result (read, fingerprint, normalise,
  validate, digest, state, plan, readback);
- ``noop``: the real command without ``--dry-run`` over the same rows with all of them already
  in state (seeded, not timed), so nothing is to be done: first the full comparison (it stores
  the kind's fingerprint), then ``noop_again``, the fingerprint fast path;
- ``bad``: three rows of the ERP (first, middle, last) then get an unknown ISO country, as real
  exports keep a few bad rows: the first run compares every row and holds the three (their
  stored records are read for the plan), then ``bad_again`` replays that run's findings.

The ERP is the demo's SQLite schema: 10,000 suppliers from the demo's generator (GB and EU
suppliers, IBANs, sort codes or BICs, VAT numbers) repeated under new codes, e-mail addresses
and phone numbers up to the size, read by the demo's supplier query (a join-free SELECT ordered
by code with a JSON column). The iCompleat sandbox runs in this process on loopback.

Also a start-up benchmark of each command (``startup``): wall time and peak RSS of
``icsync --help``, ``icsync status``, ``icsync errors list``, ``icsync check --help`` and the other
commands' ``--help``, on a state database with 10,000 runs and 1,000 quarantined rows, and which
of pandas, pyarrow and SQLAlchemy each one imported.

The project's modules are byte-compiled first (``compileall``), as an installed product's are
(the container image compiles them; a checkout's first run writes them): otherwise a shell with
``PYTHONDONTWRITEBYTECODE`` set would time the compiling of the project's own modules in every
process.

Run: ``uv run python benchmarks/e2e_bench.py [--sizes 10000 100000 1000000] [--no-save]
[--skip-startup]``. Results: benchmarks/results/e2e_bench.json and e2e_bench.md.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # also when a phase runs it through runpy

from machine import machine  # noqa: E402 (benchmarks/machine.py)

RESULTS = ROOT / "benchmarks" / "results"
TENANT = "b3a1c2d4-0000-4000-8000-000000000012"
COMPANY = "c0de0000-0000-4000-8000-000000000012"
KEY = "e2e-benchmark-key-not-a-secret"  # the throw-away sandbox's key
BASE_ROWS = 10_000
STAGES = ("read", "fingerprint", "normalise", "validate", "digest", "state", "plan", "readback")
HEAVY = ("pandas", "pyarrow", "sqlalchemy", "numpy")
HWM = ("import atexit, sys\n"
       "def _hwm():\n"
       "    for line in open('/proc/self/status'):\n"
       "        if line.startswith('VmHWM:'):\n"
       "            sys.stderr.write('\\nVMHWM ' + line.split()[1] + '\\n')\n"
       "atexit.register(_hwm)\n")


# A fixed pure-Python loop timed in a fresh process: how fast this shared machine is running
# just then (its speed drifts by a third or more from minute to minute). Higher is slower.
SPEED_PROBE = "x = 0\nfor i in range(20_000_000):\n    x += i\n"


def speed() -> float:
    """Seconds of :data:`SPEED_PROBE` (start-up included, a few milliseconds)."""
    return float(measure([sys.executable, "-c", SPEED_PROBE])["seconds"])


def measure(argv: list[str], *, env: dict[str, str] | None = None,
            timeout: float = 900) -> dict[str, Any]:
    """Run ``argv`` as a fresh process: wall s, CPU s, peak RSS MB, exit code, stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env or os.environ.copy(),
                                cwd=ROOT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        # ru_maxrss keeps the high-water mark of the forked copy of this (large) process
        # across exec, so the child reports its own VmHWM (see HWM) when it can.
        hwm = [line for line in stderr.splitlines() if line.startswith("VMHWM ")]
        peak = int(hwm[-1].split()[1]) / 1024 if hwm else usage.ru_maxrss / 1024
        return {"seconds": round(wall, 3), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                "peak_mb": round(peak, 1), "exit": proc.returncode,
                "stdout": out.read().decode(errors="replace"), "stderr": stderr[-2000:]}


def make_erp(path: Path, n: int) -> None:
    """The demo ERP with ``n`` suppliers: 10k generated ones repeated under new codes."""
    from sync.demo.data import create_erp

    create_erp(path, suppliers_count=min(n, BASE_ROWS))
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE suppliers SET supplier_code = printf('S%07d', rowid), "
                   "email = 'accounts' || rowid || '@' || substr(email, instr(email, '@') + 1)")
        db.execute("CREATE TEMP TABLE base AS SELECT rowid AS r, * FROM suppliers")
        for start in range(BASE_ROWS, n, BASE_ROWS):
            db.execute(
                f"INSERT INTO suppliers SELECT printf('S%07d', r + {start}), supplier_name, "
                "address1, address2, town, county, postcode, country, iso, "
                f"substr(phone, 1, length(phone) - 4) || printf('%04d', (r + {start}) % 10000), "
                f"'accounts' || (r + {start}) || '@' || substr(email, instr(email, '@') + 1), "
                "bank_name, iban, sort_code, vat_number, payment_days, terms, default_account "
                f"FROM base WHERE r + {start} <= {n}")


def write_config(path: Path, url: str, erp: Path, state: Path) -> None:
    """The TOML configuration every phase uses."""
    from sync.demo.data import source_settings
    from sync.foundation.tomlout import toml_text

    source = source_settings(erp)
    source["kinds"] = {"suppliers": source["kinds"]["suppliers"]}
    data = {"state": {"url": f"sqlite:///{state}"},
            "icompleat": {"base_url": url, "tenant_id": TENANT, "api_key": KEY,
                          "requests_per_minute": 0, "timeout_seconds": 120},
            "sources": {"erp": source},
            "companies": [{"name": "bench", "company_id": COMPANY, "source": "erp",
                           "kinds": ["suppliers"]}]}
    path.write_text(toml_text(data), encoding="utf-8")


def query() -> str:
    """The supplier query of the demo ERP."""
    from sync.demo.data import source_settings

    return str(source_settings(Path("x"))["kinds"]["suppliers"]["query"])


def phase_adbc(erp: Path) -> dict[str, Any]:
    """Child: the supplier query as an Arrow table through ADBC's SQLite driver."""
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(str(erp)) as conn, conn.cursor() as cur:
        cur.execute(query())
        table = cur.fetch_arrow_table()
    return {"rows": table.num_rows}


def phase_baseline(erp: Path) -> dict[str, Any]:
    """Child: pandas read_sql, then a blake2b digest per row into a dict."""
    import hashlib

    import pandas as pd

    with closing(sqlite3.connect(erp)) as conn:
        frame = pd.read_sql(query(), conn, dtype=object, coerce_float=False)
    digests = {row[0]: hashlib.blake2b(repr(row).encode(), digest_size=16).hexdigest()
               for row in frame.itertuples(index=False, name=None)}
    return {"rows": len(digests)}


def phase_seed(config_file: Path) -> dict[str, Any]:
    """Child: store every supplier the source holds as the remote copy (as a full sync would)."""
    from connectors.base import CompanyRef
    from connectors.factory import build_source
    from sync.foundation.config import load_config
    from sync.foundation.entities import get_kind
    from sync.reference.apply import frame_records
    from sync.reference.kind import kind_mapping
    from sync.reference.rules.normalise import normalise
    from sync.state.store import StateStore

    config = load_config(config_file)
    settings = config.settings
    company = settings.companies[0]
    source = build_source("erp", settings.sources["erp"])
    kind = get_kind("suppliers")
    try:
        read = source.read("suppliers", CompanyRef(company.name, company.company_id))
    finally:
        source.close()
    norm = normalise(kind, read.frame, kind_mapping(settings, "erp", "suppliers"),
                     settings.validation)
    records, digests = frame_records(kind, norm.frame)
    with StateStore.open(settings.state.url) as store:
        store.upsert_remote(company.name, "suppliers",
                            [(k, r, digests[k]) for k, r in records.items()])
    return {"rows": len(records), "rejected": len(norm.rejected)}


def seed_status_db(config_file: Path, runs: int = 10_000, quarantined: int = 1_000) -> None:
    """A state database with ``runs`` finished runs and ``quarantined`` open quarantine rows."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from sync.foundation.config import load_config
    from sync.state.models import Quarantined, Run
    from sync.state.store import StateStore

    settings = load_config(config_file).settings
    now = datetime.now(UTC)
    with StateStore.open(settings.state.url) as store, store._db.write("seeding") as conn:
        conn.execute(insert(Run), [
            {"company": "bench", "job": "sync", "kind": None,
             "started_at": now - timedelta(minutes=runs - i),
             "finished_at": now - timedelta(minutes=runs - i, seconds=-3),
             "outcome": "ok" if i % 10 else "partial", "error": None,
             "counts": {"suppliers": {"created": i % 7, "edited": 1, "rejected": i % 3}}}
            for i in range(runs)])
        conn.execute(insert(Quarantined), [
            {"company": "bench", "kind": "suppliers", "key": f"S{i:07d}",
             "origin": "validation", "source_digest": f"{i:064x}", "reason": "bad_vat",
             "field": "VatNumber", "message": f"'GB{i:09d}' is not a valid VAT number",
             "first_seen": now, "last_seen": now, "status": "open"} for i in range(quarantined)])


def icsync(*args: str) -> list[str]:
    """The command line of ``icsync`` in this environment."""
    return [sys.executable, "-c", HWM + "from sync.cli import entry; entry()", *args]


def child(name: str, *args: str) -> dict[str, Any]:
    """Run phase ``name`` of this script in a fresh process."""
    res = measure([sys.executable, "-c", HWM + "import runpy, sys; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__')", __file__, "--phase",
                   name, *args])
    if res["exit"] != 0:
        raise RuntimeError(f"phase {name} failed: {res['stderr']}")
    res.update(json.loads(res.pop("stdout").strip().splitlines()[-1]))
    res.pop("stderr")
    return res


def sync_run(config_file: Path, *extra: str) -> dict[str, Any]:
    """``icsync sync --kind suppliers --json`` (plus ``extra``) in a fresh process."""
    res = measure(icsync("sync", "--config", str(config_file), "--kind", "suppliers", "--json",
                         *extra))
    out = res.pop("stdout")
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(f"sync {extra} failed ({res['exit']}): {res['stderr']}") from None
    res.pop("stderr")
    company = data["companies"][0]
    if not company["kinds"]:
        raise RuntimeError(f"sync {extra}: {company.get('error')}")
    kind = company["kinds"][0]
    res.update({"outcome": company["outcome"], "stages": kind.get("stages", {}),
                "kind_seconds": kind["seconds"], "strategy": kind["strategy"],
                "unchanged": kind["unchanged"], "rejected": kind["rejected"]})
    return res


def one_size(n: int, sandbox_url: str) -> dict[str, Any]:
    """Every phase at ``n`` suppliers."""
    with tempfile.TemporaryDirectory(prefix=f"e2e-{n}-") as tmp:
        work = Path(tmp)
        erp, config_file = work / "erp.db", work / "icsync.toml"
        make_erp(erp, n)
        write_config(config_file, sandbox_url, erp, work / "state.db")
        out: dict[str, Any] = {"rows": n, "speed_before": speed()}
        out["adbc"] = child("adbc", str(erp))
        out["baseline"] = child("baseline", str(erp))
        out["dry"] = sync_run(config_file, "--dry-run")
        print(f"{n}: dry {out['dry']['seconds']} s", file=sys.stderr)
        out["seed"] = child("seed", str(config_file))
        out["noop"] = sync_run(config_file)
        out["noop_again"] = sync_run(config_file)
        print(f"{n}: noop {out['noop']['seconds']} s", file=sys.stderr)
        spoil(erp, n)
        out["bad"] = sync_run(config_file)
        out["bad_again"] = sync_run(config_file)
        print(f"{n}: bad rows {out['bad']['seconds']} s", file=sys.stderr)
        out["speed_after"] = speed()
    return out


def spoil(erp: Path, n: int) -> None:
    """Three rows (first, middle, last) with an ISO country code that does not exist."""
    with closing(sqlite3.connect(erp)) as db, db:
        db.execute("UPDATE suppliers SET iso = 'ZZ' WHERE rowid IN (?, ?, ?)", (1, n // 2, n))


def startup(sandbox_url: str) -> dict[str, Any]:
    """Wall time, peak RSS and heavy imports of each command's start."""
    probe = (HWM + "import json\n"
             "atexit.register(lambda: sys.stderr.write('\\nIMPORTED ' + json.dumps("
             f"[m for m in {HEAVY!r} if m in sys.modules]) + '\\n'))\n"
             "from sync.cli import entry\nentry()")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="e2e-startup-") as tmp:
        work = Path(tmp)
        config_file = work / "icsync.toml"
        write_config(config_file, sandbox_url, work / "erp.db", work / "state.db")
        make_erp(work / "erp.db", 100)
        seed_status_db(config_file)
        commands = {
            "--help": ["--help"],
            "status": ["status", "--config", str(config_file)],
            "status --json": ["status", "--config", str(config_file), "--json"],
            "errors list": ["errors", "list", "--config", str(config_file)],
            "check --help": ["check", "--help"],
            "sync --help": ["sync", "--help"],
            "run --help": ["run", "--help"],
            "poll --help": ["poll", "--help"],
        }
        for name, args in commands.items():
            best: dict[str, Any] | None = None
            for _ in range(3):
                res = measure([sys.executable, "-c", probe, *args])
                if best is None or res["seconds"] < best["seconds"]:
                    best = res
            assert best is not None
            line = [s for s in best["stderr"].splitlines() if s.startswith("IMPORTED ")]
            out[name] = {"seconds": best["seconds"], "cpu_seconds": best["cpu_seconds"],
                         "peak_mb": best["peak_mb"], "exit": best["exit"],
                         "imported": json.loads(line[-1][9:]) if line else None}
            print(f"startup {name}: {best['seconds']} s", file=sys.stderr)
    return out


def _speed_lines(res: dict[str, Any]) -> list[str]:
    timed = [size for size in res["sizes"] if "speed_before" in size]
    if not timed:
        return []
    return ["", "Machine speed (a fixed pure-Python loop, seconds, higher is slower) before and "
            "after each size: " + "; ".join(f"{size['rows']:,}: {size['speed_before']:.2f} / "
                                            f"{size['speed_after']:.2f}" for size in timed) + "."]


def markdown(res: dict[str, Any]) -> str:
    """The results as a short report."""
    m = res["machine"]
    lines = ["# End-to-end dry run (suppliers from SQLite) and command start-up", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB; Python "
             f"{m['python']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}; load average at "
             f"start {m['load_average']} (shared machine: compare the ratios within one run).",
             *_speed_lines(res),
             "", "Each line is one fresh process: wall s / CPU s / peak RSS MB"
             + (" (the project's modules byte-compiled first, as installed)."
                if res.get("byte_compiled") else "."), "",
             "| rows | ADBC read | plain baseline | dry run | dry / ADBC | no-op (compare) | "
             "no-op (fingerprint) | 3 bad rows (compare) | 3 bad rows (replay) |",
             "|---:|---|---|---|---:|---|---|---|---|"]

    def cell(r: dict[str, Any]) -> str:
        return f"{r['seconds']:.2f} / {r['cpu_seconds']:.2f} / {r['peak_mb']:.0f}"

    for size in res["sizes"]:
        ratio = size["dry"]["seconds"] / size["adbc"]["seconds"]
        lines.append(f"| {size['rows']:,} | {cell(size['adbc'])} | {cell(size['baseline'])} | "
                     f"{cell(size['dry'])} | {ratio:.1f}x"
                     f" | {cell(size['noop'])} | {cell(size['noop_again'])}"
                     f" | {cell(size['bad'])} | {cell(size['bad_again'])} |")
    lines += ["", "Stages of the dry run and of the no-op run (seconds, from the engine's "
              "--json result; the rest of the wall time is start-up, configuration, the state "
              "database and the output):", "",
              "| rows | run | " + " | ".join(STAGES) + " |",
              "|---:|---|" + "---:|" * len(STAGES)]
    for size in res["sizes"]:
        for run in ("dry", "noop", "noop_again", "bad", "bad_again"):
            stages = size[run]["stages"]
            lines.append(f"| {size['rows']:,} | {run} | " + " | ".join(
                f"{stages.get(s, 0):.2f}" for s in STAGES) + " |")
    if res.get("startup"):
        lines += ["", "Start-up (best of 3; state DB with 10,000 runs and 1,000 quarantined "
                  "rows):", "", "| command | wall s | peak RSS MB | heavy modules imported |",
                  "|---|---:|---:|---|"]
        for name, r in res["startup"].items():
            lines.append(f"| icsync {name} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                         f"{', '.join(r['imported'] or []) or 'none'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Orchestrate (default) or run one phase (``--phase``, internal)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--tag", default="e2e_bench", help="results file name")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("arg", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phases = {"adbc": phase_adbc, "baseline": phase_baseline, "seed": phase_seed}
        print(json.dumps(phases[args.phase](args.arg)))
        return 0
    from connectors.icompleat.sandbox import SandboxServer

    compiled = all(compileall.compile_dir(ROOT / name, quiet=1) for name in ("sync", "connectors"))
    results: dict[str, Any] = {"machine": machine("pandas", "pyarrow"), "sizes": [],
                               "byte_compiled": compiled}
    with SandboxServer(tenant_id=TENANT, company_ids=[COMPANY], api_key=KEY) as sandbox:
        if not args.skip_startup:
            results["startup"] = startup(sandbox.url)
        for n in args.sizes:
            results["sizes"].append(one_size(n, sandbox.url))
    publish(results, markdown(results), args.tag, save=not args.no_save)
    return 0


def publish(results: dict[str, Any], report: str, tag: str, *, save: bool) -> None:
    """Print ``report``; unless told not to, save it and ``results`` as ``tag``.md/.json."""
    print(report)
    if save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{tag}.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / f"{tag}.md").write_text(report)


if __name__ == "__main__":
    sys.exit(main())
