"""speciarl: specificity-aware reinforcement learning of vision-language models (SpeciaRL)."""

import os as _os
import sys as _sys

# OpenMP threads that finish their share of a parallel region sleep at once (PASSIVE) instead of
# spinning ~3 ms first (libgomp's default). On a machine with other work, spinning threads hold
# the cores a thread that was preempted needs: the quickstart ran 2x slower with one core busy,
# passive kept its speed, and the thread count (so every figure) stays as it was
# (docs/step-time.md, benchmarks/busy_machine.py). libgomp reads this when torch loads it, hence
# here, before any import of torch; an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "torch" not in _sys.modules and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & _os.environ.keys():
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
