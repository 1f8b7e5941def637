"""Retaining freed host memory (runs/host_memory.py): a freed 64 MiB buffer is reused without page faults.

Run in a child process, so the allocator settings do not outlive the test. 64 MiB is above glibc's
largest dynamic mmap threshold (32 MiB): by default every such allocation is a fresh mapping whose
16,384 pages fault in on first touch.
"""

import subprocess
import sys

CHILD = """
import resource, sys, torch
from speciarl.runs.host_memory import release_freed_memory, retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
if sys.argv[1] == "release":
    assert release_freed_memory()
size = int(sys.argv[2])
def touch():
    x = torch.empty(size // 4)  # float32
    x.fill_(1.0)
    del x
for _ in range(30):  # glibc settles its heap over the first few reuses
    touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, size: int = 64 << 20) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(size)], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_page_faults():
    default, retained = _faults("default"), _faults("retain")
    # 10 allocations x 16,384 pages each by default; none once freed memory stays in the heap.
    assert default >= 10 * 16_000, default
    assert retained < 500, retained


def test_released_memory_goes_back_to_the_os_also_below_the_dynamic_threshold():
    """An 8 MiB tensor: after the first free glibc's dynamic threshold rises above it, so by default
    later ones come from the heap (no new page faults); with the threshold fixed at 1 MiB each one
    is a fresh mapping, unmapped when freed (2,048 pages faulted in every time)."""
    default, released = _faults("default", 8 << 20), _faults("release", 8 << 20)
    assert default < 500, default
    assert released >= 10 * 2_000, released
