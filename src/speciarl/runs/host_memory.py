"""Host memory on CPU runs: keep freed memory in the process (fast), or hand it back at once (small).

glibc serves a large allocation (above its mmap threshold, at most 32 MiB by default) with a fresh
``mmap`` and returns it with ``munmap`` when freed, and trims the top of its heap once more than the
trim threshold is free there. An RL step on CPU allocates and frees the same activations, logits
and KV buffers of several megabytes every micro-batch, so each step pays again for the kernel to
map and zero those pages: on the 256-token benchmark, ~100,000 page faults a step, 0.2-0.3 s of a
~2.5 s update (docs/step-time.md). Raising both thresholds keeps the freed pages in the heap for
the next step (no page faults after the first step), at the price of the process holding its
peak footprint until it exits, which a training process reaches every step anyway.

The other way, for runs that must fit (the 3B rehearsal in 24 GiB): glibc's default threshold is
dynamic, rising to the size of each mapping freed (up to 32 MiB), after which activations of a few
MiB come from the heap, where the next micro-batch cannot reuse the holes left between blocks
that live on (LoRA gradients, the optimiser state): at the 3B widths the second micro-batch of a
step added half as much again as the first. :func:`release_freed_memory` fixes the threshold at
1 MiB, so every large tensor is its own mapping and goes back to the OS when freed: the resident
set returns to its level before each micro-batch (measured: docs/scaling.md), for page faults on
every large allocation.

Only the allocator's thresholds change; no value computed changes. Elsewhere than glibc (musl,
macOS) the call does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
RETAIN_BYTES = 1 << 30
RELEASE_BYTES = 1 << 20


def retain_freed_memory(threshold: int = RETAIN_BYTES) -> bool:
    """Serve allocations below ``threshold`` from the heap and never trim it below that; True if applied."""
    return _set_thresholds(threshold)


def release_freed_memory(threshold: int = RELEASE_BYTES) -> bool:
    """Give every allocation of ``threshold`` bytes or more its own mapping, unmapped when freed; True if applied.

    A fixed threshold also turns off glibc's dynamic one (which would rise again after a free).
    """
    return _set_thresholds(threshold)


def _set_thresholds(threshold: int) -> bool:
    """Set glibc's mmap and trim thresholds to ``threshold`` bytes; True if applied."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        gnu_libc_version = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        log.info("not glibc: host memory is left to the platform's allocator")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = mallopt(M_MMAP_THRESHOLD, threshold) == 1 and mallopt(M_TRIM_THRESHOLD, threshold) == 1
    gnu_libc_version.restype = ctypes.c_char_p
    if not applied:
        log.warning("glibc %s refused the mallopt thresholds", gnu_libc_version().decode())
    return applied
