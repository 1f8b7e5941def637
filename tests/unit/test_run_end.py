"""What a run says last: every path as it exists, how to get what is missing, the same in the log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from speciarl.runs.run_end import WandbRun, copy_to_log, last_checkpoint, where_things_are


def test_where_things_are_names_what_exists_and_how_to_get_the_rest(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    block = where_things_are(tmp_path, {}, None, None)
    assert f"run folder   {tmp_path}" in block
    assert f"results      {tmp_path / 'results.json'}" in block
    assert "policy       not saved (save_policy=true saves it" in block
    assert "checkpoint   none (checkpoint=periodic keeps them" in block
    assert "W&B          off" in block
    assert "\n  log " not in block  # no job log: no line for it


def test_offline_wandb_run_gets_its_sync_command_and_an_online_one_its_url(tmp_path):
    folder = tmp_path / "wandb" / "offline-run-x"
    offline = where_things_are(
        tmp_path, {"policy_dir": str(tmp_path / "policy")}, WandbRun(folder, None), None
    )
    assert f"W&B          {folder}" in offline and f"upload: wandb sync {folder}" in offline
    assert f"policy       {tmp_path / 'policy'}" in offline
    assert "results      not written" in offline
    online = where_things_are(
        tmp_path, {}, WandbRun(folder, "https://wandb.ai/u/p/runs/x"), tmp_path / "train.log"
    )
    assert "W&B          https://wandb.ai/u/p/runs/x" in online and "wandb sync" not in online
    assert f"log          {tmp_path / 'train.log'}" in online


def test_last_checkpoint_prefers_last_ckpt_then_the_newest(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert last_checkpoint(tmp_path) is None
    older, newer = folder / "step=50.ckpt", folder / "step=100.ckpt"
    for path, age in ((older, 100), (newer, 50)):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age, time.time() - age))
    assert last_checkpoint(tmp_path) == newer
    (folder / "last.ckpt").write_bytes(b"x")
    os.utime(folder / "last.ckpt", (time.time() - 500, time.time() - 500))
    assert last_checkpoint(tmp_path) == folder / "last.ckpt"


def test_copy_to_log_appends_to_the_job_log_files_only(tmp_path, capsys):
    log_file = tmp_path / "train.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("speciarl.test").warning("a line logged before")
        copy_to_log("held-out split: 16 samples\nwhere things are:")
    finally:
        root.removeHandler(handler)
        handler.close()
    assert log_file.read_text() == "a line logged before\nheld-out split: 16 samples\nwhere things are:\n"
    assert capsys.readouterr().out == ""


EXIT_SCRIPT = """
import atexit, concurrent.futures, threading, time
from speciarl.runs.run_end import run_then_exit

pool = concurrent.futures.ThreadPoolExecutor(1)  # its worker waits for the threading exit hooks
pool.submit(lambda: None).result()
worker = threading.Thread(target=lambda: (time.sleep(0.5), print("worker finished", flush=True)))
worker.start()  # a non-daemon thread still working: it must finish, as at a normal exit
atexit.register(lambda: print("atexit handler ran", flush=True))
run_then_exit(lambda: print("main done", flush=True))
print("never printed")
"""


def test_run_then_exit_finishes_threads_and_atexit_handlers_then_leaves():
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main done", "worker finished", "atexit handler ran"]
