"""OpenMP wait policy and thread count from how busy the machine is when a run starts.

libgomp's default lets a thread that finished its share of a parallel region spin ~3 ms before it
sleeps. On an idle machine that is the fastest (the quickstart: 0.38 s a step against 0.55 with
``OMP_WAIT_POLICY=PASSIVE`` on a 2-core VM); when another process holds a core, the spinning
threads keep their cores while the thread sharing a core with it waits, and steps took 3.4x as
long (docs/step-time.md#busy-machines). Passive threads alone still waited at every parallel
region for the thread that shares its core (1.5x an idle step); threads on the free cores only
do not (1.2x). So the training and evaluation entry points sample ``/proc/stat`` for a moment
before torch loads libgomp (which reads its settings once, at load) and, only when other
processes use the CPUs this one may run on, choose passive and as many threads as cores are left
free. An idle machine keeps libgomp's default and every core.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, MutableMapping
from pathlib import Path

USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
THREAD_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # a user's thread count wins too
# Other processes' CPU use, in cores, from which threads stop spinning. One busy core reads ~1.0;
# an idle machine's daemons a few hundredths. Half a core: a process that holds a core half the
# time already preempts our thread there at most parallel regions.
BUSY_CORES_THRESHOLD = 0.5
SAMPLE_SECONDS = 0.15  # 15 kernel ticks per CPU at 100 Hz: the busy share to ~0.07 of a core
PROC_STAT = Path("/proc/stat")

log = logging.getLogger("speciarl.wait_policy")
CHOICE: str | None = None  # what apply_wait_policy chose and why, for the run's log


def cpu_ticks(stat_text: str, cpus: Iterable[int]) -> tuple[int, int]:
    """Idle and total ticks, summed over the ``cpuN`` lines of ``/proc/stat`` text for ``cpus``.

    Idle is ``idle + iowait`` (fields 4 and 5); total is user through steal (fields 1-8: guest time
    is already inside user). Returns ``(idle, total)``; raises ``ValueError`` when a CPU asked for
    has no line in the text.
    """
    wanted = {f"cpu{n}" for n in cpus}
    idle = total = 0
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            ticks = [int(f) for f in fields[1:9]]
            idle += ticks[3] + ticks[4]
            total += sum(ticks)
            wanted.discard(fields[0])
    if wanted:
        raise ValueError(f"/proc/stat has no line for {sorted(wanted)}; expected a line per CPU 'cpuN ...'")
    return idle, total


def busy_cores(before: tuple[int, int], after: tuple[int, int], n_cpus: int) -> float:
    """Cores kept busy between two ``(idle, total)`` readings of ``n_cpus`` CPUs: (1 - idle share) x n.

    Raises ``ValueError`` when no tick passed between the readings (nothing was measured).
    """
    idle, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        raise ValueError(f"no CPU tick between the two /proc/stat readings ({before} -> {after})")
    return (1.0 - idle / total) * n_cpus


def others_busy_cores(seconds: float = SAMPLE_SECONDS, cpus: Iterable[int] | None = None) -> float:
    """Cores that other processes keep busy, on ``cpus`` (default: those this process may run on).

    This process sleeps between the two readings, so what is busy is someone else's work.
    """
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    before = cpu_ticks(PROC_STAT.read_text(), cpus)
    time.sleep(seconds)
    return busy_cores(before, cpu_ticks(PROC_STAT.read_text(), cpus), len(cpus))


def choose_wait_policy(
    environ: MutableMapping[str, str], others: float | None, threshold: float = BUSY_CORES_THRESHOLD
) -> tuple[str | None, str]:
    """The ``OMP_WAIT_POLICY`` to set (``None``: leave libgomp's default) and why, in words.

    ``others`` is :func:`others_busy_cores` (``None`` when it could not be read). A wait setting
    of the user's (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``) always wins.
    """
    mine = {k: environ[k] for k in USER_KEYS if k in environ}
    if mine:
        return None, f"left as set: {', '.join(f'{k}={v}' for k, v in mine.items())}"
    if others is None:
        return None, "libgomp's default (spin, then sleep): CPU use could not be read"
    if others >= threshold:
        return "PASSIVE", (
            f"OMP_WAIT_POLICY=PASSIVE: other processes use {others:.2f} cores (>= {threshold}); "
            "spinning threads would slow every step"
        )
    return None, (
        f"libgomp's default (spin, then sleep): other processes use {others:.2f} cores (< {threshold}); "
        "set OMP_WAIT_POLICY=PASSIVE if other work starts during the run"
    )


def threads_for_free_cores(
    environ: MutableMapping[str, str], others: float | None, n_cpus: int
) -> int | None:
    """Threads for the cores other processes leave free, on a busy machine; ``None``: torch's default.

    With ``others`` at or above the threshold, ``round(n_cpus - others)`` threads, at least one:
    a thread that shares its core with other work makes every parallel region wait for it. A
    thread count of the user's (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) always wins, and so does
    a wait setting of the user's (they chose how this machine is shared).
    """
    if (
        others is None
        or others < BUSY_CORES_THRESHOLD
        or any(k in environ for k in (*USER_KEYS, *THREAD_KEYS))
    ):
        return None
    free = max(1, int(n_cpus - others + 0.5))
    return free if free < n_cpus else None


def apply_wait_policy(environ: MutableMapping[str, str] = os.environ) -> str:
    """Choose once per process, before torch loads, and set the policy in ``environ``; returns why.

    On a busy machine this also sets ``OMP_NUM_THREADS`` to the cores left free
    (:func:`threads_for_free_cores`). Does nothing (and samples nothing) when torch is already
    imported (libgomp has read its setting) or the user set a wait policy. The reason is kept in
    :data:`CHOICE` for the run's log.
    """
    global CHOICE
    if CHOICE is not None:
        return CHOICE
    if "torch" in sys.modules:
        CHOICE = "left as it was: torch (and libgomp) loaded before speciarl could choose"
        return CHOICE
    others, n_cpus = None, 1
    if not any(k in environ for k in USER_KEYS):
        try:
            n_cpus = len(os.sched_getaffinity(0))
            others = others_busy_cores()
        except (OSError, ValueError, AttributeError) as error:  # no /proc or sched_getaffinity (macOS)
            log.debug("CPU use not read: %s", error)
    threads = threads_for_free_cores(environ, others, n_cpus)  # before our own setting is in environ
    policy, CHOICE = choose_wait_policy(environ, others)
    if policy is not None:
        environ["OMP_WAIT_POLICY"] = policy
    if threads is not None:
        environ["OMP_NUM_THREADS"] = str(threads)
        CHOICE += f"; {threads} of {n_cpus} threads (the cores left free; num_threads=N to choose)"
    return CHOICE
