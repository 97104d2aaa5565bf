"""Planning speed and memory: normalise + diff + plan of 10k, 100k and 1M suppliers.

Workload per size N: a remote copy (the state frame) of N suppliers with 15 text fields and
PaymentDueDays, and an ERP read (an object-dtype frame, as the SQL and file connectors return)
in which 1% of the rows are edited, 0.5% removed and 0.5% added. About 10% of the suppliers are
EU ones with an IBAN, a BIC and a VAT number; the rest have UK account numbers and sort codes.
Rows come in code order, as an ERP query ordered by code returns them.

Timed: ``normalise(known=state) -> diff -> plan_kind`` (the pure planning step), the best wall
time of ``--repeats`` runs (all of them are saved, with the CPU time and the load average, since
the machine may be shared). Not timed: making the inputs, and building the state frame (the
state database's job).

Beside it, in the same process, a plain-Python baseline: one dict per row, each cell made
canonical with the same scalar rules, the same key and collision checks, the country and e-mail
checks, a dict-based diff and the same call count. Both must agree on the diff.

Memory: peak resident set size (Linux VmHWM, reset through /proc/self/clear_refs just before
the step), reported as the peak and as the growth over the resident size before the step.
Each size runs in its own fresh process.

Run: ``uv run python benchmarks/plan_bench.py [--sizes 10000 100000 1000000] [--no-save]``.
Results: benchmarks/results/plan_bench.json and plan_bench.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from machine import machine  # benchmarks/machine.py: this script's folder is on the path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from sync.foundation.config import ValidationConfig
from sync.foundation.entities import get_kind
from sync.reference.rules.checks import EMAIL_PATTERN
from sync.reference.rules.diff import diff
from sync.reference.rules.keys import collision_key
from sync.reference.rules.normalise import normalise
from sync.reference.rules.plan import plan_kind
from sync.reference.rules.values import canonical_value

RESULTS = Path(__file__).resolve().parent / "results"
SUPPLIERS = get_kind("suppliers")
TEXT_FIELDS = ("Code", "Name", "AddressLine1", "AddressLine2", "TownOrCity", "StateOrCounty",
               "PostcodeOrZip", "Country", "IsoCode", "Telephone", "Email", "BankName",
               "BankAccountNumber", "BankSortCode", "PaymentTermsType")
WORDS = ("Acme", "Apex", "Birch", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbour",
         "Iris", "Juniper", "Kestrel", "Lumen", "Maple", "Nimbus", "Oak", "Pioneer", "Quartz",
         "Raven", "Summit", "Thistle", "Umber", "Vale", "Willow", "Yarrow", "Zenith", "Northern",
         "Southern", "Coastal", "Highland", "Metro", "Union", "Royal", "Crown", "Atlas",
         "Beacon")
KINDS_OF = ("Ltd", "PLC", "Supplies", "Services", "Logistics", "Trading", "GmbH", "BV", "SARL")
STREETS = ("High", "Station", "Church", "Mill", "Park", "Victoria", "Green", "Manor", "Kings")
TOWNS = (("London", "Greater London"), ("Leeds", "West Yorkshire"), ("Bristol", "Avon"),
         ("Glasgow", "Lanarkshire"), ("Cardiff", "South Glamorgan"), ("York", "North Yorkshire"))
EU = (("DE", "Germany", "Berlin", "DEUTDEFF"), ("NL", "Netherlands", "Amsterdam", "INGBNL2A"),
      ("FR", "France", "Paris", "BNPAFRPP"), ("IE", "Ireland", "Dublin", "AIBKIE2D"))
VAT = {"DE": "DE136695976", "NL": "NL004495445B01", "FR": "FR40303265045", "IE": "IE6388047V"}


def _pick(rng: np.random.Generator, options: Any, n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def _digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return np.array([f"{v:0{width}d}" for v in rng.integers(0, 10**width, n).tolist()],
                    dtype=object)


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in moved))
    return f"{country}{98 - number % 97:02d}{bban}"


def suppliers(ids: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Columns of one supplier per id (deterministic per seed; every string a fresh object)."""
    n, rng = len(ids), np.random.default_rng(seed)
    name = _pick(rng, WORDS, n) + " " + _pick(rng, WORDS, n) + " " + _pick(rng, KINDS_OF, n)
    town = rng.integers(0, len(TOWNS), n)
    eu = rng.random(n) < 0.10
    which = rng.integers(0, len(EU), n)
    cols = {
        "Code": np.array([f"S{i:07d}" for i in ids.tolist()], dtype=object),
        "Name": name,
        "AddressLine1": _digits(rng, n, 3) + " " + _pick(rng, STREETS, n) + " Street",
        "AddressLine2": np.where(rng.random(n) < 0.3, "Unit " + _digits(rng, n, 2), None),
        "TownOrCity": np.array([TOWNS[t][0] for t in town.tolist()], dtype=object),
        "StateOrCounty": np.array([TOWNS[t][1] for t in town.tolist()], dtype=object),
        "PostcodeOrZip": _pick(rng, ("LS1", "BS8", "G2", "CF10", "EC1A"), n) + " "
        + _digits(rng, n, 1) + _pick(rng, ("AB", "XY", "QT"), n),
        "Country": np.full(n, "United Kingdom", dtype=object),
        "IsoCode": np.full(n, "GB", dtype=object),
        "Telephone": "+44 20 7946 " + _digits(rng, n, 4),
        "Email": "accounts." + _digits(rng, n, 6) + "@example.co.uk",
        "BankName": _pick(rng, ("Barclays", "HSBC", "Lloyds", "NatWest", "Santander"), n),
        "BankAccountNumber": _digits(rng, n, 8),
        "BankSortCode": _digits(rng, n, 2) + "-" + _digits(rng, n, 2) + "-" + _digits(rng, n, 2),
        "PaymentTermsType": np.full(n, "NetDays", dtype=object),
        "VatNumber": np.full(n, None, dtype=object),
    }
    for row in np.flatnonzero(eu).tolist():
        iso, country, city, bic = EU[int(which[row])]
        cols["IsoCode"][row], cols["Country"][row], cols["TownOrCity"][row] = iso, country, city
        bban = f"{int(ids[row]) % 10**8:08d}{int(ids[row]) * 7 % 10**10:010d}"
        cols["BankAccountNumber"][row] = _iban(iso, bban[:18] if iso == "DE" else bban[:10])
        cols["BankSortCode"][row], cols["VatNumber"][row] = bic, VAT[iso]
    return cols


