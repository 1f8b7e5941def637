"""Long runs against what clusters do to them, with the real tiny model (issue 22).

Real signals (``os.kill``, from a judge server thread, a callback, or the test process), a real
small file system (a tmpfs mount), real loopback judge servers, real checkpoints on disk.
Interrupted-and-resumed runs are compared with uninterrupted ones bitwise (``torch.equal``): in
one process, with the same thread count, CPU arithmetic repeats exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from conftest import compose_config
from faulty_server import FaultPlan, FaultyJudgeServer
from speciarl.data.synthetic import shapes_taxonomy
from speciarl.runs.atomic_files import DiskFullError
from speciarl.runs.checkpoint_io import CorruptCheckpointError
from speciarl.runs.fingerprint import ResumeMismatchError
from speciarl.runs.nonfinite import first_nonfinite
from speciarl.runs.preemption import Preempted
from speciarl.runs.run_lock import LOCK_NAME, RunFolderBusyError
from speciarl.train import train
from speciarl.verifier.taxonomy_judge import TaxonomyJudge

ROOT = Path(__file__).resolve().parents[2]
QUICK_PHASES = [{"steps": 40, "lr": 0.003, "leaf": 1.0, "type": 0.0, "family": 0.0}]
COMMON = [
    "algorithm=grpo",
    "reward=speciarl",
    "seed=2",
    "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]",
    "data.batch_size=4",
    "data.train.size=8",
    "eval.before=false",
    "eval.after=false",
    "eval.best_of_n=0",
    "logger=none",
    "checkpoint=periodic",
    "checkpoint.every_n_train_steps=1",
    "module.log_completions_every=0",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module", autouse=True)
def _warm_policy():
    from speciarl.built_models.tiny_loading import tiny_policy

    tiny_policy(warm_start=True, phases=QUICK_PHASES)  # cached after the first build


def _state(path: Path) -> dict:
    checkpoint = torch.load(path, weights_only=True)
    return {"weights": checkpoint["state_dict"], "optimizer": checkpoint["optimizer_states"]}


def _flat(value, prefix=""):
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flat(v, f"{prefix}.{i}")


def assert_bitwise_equal(one: Path, two: Path) -> None:
    a, b = dict(_flat(_state(one))), dict(_flat(_state(two)))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def _subprocess_train(overrides: list[str], out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.Popen(
        [sys.executable, "-m", "speciarl.train", *overrides, f"hydra.run.dir={out}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


# ------------------------------------------------------------------ non-finite steps
def test_nan_steps_are_not_applied_and_stop_the_run_before_sampling_fails(tmp_path):
    run = _subprocess_train([*COMMON, "optimizer.lr=1e6", "trainer.max_steps=12"], tmp_path)
    output, _ = run.communicate(timeout=600)
    assert run.returncode != 0, output[-2000:]
    assert "NonFiniteStepError: step " in output and "optimizer.lr" in output, output[-2000:]
    assert "probability tensor" not in output
    checkpoints = sorted((tmp_path / "checkpoints").glob("step-*.ckpt"))
    assert checkpoints
    for path in [*checkpoints, tmp_path / "checkpoints" / "last.ckpt"]:
        state = _state(path)
        assert first_nonfinite(state) is None, path
    # The run stops at the third skipped step, before its checkpoint: the two skipped steps before
    # it saved the weights and optimiser state of the last applied step, unchanged.
    assert len(checkpoints) >= 3
    for skipped in checkpoints[-2:]:
        assert_bitwise_equal(checkpoints[-3], skipped)
    assert_bitwise_equal(checkpoints[-3], tmp_path / "checkpoints" / "last.ckpt")
    applied, stopped = int(checkpoints[-3].stem.split("-")[1]), int(checkpoints[-1].stem.split("-")[1])
    assert f"NonFiniteStepError: step {stopped}: " in output and stopped == applied + 2


# ------------------------------------------------------------------ full disk
@contextmanager
def small_disk(tmp_path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (e.g. "30m") mounted at ``tmp_path/disk``; skips unless root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (tests/unit covers the rlimit case)")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)]).returncode:
        pytest.skip("tmpfs mount refused")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_stops_the_run_with_every_checkpoint_whole(tmp_path):
    with small_disk(tmp_path, "30m") as disk:
        cfg = compose_config([*COMMON, "trainer.max_steps=8"], disk / "run")
        with pytest.raises(DiskFullError) as caught:
            train(cfg)
        assert str(caught.value).startswith("disk full: could not write " + str(disk / "run" / "checkpoints"))
        names = [p.name for p in (disk / "run").rglob("*")]
        assert not [n for n in names if ".tmp-" in n], names
        checkpoints = sorted((disk / "run" / "checkpoints").glob("*.ckpt"))
        assert checkpoints, names
        for path in checkpoints:
            assert first_nonfinite(_state(path)) is None  # loads, whole
        assert not (disk / "run" / LOCK_NAME).exists()


# ------------------------------------------------------------------ resume checks
@pytest.fixture(scope="module")
def one_step_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one_step")
    train(compose_config([*COMMON, "trainer.max_steps=1"], out))
    return out / "checkpoints" / "last.ckpt"


def _spy_on_build(monkeypatch) -> list:
    import speciarl.train as entry

    built = []
    real = entry.build_module

    def counting(cfg):
        built.append(cfg)
        return real(cfg)

    monkeypatch.setattr(entry, "build_module", counting)
    return built


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["algorithm.group_size=8"], "algorithm.group_size: 4 -> 8"),
        (["data.batch_size=8"], "data.batch_size: 4 -> 8"),
        (["reward=reward3"], "reward._target_"),
        (["optimizer=sgd"], "cannot change on resume"),
    ],
    ids=["group_size", "batch_size", "reward", "optimizer"],
)
def test_resuming_with_changed_settings_is_refused_before_any_build(
    one_step_checkpoint, tmp_path, monkeypatch, change, message
):
    built = _spy_on_build(monkeypatch)
    cfg = compose_config(
        [*COMMON, "trainer.max_steps=2", f"ckpt_path={one_step_checkpoint}", *change], tmp_path
    )
    with pytest.raises(ResumeMismatchError, match=message):
        train(cfg)
    assert built == []


def test_an_accepted_change_resumes(one_step_checkpoint, tmp_path):
    cfg = compose_config(
        [
            *COMMON,
            "trainer.max_steps=2",
            f"ckpt_path={one_step_checkpoint}",
            "algorithm.group_size=2",
            "resume_accept_changes=[algorithm.group_size]",
        ],
        tmp_path,
    )
    assert train(cfg)["steps"] == 2


# ------------------------------------------------------------------ export: whole or not at all
def _export(checkpoint: Path, out_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    phases = "model.phases=[{steps:40,lr:0.003,leaf:1.0,type:0.0,family:0.0}]"  # the cached warm start
    return subprocess.run(
        [sys.executable, "-m", "speciarl.export", f"ckpt_path={checkpoint}", f"out_dir={out_dir}", "merge=true",
         phases, f"hydra.run.dir={cwd}/hydra"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_an_export_onto_a_full_disk_keeps_the_previous_export_whole(one_step_checkpoint, tmp_path):
    with small_disk(tmp_path, "16m") as disk:
        out = disk / "export"
        first = _export(one_step_checkpoint, out, tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        assert {"config.json", "model.safetensors", "README.md"} <= set(before)
        # Leave less room than one more export needs: the second export must fail and say so.
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(0, free - 2**20))
        second = _export(one_step_checkpoint, out, tmp_path)
        assert second.returncode != 0
        message = second.stderr[-3000:]
        assert "disk full: could not write" in message and str(out) in message, message
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old export, untouched
        assert sorted(p.name for p in disk.iterdir()) == ["export", "filler"]  # no temporary folder left


def test_an_export_of_non_finite_weights_is_refused_and_writes_nothing(one_step_checkpoint, tmp_path):
    checkpoint = torch.load(one_step_checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][name][0] = float("nan")
    poisoned = tmp_path / "poisoned.ckpt"
    torch.save(checkpoint, poisoned)
    done = _export(poisoned, tmp_path / "export", tmp_path)
    assert done.returncode != 0
    assert "NonFiniteStateError" in done.stderr and "is not finite" in done.stderr, done.stderr[-3000:]
    assert not (tmp_path / "export").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("content", [b"", os.urandom(2048)], ids=["empty", "random"])
def test_a_corrupt_checkpoint_is_refused_before_any_build(tmp_path, monkeypatch, content):
    built = _spy_on_build(monkeypatch)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content)
    cfg = compose_config([*COMMON, f"ckpt_path={bad}"], tmp_path / "run")
    with pytest.raises(CorruptCheckpointError, match=f"ckpt_path={bad}: "):
        train(cfg)
    assert built == []
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_second_run_into_a_busy_folder_is_refused(tmp_path, monkeypatch):
    built = _spy_on_build(monkeypatch)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from speciarl.runs.run_lock import RunFolderLock;"
         f"RunFolderLock({str(tmp_path)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusyError, match=f"pid {holder.pid}"):
            train(compose_config([*COMMON, "trainer.max_steps=1"], tmp_path))
        assert built == []
    finally:
        holder.communicate("")


# ------------------------------------------------------------------ preemption
class _SignalOnUpdate(Callback):
    """Sends this process SIGTERM from inside an optimiser step (the update, not the collection)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), signal.SIGTERM)


