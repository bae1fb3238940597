"""CPU thread policy: how many intra-op threads torch (and OpenCV) use, and how OpenMP's idle threads wait.

PyTorch's CPU kernels run on OpenMP threads that, by default, *spin* between parallel regions.  Two such processes on
the same cores (a translate beside a training job, ``batch --jobs 2``, the web app beside other work) then burn each
other's time slices spinning: a per-clip fine-tune measured 26 s/iteration instead of about 1 s on 2 cores.
``OMP_WAIT_POLICY=PASSIVE`` makes idle threads sleep, and one thread count per process sized to the cores it may use
keeps the processes from oversubscribing them.  The default count leaves out the cores other processes keep busy at
start-up (sampled from ``/proc/stat`` for 0.1 s): beside a 2-thread training job on 2 cores, a fine-tune on one thread
ran at 0.49x its idle speed, on two threads at 0.24x.  OpenMP reads both variables when torch loads it, so
:func:`apply_thread_policy` must run before ``import torch`` (the CLI does it first thing); when torch is already
imported it also calls ``torch.set_num_threads``.  Variables the user has set are kept.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import MutableMapping

logger = logging.getLogger(__name__)

__all__ = ["THREAD_ENV", "available_cores", "cpu_times", "busy_cores", "default_threads", "apply_thread_policy"]

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # read by OpenMP / MKL when torch loads them


def _core_ids() -> set[int]:
    """Ids of the CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a cpuset)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return set(range(os.cpu_count() or 1))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a container's cpuset)."""
    return max(1, len(_core_ids()))


def cpu_times(stat_text: str, cores: set[int]) -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per core of ``cores`` from the text of ``/proc/stat`` (idle = idle + iowait)."""
    out = {}
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            v = [int(x) for x in rest.split()[:8]]
            total = sum(v)
            out[int(name[3:])] = (total - v[3] - v[4], total)
    return out


def busy_cores(interval: float = 0.1) -> float:
    """How many of this process's cores other processes keep busy: (busy / total) jiffies summed over those cores,
    sampled over ``interval`` seconds while this process sleeps; 0 where ``/proc/stat`` is unreadable."""
    cores = _core_ids()
    try:
        with open("/proc/stat") as f:
            a = cpu_times(f.read(), cores)
        time.sleep(interval)
        with open("/proc/stat") as f:
            b = cpu_times(f.read(), cores)
    except OSError:
        return 0.0
    return float(sum((b[c][0] - a[c][0]) / max(b[c][1] - a[c][1], 1) for c in a if c in b))


def default_threads(workers: int = 1, busy: float = 0.0) -> int:
    """Threads per process when ``workers`` processes share this process's cores and other processes keep ``busy``
    of them busy: ``max(1, min(cores, round(cores - busy)) // workers)``."""
    cores = available_cores()
    free = min(cores, max(0, int(round(cores - busy))))
    return max(1, free // max(1, int(workers)))


def _user_threads(environ: MutableMapping[str, str]) -> int | None:
    value = environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def apply_thread_policy(threads: int | None = None, workers: int = 1,
                        environ: MutableMapping[str, str] | None = None, busy: float | None = None) -> int:
    """Set the thread policy for this process (and the processes it starts) and return its thread count.

    ``threads`` (e.g. ``--threads``) wins; else a valid ``OMP_NUM_THREADS`` the user set; else
    :func:`default_threads` of ``workers`` and of ``busy`` (cores other processes keep busy; None: measured with
    :func:`busy_cores`).  ``OMP_WAIT_POLICY`` becomes ``PASSIVE`` unless the user set it.  Call it
    before torch is imported; if torch is already loaded, its intra-op thread count (and OpenCV's) is set too."""
    env = os.environ if environ is None else environ
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads={threads}: must be >= 1")
    user = _user_threads(env)
    if threads is not None:
        n = int(threads)
    elif user is not None:
        n = user
    else:
        busy = busy_cores() if busy is None else busy
        n = default_threads(workers, busy)
        if n < default_threads(workers):
            logger.info("other processes keep %.1f of %d cores busy: using %d thread(s) (--threads to choose)", busy,
                        available_cores(), n)
    if threads is not None or user is None:
        for name in THREAD_ENV:
            env[name] = str(n)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if environ is None and "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        if "cv2" in sys.modules:
            sys.modules["cv2"].setNumThreads(n)
    logger.debug("thread policy: %d thread(s), OMP_WAIT_POLICY=%s", n, env["OMP_WAIT_POLICY"])
    return n
