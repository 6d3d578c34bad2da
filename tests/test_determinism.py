"""Bitwise-identical members whatever the device count, the ensemble's width or the chunking.

The engine computes members in blocks of a fixed width (member i always at position i mod B of a
program of width B); devices and executor chunks receive whole blocks. So a member's results
depend on its seed, the configuration, the block width and the versions only.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from jaxdyn.engine import Checkpointer, LocalExecutor, losses, train

sys.path.insert(0, os.path.dirname(__file__))
from test_engine import OBS, TinyNet, _task  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = list(range(10, 20))
BLOCK = 2


def sgd(h):
    import optax

    return optax.sgd(h["lr"])


def _train(seeds=SEEDS, **kw):
    args = dict(num_steps=30, loss=losses.mean_squared_error, observables=OBS, record_every=5, block_width=BLOCK,
                hparams={"lr": np.linspace(0.05, 0.3, len(seeds)).astype(np.float32)})
    args.update(kw)
    return train(TinyNet(), _task(), sgd, seeds=seeds, **args)


def _assert_bitwise(a, b, rows=None, what=""):
    rows = slice(None) if rows is None else rows
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k][rows], err_msg=f"{what}: {k}")
    import jax

    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(x, y[rows], err_msg=what)
    np.testing.assert_array_equal(a.diverged_at, b.diverged_at[rows])


@pytest.fixture(scope="module")
def reference():
    return _train()


def test_the_first_members_of_a_wider_ensemble_are_the_same_members(reference):
    for n in (1, 3, 4, 7):  # partial blocks, whole blocks
        _assert_bitwise(_train(SEEDS[:n], hparams={"lr": np.linspace(0.05, 0.3, len(SEEDS)).astype(np.float32)[:n]}),
                        reference, rows=slice(0, n), what=f"first {n} of {len(SEEDS)}")


def test_local_executor_chunks_of_1_3_and_n_equal_one_call(reference):
    for size in (1, 3, len(SEEDS)):
        executor = LocalExecutor(chunk_seeds=size)
        got = executor.train(TinyNet(), _task(), sgd, seeds=SEEDS, num_steps=30, loss=losses.mean_squared_error,
                             observables=OBS, record_every=5, block_width=BLOCK,
                             hparams={"lr": np.linspace(0.05, 0.3, len(SEEDS)).astype(np.float32)})
        # chunk_seeds is rounded up to whole blocks of 2
        assert all((b - a) % BLOCK == 0 or b == len(SEEDS) for a, b in executor.last_run["chunks"])
        _assert_bitwise(got, reference, what=f"chunks of {size}")


SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {tests!r})
    from test_determinism import _train
    from jaxdyn.engine import Checkpointer
    import jax
    kw = {{}}
    if {ckpt!r}:
        kw["checkpoint"] = Checkpointer({ckpt!r}, every=10, resume=True)
        kw["chunk_steps"] = 10
    r = _train(**kw)
    assert len(jax.devices()) == {devices}, jax.devices()
    np.savez({out!r}, devices=r.engine["devices"], **r.records,
             **{{f"p{{i}}": x for i, x in enumerate(jax.tree_util.tree_leaves(r.params))}})
""")


def _in_process_with(devices, out, ckpt=""):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    code = SCRIPT.format(tests=os.path.dirname(__file__), out=str(out), devices=devices, ckpt=str(ckpt))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(out))


def test_one_two_and_four_devices_give_the_same_members(tmp_path):
    runs = {d: _in_process_with(d, tmp_path / f"d{d}.npz") for d in (1, 2, 4)}
    assert [int(runs[d]["devices"]) for d in (1, 2, 4)] == [1, 2, 4]  # 5 blocks: every device used
    for d in (2, 4):
        for k in runs[1]:
            if k != "devices":
                np.testing.assert_array_equal(runs[1][k], runs[d][k], err_msg=f"{d} devices: {k}")


def test_a_run_checkpointed_on_one_device_resumes_bitwise_on_two(tmp_path, reference):
    folder = tmp_path / "ck"
    # Half the run on 1 device: train 30 steps with checkpoints, then drop the last two.
    r = _train(checkpoint=Checkpointer(folder, every=10), chunk_steps=10)
    steps = sorted((folder / "call_00").glob("step_*.npz"))
    for late in steps[1:]:
        late.unlink()  # keep step 10 only: the resume starts there
    resumed = _in_process_with(2, tmp_path / "resumed.npz", ckpt=folder)
    assert int(resumed["devices"]) == 2
    for k in r.records:
        np.testing.assert_array_equal(resumed[k], reference.records[k], err_msg=k)


def test_a_checkpoint_of_another_block_width_is_refused(tmp_path):
    from jaxdyn.engine import CheckpointError

    folder = tmp_path / "ck"
    _train(checkpoint=Checkpointer(folder, every=10), chunk_steps=10)
    with pytest.raises(CheckpointError, match="block_width 2 there, 5 here"):
        _train(checkpoint=Checkpointer(folder, every=10, resume=True), chunk_steps=10, block_width=5)


def test_an_experiment_on_one_and_four_devices_is_bitwise_equal(tmp_path):
    # Through the CLI, every variable of results.nc; the block width is recorded in the run.
    outs = {}
    for devices in (1, 4):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        out = tmp_path / f"d{devices}"
        done = subprocess.run([sys.executable, "-m", "jaxdyn", "run", "saxe-reduction", "--quick", "--block-width", "1",
                               "--out", str(out), "--no-progress"], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        outs[devices] = xr.load_dataset(out / "saxe-reduction" / "results.nc")
        calls = json.loads((out / "saxe-reduction" / "status.json").read_text())["train_calls"]
        assert calls[0]["block_width"] == 1 and calls[0]["devices"] == devices
    for name in outs[1].variables:
        np.testing.assert_array_equal(outs[1][name].values, outs[4][name].values, err_msg=name)
