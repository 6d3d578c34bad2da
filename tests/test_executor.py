"""The Ray executor on a real local Ray cluster (two worker processes), against one process.

Members are independent and draw every random number from their own seed, so chunks of
members trained in separate processes and concatenated must equal one train call: the data
order (integers), the divergence flags and the floats exactly: chunks hold whole blocks of members,
computed at the block width of one process (tests/test_determinism.py covers devices and widths).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr

from jaxdyn import experiments
from jaxdyn.cli import main
from jaxdyn.engine import Checkpointer, CheckpointError, EngineConfigError, LocalExecutor, RayExecutor, ResourceError, losses, train
from jaxdyn.store import run

sys.path.insert(0, os.path.dirname(__file__))
from test_engine import OBS, TinyNet, _task  # noqa: E402

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SEEDS = [3, 1, 4, 7]
LR = np.array([0.05, 0.1, 1e6, 0.2], np.float32)  # member 2 diverges: a flag, not a failure


def _run(executor=None, **kw):
    """The reference call, in this process or through ``executor.train`` (the layer above train)."""
    # Blocks of one member, so chunks of any size are whole blocks (tests/test_determinism.py
    # covers the rounding of chunks up to wider blocks).
    args = dict(seeds=SEEDS, num_steps=20, loss=losses.mean_squared_error, observables=OBS, record_every=5,
                hparams={"lr": LR}, chunk_steps=10, block_width=1)
    args.update(kw)
    return (train if executor is None else executor.train)(TinyNet(), _task(), optax_sgd, **args)


def optax_sgd(h):
    return optax.sgd(h["lr"])


def _max_diff(a, b) -> float:
    """Largest |a - b| over records, final parameters and optimizer states (NaN = NaN)."""
    worst = 0.0
    pairs = [(a.records[k], b.records[k]) for k in a.records]
    pairs += list(zip(jax.tree_util.tree_leaves((a.params, a.opt_state)), jax.tree_util.tree_leaves((b.params, b.opt_state))))
    for x, y in pairs:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert x.shape == y.shape
        np.testing.assert_array_equal(np.isfinite(x), np.isfinite(y))
        fin = np.isfinite(x)
        if fin.any():
            worst = max(worst, float(np.max(np.abs(x[fin] - y[fin]))))
    return worst


def _assert_same(ref, got, what):
    assert got.records.keys() == ref.records.keys()
    np.testing.assert_array_equal(got.record_steps, ref.record_steps)
    np.testing.assert_array_equal(got.diverged_at, ref.diverged_at)
    np.testing.assert_array_equal(got.seeds, ref.seeds)
    np.testing.assert_array_equal(got.records["first_index"], ref.records["first_index"])  # same data order
    diff = _max_diff(ref, got)
    print(f"{what}: largest difference vs one process {diff:.3g}")
    assert diff == 0.0, diff  # bitwise: members are computed in blocks of one width everywhere
    # The gathered state holds exactly the members (no padding), ready to resume from.
    assert got.state.step == 20 and got.state.keys.shape == (len(SEEDS), 2)
    assert got.state.diverged_at.shape == (len(SEEDS),)


@pytest.fixture(scope="module")
def reference():
    return _run()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "os.fork() was called" by Ray's process launcher
        # Two worker processes. The workers import this test module (TinyNet is pickled by name).
        env = {"PYTHONPATH": os.pathsep.join(p for p in (TESTS_DIR, os.environ.get("PYTHONPATH")) if p)}
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 2**20,
                 runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


def _flaky_loss(marker):
    """The engine's loss, except that the first attempt anywhere fails: the loss runs when a worker
    traces it, the first one creates ``marker`` and raises (as a worker lost mid-chunk would
    fail its task); every later attempt finds the marker and succeeds."""

    def loss(outputs, batch):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return losses.mean_squared_error(outputs, batch)
        raise RuntimeError("injected failure")

    return loss


def test_chunks_on_ray_equal_one_process_retry_and_resume(ray_cluster, reference, tmp_path):
    assert reference.diverged_at[2] >= 0 and (np.delete(reference.diverged_at, 2) == -1).all()
    marker = str(tmp_path / "failed_once")
    executor = RayExecutor(chunk_seeds=2, max_retries=1)
    saved = []
    got = _run(executor=executor, loss=_flaky_loss(marker), checkpoint=Checkpointer(tmp_path / "ck", on_save=saved.append))
    assert os.path.exists(marker)  # one task's first attempt failed; Ray ran it again
    assert executor.last_run["chunks"] == [(0, 2), (2, 4)] and sorted(executor.last_run["submitted"]) == [0, 1]
    _assert_same(reference, got, "Ray, 2 tasks of 2 members, one retried")
    # The driver stored each finished chunk, atomically, as an engine checkpoint of its call.
    assert sorted((s["chunk"], s["members"], s["step"]) for s in saved) == [(0, [0, 2], 20), (1, [2, 4], 20)]
    call_dir = tmp_path / "ck" / "call_00"
    assert sorted(p.name for p in call_dir.iterdir()) == ["chunk_000000-000002", "chunk_000002-000004"]

    # Resume after losing chunk 1: chunk 0 is read back (no task), only chunk 1 runs again.
    shutil.rmtree(call_dir / "chunk_000002-000004")
    resumed_ckpt = Checkpointer(tmp_path / "ck", resume=True)
    again = _run(executor=executor, checkpoint=resumed_ckpt)
    assert executor.last_run["restored"] == [0] and executor.last_run["submitted"] == [1]
    assert [(r["chunk"], r["step"]) for r in resumed_ckpt.restored] == [(0, 20)]
    _assert_same(reference, again, "Ray, resumed")

    # A stored chunk of other members is refused, not mixed in.
    with pytest.raises(CheckpointError, match="seeds"):
        _run(seeds=[3, 2, 4, 7], executor=executor, checkpoint=Checkpointer(tmp_path / "ck", resume=True))


def test_a_task_that_fails_beyond_its_retries_names_its_chunk(ray_cluster, tmp_path):
    with pytest.raises(RuntimeError, match="injected failure") as info:  # fails while tracing: nothing compiles
        _run(seeds=SEEDS[:2], hparams={"lr": LR[:2]}, loss=_flaky_loss(str(tmp_path / "marker")),
             executor=RayExecutor(chunk_seeds=2, max_retries=0))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "jaxdyn: raised by the executor's chunk 0 (members 0 to 1), after 0 retries" in notes


def test_the_memory_guard_on_a_worker_raises_its_resource_error_once(ray_cluster, tmp_path):
    attempts = tmp_path / "attempts"

    def huge(snap):  # 400 GB per record: the worker's memory guard refuses it while tracing
        with open(attempts, "a") as f:
            f.write("traced\n")
        return jnp.zeros((10**6, 10**5), jnp.float32)

    with pytest.raises(ResourceError, match="memory: this run needs") as info:
        _run(seeds=SEEDS[:2], hparams={"lr": LR[:2]}, observables={"huge": huge}, executor=RayExecutor(chunk_seeds=2, max_retries=2))
    assert info.value.estimate.observables["huge"] == 4 * 10**11  # the estimate came back with it
    assert "not retried" in "\n".join(info.value.__notes__)
    assert attempts.read_text().count("traced") == 1  # deterministic: not retried


def test_what_does_not_pickle_is_named_before_any_task(ray_cluster):
    lock = threading.Lock()
    bad = {"loss": OBS["loss"], "locked": lambda s: (lock, s.step)[1]}
    with pytest.raises(EngineConfigError, match=r"observables\['locked'\]: cannot be sent to the Ray workers"):
        _run(observables=bad, executor=RayExecutor(chunk_seeds=2))


def test_experiment_on_ray_through_the_cli_equals_one_process(ray_cluster, tmp_path, capsys):
    name = "saxe-reduction"
    config = experiments.get(name).config.quick()  # 4 members -> 2 tasks of 2
    single, _, _ = run(name, config, out=None, block_width=1)
    code = main(["run", name, "--quick", "--executor", "ray", "--chunk-seeds", "2", "--block-width", "1", "--out", str(tmp_path),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    status = json.loads((tmp_path / name / "status.json").read_text())
    assert status["state"] == "complete" and status["executor"]["kind"] == "ray" and status["executor"]["chunk_seeds"] == 2
    ds = xr.load_dataset(tmp_path / name / "results.nc")
    assert set(ds.data_vars) == set(single.dataset.data_vars)
    worst = 0.0
    for var in single.dataset.data_vars:
        a, b = single.dataset[var].values, ds[var].values
        if np.issubdtype(a.dtype, np.number):
            np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
            worst = max(worst, float(np.nanmax(np.abs(a.astype(float) - b.astype(float)), initial=0.0)))
        else:
            np.testing.assert_array_equal(a, b)
    print(f"{name} on Ray vs one process: largest difference {worst:.3g}")
    assert worst == 0.0
    # Ray was already running (this fixture's): the CLI used it and left it up.
    assert ray_cluster.is_initialized()


def test_local_executor_chunks_equal_one_call(reference):
    executor = LocalExecutor(chunk_seeds=3)  # chunks of 3 and 1 members, one after the other
    got = _run(executor=executor)
    assert executor.last_run["chunks"] == [(0, 3), (3, 4)]
    _assert_same(reference, got, "local chunks")


@pytest.mark.parametrize("kw, field", [
    (dict(on_chunk=lambda s, r: None), "on_chunk"),
    (dict(devices=jax.devices()), "devices"),
])
def test_bad_executor_arguments_are_rejected_before_anything_runs(kw, field):
    with pytest.raises(EngineConfigError, match=field):
        _run(executor=RayExecutor(chunk_seeds=2), **kw)


def test_the_executor_is_a_layer_above_train_not_an_argument():
    with pytest.raises(EngineConfigError, match=r"executor: .*executor\.train"):
        train(TinyNet(), _task(), optax_sgd, seeds=SEEDS, num_steps=5, loss=losses.mean_squared_error,
              executor=RayExecutor(chunk_seeds=2))


@pytest.mark.parametrize("kw, field", [(dict(chunk_seeds=0), "chunk_seeds"), (dict(max_retries=-1), "max_retries"),
                                       (dict(num_gpus_per_task=-1), "num_gpus_per_task"), (dict(address=""), "address")])
def test_bad_executor_options(kw, field):
    with pytest.raises(EngineConfigError, match=field):
        RayExecutor(**kw)


NO_RAY = textwrap.dedent(
    """
    import sys
    sys.modules["ray"] = None  # as if ray were not installed: `import ray` raises ImportError
    import jaxdyn, jaxdyn.engine.executor
    from jaxdyn.cli import main
    code = main(["run", "saxe-reduction", "--quick", "--executor", "ray", "--out", {out!r}])
    print("exit", code)
    """
)


def test_without_ray_jaxdyn_imports_and_the_cli_says_what_to_install(tmp_path):
    out = subprocess.run([sys.executable, "-c", NO_RAY.format(out=str(tmp_path))], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("exit 2")
    lines = [line for line in out.stderr.splitlines() if line.startswith("jaxdyn:")]
    assert lines == ["jaxdyn: error: executor: the Ray executor needs ray, which is not installed; pip install 'jaxdyn[cluster]'"]
    assert not (tmp_path / "saxe-reduction").exists()  # nothing started


@pytest.mark.parametrize("args, field", [(["--chunk-seeds", "0"], "--chunk-seeds"), (["--address", "auto"], "--address"),
                                         (["--gpus-per-task", "1"], "--gpus-per-task"),
                                         (["--executor", "ray", "--gpus-per-task", "-1"], "--gpus-per-task")])
def test_bad_executor_flags_are_one_line_exit_2(args, field, tmp_path, capsys):
    assert main(["run", "saxe-reduction", "--quick", "--out", str(tmp_path), *args]) == 2
    assert f"error: {field}" in capsys.readouterr().err
