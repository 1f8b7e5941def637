"""The long-run protections on their own: real files on a real small file system, real signals.

Full disks are a real tmpfs of a few MiB when the tests run as root (a mount), and a real
file-size limit (RLIMIT_FSIZE, in a child process) otherwise; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from speciarl.runs.atomic_files import (
    DiskFullError,
    atomic_file,
    write_folder_atomically,
    write_text_atomically,
)
from speciarl.runs.checkpoint_io import CorruptCheckpointError, SafeCheckpointIO, inspect_checkpoint
from speciarl.runs.fingerprint import ResumeMismatchError, check_resume, run_fingerprint
from speciarl.runs.nonfinite import NonFiniteGuard, NonFiniteStateError, NonFiniteStepError, first_nonfinite
from speciarl.runs.preemption import Preempted, PreemptionWatch
from speciarl.runs.run_lock import LOCK_NAME, RunFolderBusyError, RunFolderLock


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB tmpfs (root only; skipped otherwise, the rlimit test covers that case)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_file_size_limit_is_a_full_disk covers this case")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"tmpfs mount refused here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# ------------------------------------------------------------------ atomic writes, full disks
def test_full_disk_leaves_nothing_under_the_final_name(small_disk):
    target = small_disk / "big.bin"
    with pytest.raises(DiskFullError) as caught, atomic_file(target) as fh:
        fh.write(os.urandom(3 * 2**20))  # 3 MiB into 2 MiB
    message = str(caught.value)
    assert message.startswith("disk full: could not write") and str(target) in message
    assert "MiB free" in message
    assert list(small_disk.iterdir()) == []  # neither the target nor a temporary file


def test_full_disk_keeps_the_previous_file(small_disk):
    target = small_disk / "results.json"
    write_text_atomically(target, json.dumps({"steps": 1}))
    with pytest.raises(DiskFullError):
        write_text_atomically(target, "x" * (3 * 2**20))
    assert json.loads(target.read_text()) == {"steps": 1}
    assert [p.name for p in small_disk.iterdir()] == ["results.json"]


def test_full_disk_during_a_folder_export_keeps_the_old_folder(small_disk):
    target = small_disk / "policy"
    write_folder_atomically(target, lambda d: (d.mkdir(), (d / "w.bin").write_bytes(b"old")))

    def too_big(staging: Path) -> None:
        staging.mkdir()
        (staging / "w.bin").write_bytes(os.urandom(3 * 2**20))

    with pytest.raises(DiskFullError, match="disk full"):
        write_folder_atomically(target, too_big)
    assert (target / "w.bin").read_bytes() == b"old"
    assert [p.name for p in small_disk.iterdir()] == ["policy"]


def test_file_size_limit_is_a_full_disk(tmp_path):
    """The non-root variant: a real RLIMIT_FSIZE in a child process (EFBIG on the write)."""
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))\n"
        "from speciarl.runs.atomic_files import DiskFullError, atomic_file\n"
        "try:\n"
        "    with atomic_file(sys.argv[1]) as fh:\n"
        "        fh.write(b'x' * 2**21)\n"
        "except DiskFullError as error:\n"
        "    print(error); sys.exit(3)\n"
    )
    target = tmp_path / "out.bin"
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert "disk full: could not write" in done.stdout and str(target) in done.stdout
    assert list(tmp_path.iterdir()) == []
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != 2**20  # the limit stayed in the child


# ------------------------------------------------------------------ non-finite steps and states
def test_guard_counts_skipped_steps_in_a_row_and_names_step_and_quantity():
    guard = NonFiniteGuard(max_in_row=3)
    # step 5: applied, skipped (grad), skipped (loss) -> 2 in a row, 2 skipped this step
    assert guard.record(5, [None, "grad_norm", "loss"]) == 2
    assert guard.in_row == 2
    assert guard.record(6, [None]) == 0 and guard.in_row == 0  # an applied step resets the run
    assert guard.record(7, ["grad_norm", "grad_norm"]) == 2
    with pytest.raises(NonFiniteStepError) as caught:
        guard.record(8, ["loss"])
    message = str(caught.value)
    assert message.startswith("step 8: the loss was not finite in 3 optimiser steps in a row")
    assert "module.max_nonfinite_steps=3" in message and "optimizer.lr" in message
    with pytest.raises(ValueError, match="max_nonfinite_steps"):
        NonFiniteGuard(0)


def test_first_nonfinite_finds_the_tensor_by_name():
    state = {
        "a": torch.ones(3),
        "opt": [{"exp_avg": torch.tensor([1.0, float("inf")])}],
        "n": torch.arange(3),
    }
    assert first_nonfinite(state) == "opt.0.exp_avg"
    assert first_nonfinite({"a": torch.ones(2), "n": torch.arange(2)}) is None


def test_checkpoint_io_refuses_a_nonfinite_checkpoint_and_keeps_the_old(tmp_path):
    io = SafeCheckpointIO()
    path = tmp_path / "last.ckpt"
    good = {"state_dict": {"w": torch.ones(2)}, "optimizer_states": [], "loops": {}}
    io.save_checkpoint(good, path)
    bad = {"state_dict": {"w": torch.tensor([1.0, float("nan")])}, "optimizer_states": []}
    with pytest.raises(NonFiniteStateError, match=r"refusing to write .*last.ckpt: tensor state_dict.w"):
        io.save_checkpoint(bad, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# ------------------------------------------------------------------ corrupt checkpoints
def _lightning_like(path: Path) -> Path:
    torch.save({"pytorch-lightning_version": "2.6", "state_dict": {"w": torch.ones(4)}, "loops": {}}, path)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
        (lambda p: p.write_bytes(os.urandom(4096)), "not a torch checkpoint archive (4096 bytes"),
        (lambda p: torch.save({"weights": torch.ones(2)}, p), "not a Lightning training checkpoint (no "),
        (lambda p: torch.save([1, 2], p), "holds a list"),
        (lambda p: p.write_bytes(_lightning_like(p).read_bytes()[:-300]), "not a torch checkpoint archive"),
        (lambda p: p.mkdir(), "not a file"),
    ],
    ids=["empty", "random", "foreign", "list", "truncated", "folder"],
)
def test_corrupt_checkpoints_are_named_in_one_line(tmp_path, make, expected):
    path = tmp_path / "x.ckpt"
    make(path)
    with pytest.raises(CorruptCheckpointError) as caught:
        inspect_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"ckpt_path={path}: ") and expected in message


def test_a_lightning_checkpoint_passes_inspection(tmp_path):
    checkpoint = inspect_checkpoint(_lightning_like(tmp_path / "ok.ckpt"))
    assert torch.equal(checkpoint["state_dict"]["w"], torch.ones(4))


# ------------------------------------------------------------------ resume fingerprint
CONFIG = {
    "algorithm": {"name": "grpo", "group_size": 4, "overlong": {"enabled": False}},
    "reward": {"_target_": "speciarl.rl.rewards.SpeciaRLReward"},
    "model": {"path": "tiny"},
    "optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-4},
    "data": {"batch_size": 8, "seed": 0, "val": {"size": 16}, "num_workers": 0, "train": {"size": 100}},
    "seed": 0,
    "trainer": {"max_steps": 10},
}


def _changed(**sections) -> dict:
    config = json.loads(json.dumps(CONFIG))
    for dotted, value in sections.items():
        *head, leaf = dotted.split("__")
        node = config
        for key in head:
            node = node[key]
        node[leaf] = value
    return run_fingerprint(config)


def test_fingerprint_holds_what_shapes_the_trajectory_only():
    fingerprint = run_fingerprint(CONFIG)
    assert fingerprint["algorithm.group_size"] == "4"
    assert fingerprint["data.batch_size"] == "8" and fingerprint["seed"] == "0"
    assert not any(k.startswith(("data.val", "data.num_workers", "trainer")) for k in fingerprint)
    # a longer run or another validation split resumes silently
    assert run_fingerprint({**CONFIG, "trainer": {"max_steps": 99}}) == fingerprint
    assert _changed(data__val={"size": 512}) == fingerprint


def test_changed_settings_are_refused_with_the_list_and_the_override():
    saved = run_fingerprint(CONFIG)
    current = _changed(algorithm__group_size=8, data__batch_size=16)
    with pytest.raises(ResumeMismatchError) as caught:
        check_resume(saved, current, [], "run/last.ckpt")
    message = str(caught.value)
    assert "algorithm.group_size: 4 -> 8" in message and "data.batch_size: 8 -> 16" in message
    assert "resume_accept_changes=[algorithm.group_size,data.batch_size]" in message
    # accepted on purpose (a key, or its whole section): resumes, the changes are reported
    assert check_resume(saved, current, ["algorithm.group_size", "data"], "c") == [
        "  algorithm.group_size: 4 -> 8",
        "  data.batch_size: 8 -> 16",
    ]
    with pytest.raises(ResumeMismatchError, match="data.batch_size"):
        check_resume(saved, current, ["algorithm"], "c")
    assert check_resume(None, current, [], "c") == []  # a checkpoint from before fingerprints


def test_a_changed_optimiser_is_a_clear_error_even_when_accepted():
    saved = run_fingerprint(CONFIG)
    current = _changed(optimizer={"_target_": "torch.optim.SGD", "lr": 1e-4, "momentum": 0.9})
    with pytest.raises(ResumeMismatchError) as caught:
        check_resume(saved, current, ["optimizer"], "c")
    message = str(caught.value)
    assert 'optimizer._target_: "torch.optim.AdamW" -> "torch.optim.SGD"' in message
    assert "cannot change on resume" in message


# ------------------------------------------------------------------ run-folder lock
def test_a_second_run_in_the_folder_is_refused(tmp_path):
    with RunFolderLock(tmp_path):
        with pytest.raises(RunFolderBusyError) as caught:
            RunFolderLock(tmp_path).acquire()
        assert f"pid {os.getpid()}" in str(caught.value) and "hydra.run.dir" in str(caught.value)
    assert not (tmp_path / LOCK_NAME).exists()  # released
    with RunFolderLock(tmp_path):  # and free again
        pass


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    with caplog.at_level("WARNING"), RunFolderLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert f"taking over the lock of process {dead.pid}" in caplog.text


def test_a_lock_from_another_host_is_refused(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "x"}))
    with pytest.raises(RunFolderBusyError, match="host elsewhere"):
        RunFolderLock(tmp_path).acquire()


# ------------------------------------------------------------------ signals
def test_a_signal_between_steps_is_recorded_not_raised():
    watch = PreemptionWatch()
    watch.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert watch.signum == signal.SIGUSR1
        with pytest.raises(Preempted) as caught, watch.abandonable():
            pass  # entering the next collection stops at once
        assert caught.value.exit_code == 128 + signal.SIGUSR1
    finally:
        watch.uninstall()


class _Counter:
    def __init__(self) -> None:
        self.calls = 0

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = state["calls"]


def test_sigterm_abandons_a_collection_waiting_on_threads_and_rolls_back():
    """The main thread waits on worker threads (as on judge requests); SIGTERM from another
    process arrives; the wait ends within a second, the RNG and the backend state are put back."""
    watch = PreemptionWatch()
    watch.install()
    backend = _Counter()
    release = threading.Event()
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        expected = torch.get_rng_state()
        killer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import os,time,signal;time.sleep(0.5);os.kill({os.getpid()},signal.SIGTERM)",
            ]
        )
        started = time.monotonic()
        with pytest.raises(Preempted) as caught, watch.abandonable(backend):
            torch.rand(100)
            backend.calls += 5
            pool.submit(release.wait, 60).result()  # a judge request that never answers
        waited = time.monotonic() - started
        killer.wait()
        assert caught.value.abandoned and caught.value.signum == signal.SIGTERM
        assert waited < 3.0, waited
        assert torch.equal(torch.get_rng_state(), expected) and backend.calls == 0
    finally:
        release.set()
        pool.shutdown()
        watch.uninstall()


def test_torch_save_on_a_full_disk_is_a_disk_full_error(small_disk):
    """torch.save wraps ENOSPC in a RuntimeError ("unexpected pos"): still a DiskFullError."""
    io = SafeCheckpointIO()
    big = {"state_dict": {"w": torch.ones(1024, 1024)}, "optimizer_states": [], "loops": {}}  # 4 MiB
    with pytest.raises(DiskFullError, match=r"^disk full: could not write .*last.ckpt"):
        io.save_checkpoint(big, small_disk / "last.ckpt")
    assert list(small_disk.iterdir()) == []
