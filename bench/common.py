"""Shared helpers for benchmarks: machine description, timing, and markdown tables (printed, never asserted)."""
from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any, Callable, Sequence

from vidanime.train.harness import cpu_model

__all__ = ["machine_info", "print_table", "timeit", "clock", "peak_rss_mb", "cuda_available"]


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def machine_info() -> str:
    """One line naming the machine: CPU model, cores, torch version, GPU if any."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}, Python {platform.python_version()}"
    )


def clock(fn: Callable[[], Any], sync: bool = False) -> tuple[float, Any]:
    """(seconds, result) of one call of ``fn()``; ``sync`` waits for queued CUDA work before and after."""
    if sync:
        import torch

        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if sync:
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def timeit(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1, sync_cuda: bool = False) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    import statistics

    def sync() -> None:
        if sync_cuda:
            import torch

            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], title: str | None = None) -> str:
    """Print (and return) a markdown table preceded by the machine line."""

    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = []
    if title:
        lines.append(f"### {title}")
    lines.append(f"machine: {machine_info()}")
    lines.append("")
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    text = "\n".join(lines)
    print(text)  # benchmarks are scripts: printing the table is their job
    return text
