"""Crash-safe checkpoints and resume: a real SIGKILL of the CLI, SIGTERM, torn and corrupt files,
checkpoints from a different run, experiments with several train calls."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr

from jaxdyn import cli
from jaxdyn.engine import Task, losses, observables, train
from jaxdyn.engine.checkpoint import Checkpointer, CheckpointError, read_checkpoint, write_checkpoint
from jaxdyn.store import read_status

# ---------------------------------------------------------------------------------------------
# The real thing: the CLI in a subprocess, SIGKILL after its second checkpoint, resume.
# ---------------------------------------------------------------------------------------------

# saxe-reduction quick at lr 0.005 for 100 tau: 20,000 steps, a checkpoint every 100 steps
# (200 chunks of ~10 ms each), so the kill lands well before the end.
KILL_ARGS = ["--quick", "--set", "duration=100", "--no-progress"]
EVERY = 100


def _arrays(path):
    return xr.load_dataset(path / "results.nc")


def _checkpoint_steps(folder):
    if not folder.is_dir():
        return []
    return sorted(int(p.name[5:14]) for p in folder.glob("step_*.npz"))


def test_sigkill_then_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, capsys):
    killed_out, ref_out = tmp_path / "killed", tmp_path / "reference"
    run_path = killed_out / "saxe-reduction"
    # Same environment (backend, flags) as this process, which runs the resume and the reference.
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxdyn.cli", "run", "saxe-reduction", *KILL_ARGS, "--out", str(killed_out),
         "--checkpoint-every", str(EVERY)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 240
    steps = []
    while time.monotonic() < deadline and proc.poll() is None:
        steps = _checkpoint_steps(run_path / "checkpoints" / "call_00")
        if steps and steps[-1] >= 2 * EVERY:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-way (rc {proc.returncode}): {err[-2000:]}"

    # What the kill left: a run marked running whose process is gone -> interrupted; no results;
    # at most `keep` complete checkpoints, each readable (no torn file), none past the end.
    left = _checkpoint_steps(run_path / "checkpoints" / "call_00")
    assert 1 <= len(left) <= 2 and 2 * EVERY <= left[-1] < 20000
    raw = json.loads((run_path / "status.json").read_text())
    # status.json is updated just after each checkpoint, so it may lag the newest by one.
    assert raw["state"] == "running" and left[-1] - EVERY <= raw["last_checkpoint"]["step"] <= left[-1]
    assert read_status(run_path)["state"] == "interrupted"
    assert not (run_path / "results.nc").exists() and not (run_path / "summary.json").exists()
    for step in left:
        arrays, manifest = read_checkpoint(run_path / "checkpoints" / "call_00" / f"step_{step:09d}.npz")
        assert manifest["step"] == step and manifest["metadata"]["config"]["duration"] == 100.0

    # Resume with the saved configuration (no config flags), in this process.
    assert cli.main(["run", "saxe-reduction", "--out", str(killed_out), "--resume", "--no-progress"]) == 0
    assert "resuming saxe-reduction" in capsys.readouterr().err
    status = json.loads((run_path / "status.json").read_text())
    assert status["state"] == "complete" and status["resumed"]["state"] == "interrupted"
    assert status["restored_from"][0]["step"] == left[-1]  # continued, not restarted
    assert not (run_path / "checkpoints").exists()  # removed once results hold everything
    assert cli.main(["run", "saxe-reduction", "--out", str(killed_out), "--resume"]) == 0
    assert "already complete" in capsys.readouterr().err

    # The uninterrupted run: one chunk, no checkpoints at all.
    assert cli.main(["run", "saxe-reduction", *KILL_ARGS, "--out", str(ref_out), "--no-checkpoint"]) == 0
    resumed, reference = _arrays(run_path), _arrays(ref_out / "saxe-reduction")
    assert set(resumed.variables) == set(reference.variables)
    for name in reference.variables:
        a, b = resumed[name].values, reference[name].values
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if a.dtype.kind in "fc":
            np.testing.assert_array_equal(a.view(f"u{a.dtype.itemsize}"), b.view(f"u{b.dtype.itemsize}"), err_msg=name)  # bitwise
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert resumed.attrs == reference.attrs
    s1 = json.loads((run_path / "summary.json").read_text())
    s2 = json.loads((ref_out / "saxe-reduction" / "summary.json").read_text())
    for s in (s1, s2):
        s.pop("elapsed_s"), s.pop("environment")
    assert s1 == s2
    print(f"kill-resume: SIGKILL once the step-{steps[-1]} checkpoint of 20000 existed, resumed from step {left[-1]}: "
          f"{len(reference.variables)} arrays bitwise identical to the uninterrupted run")


def test_sigterm_marks_the_run_interrupted_and_it_resumes(tmp_path, capsys):
    out = tmp_path / "runs"
    folder = out / "saxe-reduction" / "checkpoints" / "call_00"
    pid, done, handler_before = os.getpid(), threading.Event(), signal.getsignal(signal.SIGTERM)

    def terminate_after_second_checkpoint():
        while not done.is_set():
            steps = _checkpoint_steps(folder)
            if steps and steps[-1] >= 2 * EVERY:
                os.kill(pid, signal.SIGTERM)  # handled by the CLI's handler in the main thread
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=terminate_after_second_checkpoint, daemon=True)
    watcher.start()
    try:
        rc = cli.main(["run", "saxe-reduction", *KILL_ARGS, "--out", str(out), "--checkpoint-every", str(EVERY)])
    finally:
        done.set()
        watcher.join()
    assert rc == 130
    err = capsys.readouterr().err
    assert "interrupted (signal SIGTERM)" in err and "--resume" in err
    status = json.loads((out / "saxe-reduction" / "status.json").read_text())
    assert status["state"] == "interrupted" and "RunInterrupted" in status["error"]
    assert status["last_checkpoint"]["step"] >= EVERY and _checkpoint_steps(folder)[-1] >= 2 * EVERY
    assert signal.getsignal(signal.SIGTERM) is handler_before  # the CLI put the old handler back
    # The saved configuration must match what is given on resume.
    assert cli.main(["run", "saxe-reduction", "--quick", "--out", str(out), "--resume"]) == 2
    assert "duration 100.0 there, 4.0 here" in capsys.readouterr().err
    # (Resuming an interrupted run is the SIGKILL test's.) A second process may not run it meanwhile:
    # one holding the folder's lock refuses this one, naming it.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from jaxdyn.store import RunLock
        lock = RunLock({str(out / 'saxe-reduction')!r}); lock.acquire(); print('locked', flush=True); time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert cli.main(["run", "saxe-reduction", *KILL_ARGS, "--out", str(out), "--resume"]) == 2
        assert f"is being run by process {holder.pid} on host" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # A status left "running" by a process of another host (a shared filesystem) is refused too.
    status["state"], status["host"] = "running", "another-host"
    (out / "saxe-reduction" / "status.json").write_text(json.dumps(status))
    assert cli.main(["run", "saxe-reduction", *KILL_ARGS, "--out", str(out), "--resume"]) == 2
    assert "is marked running by process" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The engine with a Checkpointer: torn writes, corrupt files, mismatched runs, several calls.
# ---------------------------------------------------------------------------------------------


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nn.Dropout(0.2, deterministic=not train)(nn.tanh(nn.Dense(5)(x)))
        return nn.Dense(1)(h)[:, 0]


def _task():
    def init(key):
        x = jax.random.normal(key, (16, 3))
        return {"x": x, "y": jnp.cos(x[:, 0])}

    def batch(data, key, step):
        idx = jax.random.choice(key, 16, (4,), replace=False)
        return {"x": data["x"][idx], "y": data["y"][idx]}

    return Task(init, batch)


def _train(num_steps=40, **kw):
    # adam: an optimizer state with a step count and moments, all of which must round-trip.
    args = dict(seeds=[3, 4, 5], num_steps=num_steps, loss=losses.mean_squared_error, record_every=5,
                observables={"loss": observables.batch_loss(losses.mean_squared_error)},
                hparams={"lr": np.array([0.01, 0.02, 0.05], np.float32)})
    args.update(kw)
    return train(Net(), _task(), adam, **args)


def adam(h):
    return optax.adam(h["lr"])


def _same(a, b):
    for x, y in zip(jax.tree_util.tree_leaves((a.params, a.opt_state, a.records, a.diverged_at)),
                    jax.tree_util.tree_leaves((b.params, b.opt_state, b.records, b.diverged_at))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def uninterrupted():
    return _train()


def _corrupt_array_keeping_the_zip_valid(path, arrays, name):
    """Flips one byte of array ``name``'s data and rewrites the zip around it, so every zip-level
    CRC is right and only the checkpoint's own per-array checksum can notice."""
    import zipfile

    target = arrays[name].tobytes()
    with zipfile.ZipFile(path) as z:
        members = {info.filename: z.read(info.filename) for info in z.infolist()}
    hits = [k for k, v in members.items() if target in v]
    assert len(hits) == 1, hits
    payload = bytearray(members[hits[0]])
    at = payload.find(target)
    payload[at + 3] ^= 0xFF
    members[hits[0]] = bytes(payload)
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)


