"""Retaining freed host memory (runs/host_memory.py): a freed 64 MiB buffer is reused without page faults.

Run in a child process, so the allocator settings do not outlive the test. 64 MiB is above glibc's
largest dynamic mmap threshold (32 MiB): by default every such allocation is a fresh mapping whose
16,384 pages fault in on first touch.
"""

import subprocess
import sys

CHILD = """
import resource, sys, torch
from speciarl.runs.host_memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def touch():
    x = torch.empty(16 << 20)  # 64 MiB of float32
    x.fill_(1.0)
    del x
for _ in range(30):  # glibc settles its heap over the first few reuses
    touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_page_faults():
    default, retained = _faults("default"), _faults("retain")
    # 10 allocations x 16,384 pages each by default; none once freed memory stays in the heap.
    assert default >= 10 * 16_000, default
    assert retained < 500, retained
