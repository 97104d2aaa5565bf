"""The peak resident memory of icsync syncing a large supplier list: the figure that sizes the
memory limit in sidecar.yaml (deploy/README.md, "Memory").

It reuses the S22 benchmark's ERP, configuration and phases (benchmarks/s22_reference.py), each
run by the real engine in its own fresh process against the sandbox (in this process, not
measured) over loopback, in this order:

- ``full``: the first load into an empty iCompleat (complete sets, chunks of 100);
- ``resync``: ``icsync sync --full``: every remote list read back in full and compared (what the
  nightly read-back and a manual full resync do);
- ``noop``: the same source again;
- ``change``: 1% of rows changed (targeted edits, adds and deletes).

The figure is each phase process's peak resident set size (VmHWM, MiB). Results are printed as
JSON, and with ``--save`` written to deploy/kubernetes/peak_memory.json after every phase.

The sandbox (this process) walks its records without copying or sorting them here: as shipped it
copies and sorts the whole list on every appended chunk and every edit, which makes a 200k load
take it over an hour on 2 cores. Only the sandbox's speed changes; what icsync sends, receives and
holds is the same.

Run: ``uv run python deploy/kubernetes/peak_memory.py [--suppliers 200000] [--save]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import s22_reference as s22  # noqa: E402

PHASES = ("full", "resync", "noop", "change")
DEFAULT_PHASES = ",".join(PHASES)
RESULT = Path(__file__).with_suffix(".json")


def resync(config_file: Path) -> dict[str, Any]:
    """Child process: one ``--full`` run of the company (remote lists read back in full)."""
    from sync.foundation.config import Config, parse_settings
    from sync.reference.engine import sync_company
    from sync.runtime.context import open_runtime

    config = Config(parse_settings(json.loads(config_file.read_text())))

    async def run() -> dict[str, Any]:
        async with open_runtime(config) as rt:
            result = await sync_company(rt, config.settings.companies[0], full=True)
            return result.to_dict()

    result = asyncio.run(run())
    return {"peak_mb": s22.peak_rss_mb(), "outcome": result["outcome"]}


def run_phase(name: str, config_file: Path) -> dict[str, Any]:
    """One phase in a fresh process: its peak RSS, outcome and wall seconds."""
    started = time.perf_counter()
    if name == "resync":
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, __file__, "--phase", name, "--config",  # noqa: S603
                              str(config_file)], capture_output=True, text=True, env=env,
                             check=True, timeout=3600)
        res = json.loads(out.stdout.strip().splitlines()[-1])
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, s22.__file__, "--phase", name,  # noqa: S603
                              "--config", str(config_file)], capture_output=True, text=True,
                             env=env, check=True, timeout=3600)
        res = json.loads(out.stdout.strip().splitlines()[-1])
    return {"peak_mb": round(res["peak_mb"]), "outcome": res["outcome"],
            "seconds": round(time.perf_counter() - started, 1)}


def measure(suppliers: int, latency: float, phases: list[str],
            save: Path | None) -> dict[str, Any]:
    """Run ``phases`` with ``suppliers`` supplier rows; save the figures after each."""
    from connectors.icompleat.sandbox import SandboxServer
    from connectors.icompleat.sandbox.store import RecordSet

    # The sandbox's own speed only (see the module's docstring): no copy, no sort per walk.
    RecordSet.__iter__ = lambda self: iter(self._records.values())  # type: ignore[method-assign]
    s22.SIZES["suppliers"] = suppliers
    results: dict[str, Any] = {"sizes": dict(s22.SIZES), "latency_seconds": latency,
                               "machine": s22.machine()}
    with tempfile.TemporaryDirectory(prefix="icsync-peak-") as tmp, SandboxServer(
            tenant_id=s22.TENANT, company_ids=[s22.COMPANY], api_key=s22.KEY) as sandbox:
        work = Path(tmp)
        s22.make_erp(work / "erp.db")
        config_file = work / "config.json"
        config_file.write_text(json.dumps(s22.settings(sandbox.url, work / "erp.db",
                                                       work / "state.db")))
        sandbox.state.faults.set("*", latency=latency)
        for name in phases:
            if name == "change":
                s22.change_one_percent(work / "erp.db")
            results[name] = run_phase(name, config_file)
            results["peak_mb"] = max(results[n]["peak_mb"] for n in PHASES if n in results)
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
            if save:
                save.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main() -> int:
    """Measure and print the figures as JSON (``--phase``: internal, one child phase)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, default=200_000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--phases", default=DEFAULT_PHASES,
                        help=f"comma-separated, in order, of {', '.join(PHASES)}")
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(resync(args.config)))
        return 0
    phases = args.phases.split(",")
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}")
    results = measure(args.suppliers, args.latency, phases, RESULT if args.save else None)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