def test_torn_and_corrupt_checkpoints_never_break_a_resume(tmp_path, uninterrupted, monkeypatch):
    _train(checkpoint=Checkpointer(tmp_path, every=10))
    folder = tmp_path / "call_00"
    assert _checkpoint_steps(folder) == [30, 40]  # keep=2
    newest, previous = folder / "step_000000040.npz", folder / "step_000000030.npz"
    before = newest.read_bytes()

    # A crash half-way through rewriting the newest checkpoint (as if killed inside np.savez).
    import jaxdyn.engine.checkpoint as cp

    def torn_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("killed mid-write")

    monkeypatch.setattr(cp.np, "savez", torn_savez)
    with pytest.raises(OSError, match="killed mid-write"):
        write_checkpoint(newest, {"a": np.ones(3)}, {"step": 40})
    monkeypatch.undo()
    assert newest.read_bytes() == before  # the old file, untouched
    assert not list(folder.glob(".*.tmp"))  # the temporary file was removed

    # Resuming from the final checkpoint: nothing left to run, the same results bitwise.
    ck = Checkpointer(tmp_path, every=10, resume=True)
    _same(_train(checkpoint=ck), uninterrupted)
    assert [r["step"] for r in ck.restored] == [40]

    # One flipped byte in the newest, inside a valid zip: refused by the array's own checksum
    # (the zip layer cannot see it), and the one before is used instead.
    arrays, _ = read_checkpoint(newest)
    _corrupt_array_keeping_the_zip_valid(newest, arrays, "state.learner.params['Dense_0']['kernel']")
    with pytest.raises(CheckpointError, match=r"step_000000040.npz: array .*kernel.* fails its checksum"):
        read_checkpoint(newest)
    ck = Checkpointer(tmp_path, every=10, resume=True)
    with pytest.warns(UserWarning, match="step_000000040.npz"):
        resumed = _train(checkpoint=ck)
    assert [r["step"] for r in ck.restored] == [30]
    _same(resumed, uninterrupted)

    # A readable checkpoint of another run as the newest: skipped like an unreadable one, saying
    # which, in favour of the older good one.
    other = tmp_path / "other"
    _train(seeds=[5, 6, 7], checkpoint=Checkpointer(other, every=10))
    shutil.copy(other / "call_00" / "step_000000040.npz", newest)
    ck = Checkpointer(tmp_path, every=10, resume=True)
    with pytest.warns(UserWarning, match="skipping a checkpoint of another run: .*step_000000040.npz: seeds"):
        resumed = _train(checkpoint=ck)
    assert [r["step"] for r in ck.restored] == [30]
    _same(resumed, uninterrupted)

    # A truncated file names itself.
    previous.write_bytes(previous.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match=r"step_000000030.npz: unreadable"):
        read_checkpoint(previous)


