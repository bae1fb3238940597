"""The CPU thread policy (vidanime/threads.py): thread counts and OpenMP's wait policy, set before torch loads."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vidanime.threads import apply_thread_policy, available_cores, busy_cores, cpu_times, default_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = REPO
    return env


def test_policy_defaults_user_values_and_override():
    cores = available_cores()
    env: dict[str, str] = {}
    assert apply_thread_policy(environ=env, busy=0.0) == cores == default_threads()
    assert env == {"OMP_NUM_THREADS": str(cores), "MKL_NUM_THREADS": str(cores), "OMP_WAIT_POLICY": "PASSIVE"}
    # workers share the cores; never below one thread
    assert default_threads(workers=cores) == 1 and default_threads(workers=10 * cores) == 1
    env = {}
    assert apply_thread_policy(workers=2 * cores, environ=env, busy=0.0) == 1 and env["OMP_NUM_THREADS"] == "1"
    # what the user set is kept ...
    env = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    assert apply_thread_policy(environ=env) == 3
    assert env == {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    # ... unless --threads says otherwise; a nonsense OMP_NUM_THREADS counts as unset
    assert apply_thread_policy(5, environ=env) == 5 and env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "5"
    env = {"OMP_NUM_THREADS": "many"}
    assert apply_thread_policy(environ=env, busy=0.0) == cores and env["OMP_NUM_THREADS"] == str(cores)
    with pytest.raises(ValueError, match="threads=0"):
        apply_thread_policy(0, environ={})


@pytest.mark.slow
@pytest.mark.parametrize("torch_first", [False, True])
def test_policy_reaches_torch_before_and_after_import(torch_first):
    """Set before ``import torch`` the variables decide torch's thread count; after it, set_num_threads does."""
    code = ("import os, sys\n"
            + ("import torch\n" if torch_first else "")
            + "from vidanime.threads import apply_thread_policy\n"
              "apply_thread_policy(1)\n"
              "import torch\n"
              "print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_clean_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "PASSIVE"]


def test_cli_threads_option_and_default_policy():
    env = _clean_env()
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "-v", "--threads", "3", "info", "--help"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "thread policy: 3 thread(s), OMP_WAIT_POLICY=PASSIVE" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "--threads", "0", "info", "--help"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "--threads" in r.stderr and "Traceback" not in r.stderr


def test_default_leaves_out_the_cores_others_keep_busy(monkeypatch):
    import vidanime.threads as threads

    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert default_threads(busy=0.0) == 8 and default_threads(busy=2.4) == 6 and default_threads(busy=7.9) == 1
    assert default_threads(workers=2, busy=4.0) == 2 and default_threads(busy=20.0) == 1
    assert apply_thread_policy(environ={}, busy=3.0) == 5
    assert apply_thread_policy(environ={"OMP_NUM_THREADS": "8"}, busy=3.0) == 8  # the user's choice stands


def test_cpu_times_and_busy_cores_from_proc_stat():
    text = ("cpu  10 0 10 80 0 0 0 0 0 0\n"
            "cpu0 5 1 4 40 10 0 0 0 0 0\n"   # busy 5+1+4 = 10 of 60 (iowait 10 counts as idle)
            "cpu1 30 0 0 10 0 0 0 0 0 0\n"
            "intr 12345\n")
    assert cpu_times(text, {0, 1}) == {0: (10, 60), 1: (30, 40)}
    assert cpu_times(text, {1}) == {1: (30, 40)}
    assert 0.0 <= busy_cores(0.05) <= available_cores() + 0.01
