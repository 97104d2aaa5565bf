"""The peak resident memory of icsync syncing a large supplier list: the figure that sizes the
memory limit in sidecar.yaml (deploy/README.md, "Memory").

It reuses the S22 benchmark's phases (benchmarks/s22_reference.py), each run by the real engine
in its own fresh process against the sandbox (in this process, not measured) over loopback:
``full`` (the first load into an empty iCompleat), ``noop`` (the same source again) and
``change`` (1% of rows changed). The figure is each phase process's VmHWM.

Run: ``uv run python deploy/kubernetes/peak_memory.py [--suppliers 200000] [--latency 0]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import s22_reference as s22  # noqa: E402


def measure(suppliers: int, latency: float) -> dict[str, Any]:
    """Run the phases with ``suppliers`` supplier rows; their peak RSS and wall seconds."""
    from connectors.icompleat.sandbox import SandboxServer

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
        for name in ("full", "noop", "change"):
            if name == "change":
                s22.change_one_percent(work / "erp.db")
            started = time.perf_counter()
            res = s22.run_phase(name, config_file)
            results[name] = {"peak_mb": round(res["peak_mb"]), "outcome": res["outcome"],
                             "seconds": round(time.perf_counter() - started, 1)}
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    results["peak_mb"] = max(results[n]["peak_mb"] for n in ("full", "noop", "change"))
    return results


def main() -> int:
    """Measure and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, default=200_000)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.suppliers, args.latency), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