def test_several_train_calls_stop_and_resume_in_order(tmp_path, uninterrupted):
    """An experiment that trains twice, stopped in its second call after the step-10 checkpoint."""

    def experiment(ck):
        return _train(checkpoint=ck), _train(checkpoint=ck)

    def stop(info):
        if info["call"] == 1 and info["step"] == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        experiment(Checkpointer(tmp_path, every=10, on_save=stop))
    ck = Checkpointer(tmp_path, every=10, resume=True)
    first, second = experiment(ck)
    # The finished first call is restored at its end (nothing recomputed); the second resumes.
    assert [(r["call"], r["step"]) for r in ck.restored] == [(0, 40), (1, 10)]
    _same(first, uninterrupted)
    _same(second, uninterrupted)

    # A checkpoint from a different run is refused, naming what differs (before compiling).
    with pytest.raises(CheckpointError, match="num_steps 40 there, 50 here"):
        _train(num_steps=50, checkpoint=Checkpointer(tmp_path, resume=True))
    with pytest.raises(CheckpointError, match="seeds"):
        train(Net(), _task(), lambda h: optax.adam(h["lr"]), seeds=[7, 8, 9], num_steps=40, loss=losses.mean_squared_error,
              observables={"loss": observables.batch_loss(losses.mean_squared_error)}, record_every=5,
              hparams={"lr": np.array([0.01, 0.02, 0.05], np.float32)}, checkpoint=Checkpointer(tmp_path, every=10, resume=True))
    with pytest.raises(CheckpointError, match=r"hparams\['lr'\]"):
        _train(hparams={"lr": np.array([0.01, 0.02, 0.06], np.float32)}, checkpoint=Checkpointer(tmp_path, every=10, resume=True))
