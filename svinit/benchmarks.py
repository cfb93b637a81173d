"""What the benchmarks (bench/) share: the host's facts recorded with every run, and the end of a run
(each goal met or not, the results as JSON)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def host_facts(**more: Any) -> dict[str, Any]:
    """The host a benchmark ran on: CPUs, load averages, kernel; plus *more*."""
    return {"cpus": os.cpu_count(), "load": os.getloadavg(), "kernel": platform.release(), **more}


def finish(results: dict[str, Any], goals: dict[str, bool], json_path: Path | None) -> int:
    """Prints each goal, met or not; records them in *results*, written as JSON to *json_path* if given.
    Returns 0 (a benchmark reports; it does not fail)."""
    for goal, ok in goals.items():
        print(f"goal: {goal}: {'met' if ok else 'NOT met'}")
    results["goals"] = goals
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    return 0