class _TrapServer(FaultyJudgeServer):
    """A loopback judge that, once armed, sends this process SIGTERM on a request and never answers it."""

    armed: bool = False
    signalled_at: float | None = None

    def _answer(self, conn, body, fault):
        if self.armed:
            if self.signalled_at is None:
                self.signalled_at = time.monotonic()
                os.kill(os.getpid(), signal.SIGTERM)
            self._stop.wait(60)  # the request stays in flight
            return
        super()._answer(conn, body, fault)


class _Arm(Callback):
    def __init__(self, server: _TrapServer, after_step: int) -> None:
        self.server, self.after_step = server, after_step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.after_step:
            self.server.armed = True


@pytest.fixture(scope="module")
def judge_server():
    oracle = TaxonomyJudge(shapes_taxonomy())
    with _TrapServer(
        lambda truth, prediction: oracle.judge([truth], [prediction])[0].value, FaultPlan(0, 0.0, 0.0)
    ) as server:
        yield server


def _judge_overrides(url: str) -> list[str]:
    return [
        "verifier=llm_http",
        f"verifier.llm.base_url={url}",
        "verifier.llm.guided=none",
        "verifier.llm.timeout_s=60",
        "verifier.llm.max_retries=0",
        "verifier.llm.breaker_failures=0",
        "num_threads=2",
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, judge_server) -> Path:
    out = tmp_path_factory.mktemp("whole")
    train(compose_config([*COMMON, *_judge_overrides(judge_server.url), "trainer.max_steps=4"], out))
    return out / "checkpoints" / "step-000004.ckpt"


