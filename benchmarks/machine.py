"""What a benchmark's figures were measured on: one description for every script here.

Keys: ``cpu``, ``cores``, ``memory_mb``, ``python``, ``os``, ``load_average`` (at the time of
the call: these machines are shared), and the version of each library named.
"""

from __future__ import annotations

import importlib
import os
import platform
from pathlib import Path
from typing import Any


def machine(*libraries: str) -> dict[str, Any]:
    """The machine, Python, the load now, and ``libraries``' versions (by import name)."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in
                Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem,
            "python": platform.python_version(), "os": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            **{name: importlib.import_module(name).__version__ for name in libraries}}
