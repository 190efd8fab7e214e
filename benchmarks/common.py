"""What every benchmark shares: the machine's description, process accounting, histogram quantiles, output.

Benchmarks are scripts, not tests: each prints a Markdown table for a human and
writes the raw numbers as JSON (``--json PATH``) so ``RESULTS.md`` can quote
them exactly.  Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "default"
SHARED_MUSIC = REPO.parent / "shared" / "data" / "music" / "manifest.csv"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, GPU and load: what a reader needs to weigh the numbers."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = ""
    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_gib, 1),
        "gpu": gpu or "none",
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system), peak and current resident memory of one process at one instant."""

    cpu_seconds: float
    peak_rss_bytes: int
    rss_bytes: int = 0


def proc_sample(pid: int) -> ProcSample:
    """Read ``/proc/PID``; a process that is gone reads as zero."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        hwm = rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        return ProcSample(cpu, hwm, rss)
    except (OSError, IndexError, ValueError):
        return ProcSample(0.0, 0)


def tree_sample(pid: int) -> ProcSample:
    """:func:`proc_sample` of a process and its children (a daemon's ingest workers), summed."""
    children: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        tasks = []
    for task in tasks:
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    samples = [proc_sample(p) for p in (pid, *children)]
    return ProcSample(
        sum(s.cpu_seconds for s in samples),
        sum(s.peak_rss_bytes for s in samples),
        sum(s.rss_bytes for s in samples),
    )


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The ``q`` quantile of a Prometheus histogram, as ``histogram_quantile`` computes it.

    ``buckets`` are cumulative ``(upper bound, count)`` pairs, ``+Inf`` last.  The
    rank is located in its bucket and interpolated linearly between the bucket's
    bounds (the lowest bucket starts at 0), which assumes observations spread
    evenly inside a bucket; the answer is therefore only as fine as the bounds
    around it.  NaN when there are no observations; the highest finite bound
    when the rank falls in ``+Inf``.
    """
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def write_json(path: Path | None, doc: dict[str, Any]) -> None:
    """Write ``doc`` (numbers plus :func:`machine`) where ``--json`` asked."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": machine(), **doc}, indent=2) + "\n")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub table; floats with 3 significant decimals at most."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
