"""The engine's memory guard: an estimate from shapes alone, a refusal with the numbers and a
suggestion before anything compiles, and an override that runs anyway."""

import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdyn import cli
from jaxdyn.engine import EngineConfigError, Task, core, losses, train
from jaxdyn.engine.core import ResourceError


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(2)(nn.Dense(8)(x))


def _task():
    def init(key):
        x = jax.random.normal(key, (10, 4))
        return {"x": x, "y": x[:, :2]}

    return Task(init, lambda data, key, step: data)


OBS = {"pred": lambda s: s.apply(s.params, s.data["x"]), "step": lambda s: s.step}


def _train(**kw):
    args = dict(seeds=[0, 1, 2], num_steps=20, loss=losses.mean_squared_error, observables=OBS, record_every=2)
    args.update(kw)
    # sgd with momentum: an optimizer state as large as the parameters.
    return train(Linear(), _task(), optax.sgd(0.01, momentum=0.9), **args)


def test_host_memory_is_read():
    free = core.host_available_memory()
    total = int(open("/proc/meminfo").read().split("MemTotal:")[1].split()[0]) * 1024
    assert free is not None and 0 < free <= total
    assert core.device_available_memory(jax.devices()[0]) is None  # CPU: its memory is the host's


def test_refused_with_the_estimate_and_the_override_runs(monkeypatch):
    monkeypatch.setattr(core, "host_available_memory", lambda: 4096)
    # One member per block on one device, so the estimate's member count is the ensemble's (the default width
    # pads the last block, and the padding is counted: test_padding_to_a_whole_block_is_counted).
    with pytest.raises(ResourceError) as info:
        _train(chunk_steps=4, block_width=1, devices=jax.devices()[:1])
    est, message = info.value.estimate, str(info.value)
    assert message.startswith("memory: this run needs about") and "4.0 KiB" in message
    for hint in ("record_every", "fewer seeds", "chunk_steps", "--no-memory-check", "'pred'"):
        assert hint in message, hint

    result = _train(chunk_steps=4, memory_check=False, block_width=1, devices=jax.devices()[:1])  # the override
    # The estimate, from shapes alone, is exact for what it counts.
    n = 3
    # A chunk of 4 steps holds 2 records and the one at its start (a run's step-0 records come from its first chunk).
    assert est.num_members == n and est.num_records == 11 and est.chunk_records == 3
    assert est.params * n == sum(x.nbytes for x in jax.tree_util.tree_leaves(result.params))
    assert est.opt_state * n == sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(result.opt_state))
    assert est.data * n == 10 * 4 * 4 * n + 10 * 2 * 4 * n
    assert est.observables == {"pred": 10 * 2 * 4, "step": 4}
    assert n * est.num_records * est.record == sum(v.nbytes for v in result.records.values())
    # CPU: device and host are the same memory, so both count against the host.
    assert est.device_kind == "host" and est.host_bytes == n * 11 * est.record + est.device_bytes
    assert est.device_bytes == n * (3 * est.params + est.opt_state + est.data + 3 * est.record)


def test_a_device_that_reports_its_memory_is_checked_on_its_own(monkeypatch):
    monkeypatch.setattr(core, "device_available_memory", lambda device: 1000)
    with pytest.raises(ResourceError, match="of device memory but 1000 B is free") as info:
        _train()
    assert info.value.estimate.device_kind == "device"


def test_a_run_far_too_large_is_refused_at_once():
    # 64 members x 100,001 records x a 4 MB observable: 25 TiB. Refused from shapes, in seconds,
    # before any compilation (running it would exhaust memory).
    big = {"huge": lambda s: jnp.zeros((1_000_000,), jnp.float32) + s.step}
    start = time.perf_counter()
    with pytest.raises(ResourceError, match=r"records 23\.3 TiB = 64 members x 100001 records x 3\.8 MiB"):
        _train(seeds=list(range(64)), num_steps=100_000, record_every=1, observables=big, block_width=1)
    assert time.perf_counter() - start < 30


def test_padding_to_a_whole_block_is_counted(monkeypatch):
    # Three members in blocks of 8: the program holds 8 members' state and records.
    monkeypatch.setattr(core, "host_available_memory", lambda: 4096)
    with pytest.raises(ResourceError) as info:
        _train(chunk_steps=4, block_width=8)
    assert info.value.estimate.num_members == 8 and "8 members" in str(info.value)


def test_cli_reports_the_refusal_on_one_line_and_no_memory_check_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(core, "host_available_memory", lambda: 2048)
    args = ["run", "saxe-reduction", "--quick", "--no-progress", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # The run's own lines (what it is doing), then the refusal on one line, last.
    assert all(line.startswith("jaxdyn: ") and line.endswith(("...", "/")) for line in err[:-1]), err
    assert err[-1].startswith("jaxdyn: error: memory: this run needs about")
    status = json.loads((tmp_path / "saxe-reduction" / "status.json").read_text())
    assert status["state"] == "failed" and "ResourceError" in status["error"]
    assert cli.main(args + ["--no-memory-check"]) == 0


def test_seed_distinctness_is_checked_without_hashing_every_seed():
    # The check that took 44 s at 10**7 seeds (np.unique) is a sort; still exact.
    from jaxdyn.engine import member_keys

    seeds = np.random.default_rng(0).permutation(10**6)
    keys, back = member_keys(seeds)
    assert keys.shape == (10**6, 2) and (back == seeds).all()
    seeds[17] = seeds[900_000]
    with pytest.raises(EngineConfigError, match="seeds must be distinct"):
        member_keys(seeds)
