"""The OpenMP wait policy chosen from real /proc/stat readings (speciarl.wait_policy)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speciarl.wait_policy import (
    BUSY_CORES_THRESHOLD,
    apply_wait_policy,
    busy_cores,
    choose_wait_policy,
    cpu_ticks,
    others_busy_cores,
    threads_for_free_cores,
)

needs_proc = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc/stat")

# Two readings of a 2-CPU machine, 0.1 s apart at 100 Hz: 10 ticks per CPU.
STAT_BEFORE = """cpu  300 0 100 1000 20 0 0 0 0 0
cpu0 200 0 50 400 10 0 0 0 0 0
cpu1 100 0 50 600 10 0 0 0 0 0
intr 12345
"""
# cpu0: 8 user + 2 system, 0 idle (fully busy); cpu1: 1 user, 8 idle, 1 iowait.
STAT_AFTER = """cpu  309 0 102 1008 21 0 0 0 0 0
cpu0 208 0 52 400 10 0 0 0 0 0
cpu1 101 0 50 608 11 0 0 0 0 0
intr 12399
"""


def test_ticks_and_busy_cores_by_hand() -> None:
    # cpu0 idle 400+10, total 200+50+400+10 = 660; cpu1 idle 610, total 760.
    assert cpu_ticks(STAT_BEFORE, [0]) == (410, 660)
    assert cpu_ticks(STAT_BEFORE, [0, 1]) == (1020, 1420)
    assert cpu_ticks(STAT_AFTER, [0, 1]) == (1029, 1440)
    # 20 ticks passed, 9 idle: (1 - 9/20) x 2 = 1.1 cores busy; cpu0 alone: 1.0, cpu1 alone: 0.1.
    both = busy_cores(cpu_ticks(STAT_BEFORE, [0, 1]), cpu_ticks(STAT_AFTER, [0, 1]), 2)
    assert both == pytest.approx(1.1)
    assert busy_cores(cpu_ticks(STAT_BEFORE, [0]), cpu_ticks(STAT_AFTER, [0]), 1) == pytest.approx(1.0)
    assert busy_cores(cpu_ticks(STAT_BEFORE, [1]), cpu_ticks(STAT_AFTER, [1]), 1) == pytest.approx(0.1)


def test_bad_readings_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"no line for \['cpu7'\]"):
        cpu_ticks(STAT_BEFORE, [0, 7])
    with pytest.raises(ValueError, match="no CPU tick"):
        busy_cores((10, 100), (10, 100), 2)


def test_the_users_setting_wins_even_on_a_busy_machine() -> None:
    for key, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000")):
        environ = {key: value}
        policy, why = choose_wait_policy(environ, others=1.9)
        assert policy is None and f"{key}={value}" in why
    assert choose_wait_policy({}, others=None)[0] is None


def test_threshold() -> None:
    assert choose_wait_policy({}, others=BUSY_CORES_THRESHOLD - 0.01)[0] is None
    policy, why = choose_wait_policy({}, others=1.02)
    assert policy == "PASSIVE" and "1.02 cores" in why


def test_threads_for_the_cores_left_free_by_hand() -> None:
    # 2 CPUs, one kept busy (1.02 cores): 2 - 1.02 = 0.98 -> 1 thread.
    assert threads_for_free_cores({}, 1.02, 2) == 1
    # 8 CPUs, 2.6 busy: 5.4 -> 5 threads; 8 CPUs, 0.6 busy: 7.4 -> 7.
    assert threads_for_free_cores({}, 2.6, 8) == 5
    assert threads_for_free_cores({}, 0.6, 8) == 7
    # All busy: still one thread. Below the threshold or unreadable: torch's default (None).
    assert threads_for_free_cores({}, 4.0, 2) == 1
    assert threads_for_free_cores({}, BUSY_CORES_THRESHOLD - 0.01, 2) is None
    assert threads_for_free_cores({}, None, 2) is None
    # 2 CPUs, 0.5 busy: 1.5 rounds up to 2, every core: nothing to set.
    assert threads_for_free_cores({}, 0.5, 2) is None
    # A user's thread count or wait setting wins.
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        assert threads_for_free_cores({key: "2"}, 1.02, 2) is None


def _busy_child(cpu: int) -> subprocess.Popen:
    """A real ``yes > /dev/null`` pinned to ``cpu``, running by the time this returns."""
    child = subprocess.Popen(
        ["yes"], stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, {cpu})
    )
    time.sleep(0.3)
    return child


@needs_proc
def test_a_busy_core_is_seen_and_chooses_passive() -> None:
    cpu = min(os.sched_getaffinity(0))
    child = _busy_child(cpu)
    try:
        on_its_core = others_busy_cores(cpus=[cpu])
        on_all = others_busy_cores()
    finally:
        child.terminate()
        child.wait()
    # Its core is busy whatever else runs (a pinned `yes` never sleeps); ticks are 1/15 of a sample.
    assert on_its_core >= 0.85
    assert on_all >= 0.85
    policy, why = choose_wait_policy({}, on_all)
    assert policy == "PASSIVE", why


@needs_proc
def test_entry_point_process_sets_passive_beside_a_busy_core_and_leaves_a_users_choice() -> None:
    """A fresh interpreter, as ``python -m speciarl.train`` starts: the policy is in its environment."""
    script = (
        "import os; from speciarl.wait_policy import apply_wait_policy; why = apply_wait_policy(); "
        "print(os.environ.get('OMP_WAIT_POLICY'), '|', why, '|', os.environ.get('OMP_NUM_THREADS'))"
    )
    cleared = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    child = _busy_child(min(os.sched_getaffinity(0)))
    try:
        busy = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        users = subprocess.run(
            [sys.executable, "-c", script],
            env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        child.terminate()
        child.wait()
    assert busy.stdout.startswith("PASSIVE | OMP_WAIT_POLICY=PASSIVE: other processes use"), busy.stdout
    n_cpus = len(os.sched_getaffinity(0))
    threads = busy.stdout.strip().rsplit("| ", 1)[1]
    if n_cpus > 1:  # one core of n is busy: fewer threads than cores, as many as the why says
        assert threads.isdigit() and 1 <= int(threads) < n_cpus, busy.stdout
        assert f"; {threads} of {n_cpus} threads (the cores left free" in busy.stdout
    assert users.stdout.strip() == "ACTIVE | left as set: OMP_WAIT_POLICY=ACTIVE | None", users.stdout


def test_torch_already_loaded_is_left_alone() -> None:
    script = (
        "import os, torch; from speciarl.wait_policy import apply_wait_policy; "
        "print(os.environ.get('OMP_WAIT_POLICY'), '|', apply_wait_policy())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("None | left as it was: torch"), out.stdout


def test_once_per_process() -> None:
    environ: dict[str, str] = {"GOMP_SPINCOUNT": "1000"}
    first = apply_wait_policy(environ)
    assert apply_wait_policy({}) == first