def _resume(base: list[str], checkpoint: str, out: Path) -> Path:
    results = train(compose_config([*base, "trainer.max_steps=4", f"ckpt_path={checkpoint}"], out))
    assert results["steps"] == 4
    return out / "checkpoints" / "step-000004.ckpt"


def test_sigterm_during_the_update_finishes_the_step_and_resumes_bitwise(
    tmp_path, judge_server, uninterrupted
):
    judge_server.armed = False
    base = [*COMMON, *_judge_overrides(judge_server.url)]
    with pytest.raises(Preempted) as caught:
        train(compose_config([*base, "trainer.max_steps=4"], tmp_path / "b"), callbacks=[_SignalOnUpdate(1)])
    stop = caught.value
    assert stop.signum == signal.SIGTERM and not stop.abandoned and stop.exit_code == 143
    assert stop.checkpoint == str(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert torch.load(stop.checkpoint, weights_only=True)["global_step"] == 2  # step 1 was finished
    assert_bitwise_equal(uninterrupted, _resume(base, stop.checkpoint, tmp_path / "c"))


def test_sigterm_with_judge_requests_in_flight_abandons_the_step_and_resumes_bitwise(
    tmp_path, judge_server, uninterrupted
):
    base = [*COMMON, *_judge_overrides(judge_server.url)]
    judge_server.armed, judge_server.signalled_at = False, None
    try:
        with pytest.raises(Preempted) as caught:
            train(
                compose_config([*base, "trainer.max_steps=4"], tmp_path / "b"),
                callbacks=[_Arm(judge_server, 2)],
            )
        reacted = time.monotonic() - judge_server.signalled_at
    finally:
        judge_server.armed = False
    stop = caught.value
    assert stop.abandoned and stop.exit_code == 143
    assert reacted < 5.0, reacted  # not the 60 s judge deadline
    saved = torch.load(stop.checkpoint, weights_only=True)
    assert saved["global_step"] == 2
    assert_bitwise_equal(tmp_path / "b" / "checkpoints" / "step-000002.ckpt", Path(stop.checkpoint))
    assert_bitwise_equal(uninterrupted, _resume(base, stop.checkpoint, tmp_path / "c"))


def test_sigterm_from_outside_exits_non_zero_with_a_checkpoint(tmp_path):
    """The entry point itself: exit 143 within seconds, the checkpoint path printed."""
    run = _subprocess_train([*COMMON, "trainer.max_steps=200"], tmp_path)
    deadline = time.monotonic() + 400
    while not (tmp_path / "checkpoints" / "step-000002.ckpt").exists():
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    signalled = time.monotonic()
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=60)
    took = time.monotonic() - signalled
    assert run.returncode == 143, output[-2000:]
    assert took < 10.0, took
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"resume with: ckpt_path={last}" in output
    assert first_nonfinite(_state(last)) is None
    assert not (tmp_path / LOCK_NAME).exists()