def frame(cols: dict[str, np.ndarray], days: np.ndarray) -> pd.DataFrame:
    """An object-dtype source frame, the shape the SQL and file connectors return."""
    data = {k: v for k, v in cols.items()}
    out = pd.DataFrame(data, dtype=object, copy=False)
    out["PaymentDueDays"] = days
    return out


def workload(n: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(previous ERP read, current ERP read, counts): 1% edited, 0.5% removed, 0.5% added."""
    rng = np.random.default_rng(7)
    ids = np.arange(n)
    removed = np.sort(rng.choice(n, n // 200, replace=False))
    kept = np.setdiff1d(ids, removed)
    added = np.arange(n, n + n // 200)
    edited = np.sort(rng.choice(kept, n // 100, replace=False))
    previous = frame(suppliers(ids, 1), np.full(n, 30))
    now_ids = np.concatenate([kept, added])
    current_cols = {k: v[kept] for k, v in suppliers(ids, 1).items()}
    extra = suppliers(added, 2)
    current_cols = {k: np.concatenate([v, extra[k]]) for k, v in current_cols.items()}
    positions = np.searchsorted(now_ids, edited)
    for pos in positions.tolist():
        current_cols["Name"][pos] = current_cols["Name"][pos] + " (renamed)"
    current = frame(current_cols, np.full(len(now_ids), 30))
    return previous, current, {"edited": len(edited), "removed": len(removed),
                               "added": len(added)}


def plan_step(raw: pd.DataFrame, state: pd.DataFrame) -> Any:
    """The measured step: normalise (with the state as known rows), diff, plan."""
    norm = normalise(SUPPLIERS, raw, validation=ValidationConfig(), known=state)
    kind_diff = diff(SUPPLIERS, norm.frame, state, hold=norm.held_keys)
    return plan_kind(SUPPLIERS, kind_diff, norm.frame, can_append=False)


_EMAIL = re.compile(EMAIL_PATTERN)


def baseline_records(raw: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Plain Python: one dict per row, every cell through the scalar rules, the same checks."""
    import pycountry

    countries = {c.alpha_2 for c in pycountry.countries}
    specs = [SUPPLIERS.field(c) for c in raw.columns]
    records: dict[str, dict[str, Any]] = {}
    folded: dict[str, list[str]] = {}
    for values in raw.itertuples(index=False, name=None):
        try:
            record = {s.name: canonical_value(s, v) for s, v in zip(specs, values, strict=True)}
        except ValueError:
            continue
        iso, email = record.get("IsoCode"), record.get("Email")
        if record["Code"] is None or (iso is not None and iso.upper() not in countries):
            continue
        if email is not None and not _EMAIL.match(email):
            pass  # a warning only
        record.pop("VatNumber", None)
        records[record["Code"]] = {f: v for f, v in record.items() if v is not None}
        folded.setdefault(collision_key(record["Code"]), []).append(record["Code"])
    for group in folded.values():
        if len(group) > 1:
            for code in group:
                records.pop(code, None)
    return records


def baseline_step(raw: pd.DataFrame, state: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Plain-Python normalise + dict diff + call count."""
    source = baseline_records(raw)
    creates = sorted(source.keys() - state.keys())
    deletes = sorted(state.keys() - source.keys())
    edits = {}
    for key in sorted(source.keys() & state.keys()):
        if source[key] != state[key]:
            edits[key] = [f for f in source[key] if source[key][f] != state[key].get(f)]
    refresh = math.ceil(len(source) / 100)
    return {"creates": len(creates), "edits": len(edits), "deletes": len(deletes),
            "calls": refresh}


def _hwm_kib() -> tuple[int, int]:
    status = Path("/proc/self/status").read_text()
    def grab(key: str) -> int:
        match = re.search(rf"{key}:\s+(\d+)", status)
        return int(match.group(1)) if match else 0
    return grab("VmRSS"), grab("VmHWM")


def _release_free_memory() -> None:
    """Hand memory freed while making the inputs back to the OS (glibc), so the resident size
    before the step is the inputs themselves, not the generator's leftovers."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measured(step: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, seconds, peak RSS MiB, RSS growth MiB) of ``step``."""
    gc.collect()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    before, _ = _hwm_kib()
    started = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - started
    _, peak = _hwm_kib()
    return result, seconds, peak / 1024, (peak - before) / 1024


def run_size(n: int, baseline: bool, repeats: int) -> dict[str, Any]:
    """Measure one size in this process: the best of ``repeats`` planning runs (the first one
    also gives the memory figures), then the baseline once."""
    started = time.perf_counter()
    previous, current, counts = workload(n)
    made = time.perf_counter() - started
    started = time.perf_counter()
    state = normalise(SUPPLIERS, previous).frame
    state_seconds = time.perf_counter() - started
    del previous
    _release_free_memory()
    inputs_rss, _ = _hwm_kib()
    plan_step(current.head(1000), state)  # warm caches (pycountry tables, imports)
    plan, seconds, peak, growth = measured(lambda: plan_step(current, state))
    times, cpu = [seconds], []
    for _ in range(repeats - 1):
        started_cpu = time.process_time()
        _, again, _, _ = measured(lambda: plan_step(current, state))
        times.append(again)
        cpu.append(time.process_time() - started_cpu)
    out: dict[str, Any] = {
        "rows": n, **counts, "inputs_seconds": round(made, 2),
        "state_frame_seconds": round(state_seconds, 3), "plan_seconds": round(min(times), 3),
        "plan_seconds_all": [round(t, 3) for t in times],
        "plan_cpu_seconds_min": round(min(cpu), 3) if cpu else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "inputs_rss_mib": round(inputs_rss / 1024),
        "plan_peak_rss_mib": round(peak), "plan_rss_growth_mib": round(growth),
        "creates": len(plan.diff.creates), "edits": len(plan.diff.edits),
        "deletes": len(plan.diff.deletes), "strategy": plan.strategy, "calls": plan.calls,
        "targeted_calls": plan.targeted_calls, "refresh_calls": plan.refresh_calls,
    }
    if baseline:
        records = {k: {f: v for f, v in r.items() if f in SUPPLIERS.sent_fields and v is not None}
                   for k, r in state.drop(columns="_digest").to_dict("index").items()}
        del state
        started_cpu = time.process_time()
        base, b_seconds, b_peak, b_growth = measured(lambda: baseline_step(current, records))
        b_cpu = time.process_time() - started_cpu
        assert (base["creates"], base["edits"], base["deletes"]) == (
            out["creates"], out["edits"], out["deletes"]), (base, out)
        out.update(baseline_seconds=round(b_seconds, 3), baseline_cpu_seconds=round(b_cpu, 3),
                   baseline_peak_rss_mib=round(b_peak), baseline_rss_growth_mib=round(b_growth),
                   speedup=round(b_seconds / min(times), 1),
                   cpu_speedup=round(b_cpu / min(cpu), 1) if cpu else None)
    return out


def markdown(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """The results as a markdown table with the machine description."""
    memory = info.get("memory_mb") or round(info["ram_gib"] * 1024)  # older results: GiB
    lines = [
        "# Planning benchmark (normalise + diff + plan, suppliers)", "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {memory} MB RAM; "
        f"Python {info['python']}, pandas {info['pandas']}, numpy {info['numpy']}, "
        f"pyarrow {info['pyarrow']}; {info.get('os', info.get('platform'))}.", "",
        "Time: the best wall time of the repeats and the best CPU time (process time) of the "
        "planning step; the load average shows how busy the shared machine was. Memory: the "
        "peak resident set size during the step (VmHWM, reset just before it) and its growth "
        "over the resident size before it; the inputs (the ERP read and the state frame, both "
        "1M-row object frames) are already in memory and make up \"inputs RSS\". The baseline "
        "is plain Python dicts over the same rows, measured once.", "",
        "| rows | edited / removed / added | plan s (wall) | plan s (CPU) | load "
        "| inputs RSS MiB | peak RSS MiB | growth MiB | baseline s (wall / CPU) "
        "| baseline peak MiB | speed-up (wall / CPU) | strategy, calls (targeted / refresh) |",
        "|---:|---|---:|---:|---|---:|---:|---:|---|---:|---|---|",
    ]
    for r in results:
        targeted = "-" if r["targeted_calls"] is None else r["targeted_calls"]
        lines.append(
            f"| {r['rows']:,} | {r['edited']:,} / {r['removed']:,} / {r['added']:,} "
            f"| {r['plan_seconds']} | {r['plan_cpu_seconds_min']} | {r['load_average'][0]} "
            f"| {r.get('inputs_rss_mib', '-')} | {r['plan_peak_rss_mib']} "
            f"| {r['plan_rss_growth_mib']} "
            f"| {r.get('baseline_seconds', '-')} / {r.get('baseline_cpu_seconds', '-')} "
            f"| {r.get('baseline_peak_rss_mib', '-')} "
            f"| {r.get('speedup', '-')}x / {r.get('cpu_speedup', '-')}x "
            f"| {r['strategy']}, {r['calls']} ({targeted} / {r['refresh_calls']}) |")
    return "\n".join(lines + targets(results)) + "\n"


def targets(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each with the measured figure and whether it is met."""
    by_rows = {r["rows"]: r for r in results}
    big, mid = by_rows.get(1_000_000), by_rows.get(100_000)
    if big is None or mid is None:
        return []
    def line(text: str, ok: bool) -> str:
        return f"- {text}: {'met' if ok else 'NOT met'}"
    return [
        "", "Targets (2-core machine):",
        line(f"1M planned in under 5 s: {big['plan_seconds']} s", big["plan_seconds"] < 5),
        line(f"under 2 GB peak for the planning step: it grows the process by "
             f"{big['plan_rss_growth_mib']} MiB", big["plan_rss_growth_mib"] < 2048),
        line(f"under 2 GB peak for the whole process, the two 1M-row object frames (ERP read "
             f"and state) included: {big['plan_peak_rss_mib']} MiB",
             big["plan_peak_rss_mib"] < 2048),
        line(f"100k planned in under 0.5 s: {mid['plan_seconds']} s", mid["plan_seconds"] < 0.5),
        line(f"at least 3x faster than the baseline at 1M: {big.get('speedup')}x",
             (big.get("speedup") or 0) >= 3),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--report", action="store_true",
                        help="rewrite plan_bench.md from the saved plan_bench.json")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        saved = json.loads((RESULTS / "plan_bench.json").read_text())
        (RESULTS / "plan_bench.md").write_text(markdown(saved["results"], saved["machine"]))
        return 0
    if args.one:
        print(json.dumps(run_size(args.one, not args.no_baseline, args.repeats)))
        return 0
    results = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--repeats", str(args.repeats)] + (
            ["--no-baseline"] if args.no_baseline else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    info = machine("pandas", "numpy", "pyarrow")
    table = markdown(results, info)
    print(table)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "plan_bench.json").write_text(json.dumps(
            {"machine": info, "results": results}, indent=2) + "\n")
        (RESULTS / "plan_bench.md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
