"""Crash-safe checkpoints of :func:`jaxdyn.engine.train`, written between chunks.

A :class:`Checkpointer` is passed to ``train(..., checkpoint=...)``. After every chunk (or every
``every`` steps) ``train`` hands it the whole ensemble state (parameters, optimizer states, data,
PRNG keys, hyperparameters, divergence flags) and the records so far, for every member; with
``resume=True`` a later ``train`` call with the same arguments restores the newest checkpoint
and continues, bitwise identical to a run that was never interrupted.

One folder per ``train`` call. An experiment may call ``train`` several times; the k-th call
made with a Checkpointer uses ``call_{k:02d}/``, so on resume calls that had finished restore
their final checkpoint at once and the first unfinished call continues from its last one.
Each checkpoint's manifest holds a fingerprint (steps, record interval, members, observable
names) and every array's shape, dtype and CRC-32; a checkpoint that does not match the call that
reads it is refused with :class:`CheckpointError` rather than silently mixed in.

File format (``jaxdyn-checkpoint/1``): one ``step_{step:09d}.npz`` per checkpoint (numpy's
zip of ``.npy`` files, read with ``allow_pickle=False``). Every array is stored as its raw bytes
(``uint8``), so any dtype (bfloat16, bool, PRNG key data) round-trips bitwise; ``__manifest__``
holds the JSON manifest as UTF-8 bytes.

Atomicity: a checkpoint is written to a hidden temporary file in the same folder, flushed and
``fsync``-ed, then ``os.replace``-d onto its name and the folder is ``fsync``-ed. A process
killed at any moment (SIGKILL included) leaves the previous checkpoint, or the new one, complete;
a stray temporary file is ignored and removed by the next writer. The last ``keep`` checkpoints
are kept, older ones are deleted only after a newer one is in place, and a checkpoint that
fails its checksums on reading is skipped (with a warning) in favour of the one before.

Why not orbax: orbax-checkpoint (installed with flax) refuses zero-size arrays ("Cannot save
arrays with zero size"), which optimizer states and records can contain, costs about 2 s to
import, and writes a directory tree per step; this format is one file per checkpoint with the
same temp-then-rename atomicity plus an fsync and per-array checksums.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxdyn.faults import kill_point

FORMAT = "jaxdyn-checkpoint/1"
"""The format tag :func:`write_checkpoint` puts in every manifest (``"format"``); a file with any
other tag is refused with :class:`CheckpointError` when read."""
_NAME = re.compile(r"^step_(\d{9})\.npz$")
_TARGET_CHECKPOINTS = 10  # checkpoints per train call when ``every`` is not given


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, corrupt, or written by a different run."""


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_checkpoint(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any]) -> None:
    """Atomically writes one checkpoint file.

    Args:
        path: the ``.npz`` file to create or replace.
        arrays: ``{name: array}``, any shapes and dtypes (stored as raw bytes).
        manifest: JSON-serialisable metadata; the per-array ``dtype``, ``shape`` and ``crc32``
            are added under ``"arrays"``, and ``"format"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, np.ndarray] = {}
    entries: dict[str, Any] = {}
    for i, (name, value) in enumerate(arrays.items()):
        value = np.ascontiguousarray(np.asarray(value))
        raw = value.reshape(-1).view(np.uint8) if value.size else np.zeros(0, np.uint8)
        key = f"a{i:05d}"
        payload[key] = raw
        entries[name] = {"key": key, "dtype": value.dtype.name, "shape": list(value.shape), "crc32": zlib.crc32(raw.data)}
    meta = dict(manifest)
    meta["format"] = FORMAT
    meta["arrays"] = entries
    payload["__manifest__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        kill_point("checkpoint-write")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    kill_point("checkpoint-saved")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reads and verifies one checkpoint file.

    Returns:
        (``{name: array}`` with their saved dtypes and shapes, the manifest).

    Raises:
        CheckpointError: naming the file, when it is truncated, corrupt (checksum), of another
            format, or not a checkpoint.
    """
    import jax.numpy as jnp  # dtype names such as bfloat16 resolve through jax's ml_dtypes

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["__manifest__"]).decode("utf-8"))
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not a {FORMAT} file (format {meta.get('format')!r})")
            arrays = {}
            for name, entry in meta["arrays"].items():
                raw = z[entry["key"]]
                if zlib.crc32(raw.data) != entry["crc32"]:
                    raise CheckpointError(f"{path}: array {name!r} fails its checksum (corrupt file)")
                dtype = jnp.dtype(entry["dtype"])
                arrays[name] = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(entry["shape"])
    except CheckpointError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    return arrays, meta


def _flatten(tree: Any) -> tuple[list[str], list[Any]]:
    paths_leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(p) for p, _ in paths_leaves], [leaf for _, leaf in paths_leaves]


class CallCheckpoints:
    """The checkpoints of one ``train`` call (folder ``call_NN/``). Made by :meth:`Checkpointer.for_call`."""

    def __init__(self, owner: Checkpointer, index: int, fingerprint: Mapping[str, Any]):
        self.owner = owner
        self.index = index
        self.directory = owner.directory / f"call_{index:02d}"
        self.fingerprint = dict(fingerprint)
        self.last_saved_step: int | None = None
        for stray in self.directory.glob(".step_*.tmp"):  # left by a process killed mid-write
            with contextlib.suppress(FileNotFoundError):
                stray.unlink()
        if not owner.resume:
            self.clear()

    def steps(self) -> list[int]:
        """Steps of the checkpoints on disk, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))

    def path(self, step: int) -> Path:
        """The file of the checkpoint of ``step``: ``call_NN/step_<step, 9 digits>.npz`` (it may not exist)."""
        return self.directory / f"step_{step:09d}.npz"

    def clear(self) -> None:
        """Deletes every checkpoint of this call on disk (done on creation unless the run resumes)."""
        for step in self.steps():
            with contextlib.suppress(FileNotFoundError):
                self.path(step).unlink()

    def save(self, step: int, state: Any, records: Mapping[str, np.ndarray]) -> Path:
        """Writes the checkpoint of ``step``: every leaf of ``state`` and every record, then
        deletes all but the newest ``keep`` checkpoints. ``state`` and ``records`` are host arrays."""
        names, leaves = _flatten(state)
        arrays = {f"state{n}": leaf for n, leaf in zip(names, leaves)}
        arrays.update({f"records/{k}": v for k, v in records.items()})
        manifest = {"step": int(step), "call": self.index, "fingerprint": self.fingerprint,
                    "metadata": self.owner.metadata, "written": time.time()}
        path = self.path(step)
        write_checkpoint(path, arrays, manifest)
        self.last_saved_step = int(step)
        for old in self.steps()[: -self.owner.keep]:
            with contextlib.suppress(FileNotFoundError):
                self.path(old).unlink()
        if self.owner.on_save is not None:
            self.owner.on_save({"call": self.index, "step": int(step), "num_steps": self.fingerprint.get("num_steps"),
                                "path": str(path), "time": time.time()})
        return path

    def restore(self, target_state: Any, target_records: Mapping[str, jax.ShapeDtypeStruct],
                every: Mapping[str, int], check: Callable[[Path, Any], None] | None = None
                ) -> tuple[int, Any, dict[str, np.ndarray]] | None:
        """The newest usable checkpoint, or None when there is none (start afresh).

        A checkpoint that cannot be read (truncated, corrupt) and one written by a different run
        (fingerprint, array names, shapes or dtypes, or ``check``) are treated alike: skipped,
        with a warning saying which and why, in favour of an older one.

        Args:
            target_state: a pytree of ``jax.ShapeDtypeStruct`` (or arrays) with the structure,
                shapes and dtypes the state must have.
            target_records: ``{name: ShapeDtypeStruct}`` of one record of all members,
                (seed, ...); the saved records are (seed, time, ...).
            every: ``{name: steps between records}``, which gives each record's time length at
                the checkpoint's step.
            check: ``check(path, state)`` raising :class:`CheckpointError` when the restored
                state belongs to another run (other seeds, hyperparameters, data).

        Returns:
            (step, state as ``target_state``'s structure with numpy leaves, records).

        Raises:
            CheckpointError: no checkpoint is usable and at least one was written by a different
                run (its reason): resuming would silently start over beside another run's files.
        """
        foreign = None
        for step in reversed(self.steps()):
            path = self.path(step)
            try:
                arrays, meta = read_checkpoint(path)
            except CheckpointError as exc:
                warnings.warn(f"skipping a checkpoint that cannot be read: {exc}", stacklevel=2)
                continue
            try:
                found = self._match(path, arrays, meta, target_state, target_records, every)
                if check is not None:
                    check(path, found[1])
            except CheckpointError as exc:
                warnings.warn(f"skipping a checkpoint of another run: {exc}", stacklevel=2)
                foreign = foreign or exc
                continue
            self.owner.restored.append({"call": self.index, "step": found[0], "path": str(path)})
            return found
        if foreign is not None:
            raise foreign
        return None

    def _match(self, path, arrays, meta, target_state, target_records, every):
        saved_fp = meta.get("fingerprint", {})
        diffs = [f"{k} {saved_fp.get(k)!r} there, {v!r} here" for k, v in self.fingerprint.items() if saved_fp.get(k) != v]
        if diffs:
            raise CheckpointError(f"{path}: written by a different run ({'; '.join(diffs)}); "
                                  "start afresh (without --resume) or use another output folder")
        names, leaves = _flatten(target_state)
        _, treedef = jax.tree_util.tree_flatten(target_state)
        restored = []
        for name, want in zip(names, leaves):
            key = f"state{name}"
            if key not in arrays:
                raise CheckpointError(f"{path}: has no array for state{name}: written by a different model or optimizer")
            got = arrays[key]
            if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
                raise CheckpointError(f"{path}: state{name} is {got.dtype}{list(got.shape)} there, "
                                      f"{np.dtype(want.dtype)}{list(want.shape)} here: written by a different model or ensemble")
            restored.append(got)
        step = int(meta["step"])
        records = {}
        for name, want in target_records.items():
            got = arrays.get(f"records/{name}")
            shape = (want.shape[0], step // int(every[name]) + 1, *want.shape[1:])
            if got is None or tuple(got.shape) != shape or got.dtype != want.dtype:
                found = None if got is None else f"{got.dtype}{list(got.shape)}"
                raise CheckpointError(f"{path}: record {name!r} is {found} there, {np.dtype(want.dtype)}{list(shape)} expected")
            records[name] = got
        return step, jax.tree_util.tree_unflatten(treedef, restored), records


class Checkpointer:
    """Where and how often :func:`~jaxdyn.engine.train` writes checkpoints, and whether it resumes.

    Pass the same Checkpointer to every ``train`` call of one run (experiments forward it with
    their other ``train_options``); it numbers the calls in order.

    Args:
        directory: folder of the checkpoints (a run directory's ``checkpoints/``).
        every: steps between checkpoints, rounded up to a multiple of ``record_every``; this is
            also the chunk size (results do not depend on it). Default: about 10 checkpoints per
            ``train`` call, chosen to divide the run evenly where possible (one compilation).
        resume: restore each call's newest checkpoint, if any, and continue from it. Without it,
            existing checkpoints of a call are deleted when the call starts.
        keep: checkpoints kept per call (at least 1; 2 leaves a fallback if the newest is damaged).
        metadata: JSON-serialisable data stored in every manifest (e.g. the experiment config).
        on_save: called with ``{"call", "step", "num_steps", "path", "time"}`` after each save.
    """

    def __init__(self, directory: str | os.PathLike, *, every: int | None = None, resume: bool = False, keep: int = 2,
                 metadata: Mapping[str, Any] | None = None, on_save: Callable[[dict[str, Any]], None] | None = None):
        if every is not None and (not isinstance(every, (int, np.integer)) or isinstance(every, bool) or every < 1):
            raise CheckpointError(f"every: expected a positive number of steps, got {every!r}")
        if not isinstance(keep, (int, np.integer)) or keep < 1:
            raise CheckpointError(f"keep: expected a positive int, got {keep!r}")
        self.directory = Path(directory)
        self.every = None if every is None else int(every)
        self.resume = bool(resume)
        self.keep = int(keep)
        self.metadata = dict(metadata or {})
        self.on_save = on_save
        self.calls = 0
        self.restored: list[dict[str, Any]] = []  # {"call", "step", "path"} of each checkpoint resumed from

    def chunk_steps(self, num_steps: int, record_every: int, chunk_steps: int | None) -> int:
        """The chunk size train uses under this checkpointer (a multiple of ``record_every``)."""
        total = num_steps // record_every
        if self.every is not None:
            records = max(1, math.ceil(self.every / record_every))
        else:
            # Prefer a divisor of the record count (no remainder chunk: one compilation).
            divisors = [d for d in range(1, total + 1) if total % d == 0 and 4 <= total // d <= 40]
            records = min(divisors, key=lambda d: abs(total // d - _TARGET_CHECKPOINTS)) if divisors else max(1, math.ceil(total / _TARGET_CHECKPOINTS))
        steps = min(records, total) * record_every
        return steps if chunk_steps is None else min(steps, int(chunk_steps))

    def for_call(self, fingerprint: Mapping[str, Any]) -> CallCheckpoints:
        """The checkpoints of the next ``train`` call (called by train)."""
        call = CallCheckpoints(self, self.calls, fingerprint)
        self.calls += 1
        return call

    def latest(self) -> dict[str, Any] | None:
        """``{"call", "step", "path"}`` of the newest checkpoint on disk, or None."""
        best = None
        for folder in sorted(self.directory.glob("call_*")):
            steps = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name)))
            if steps:
                best = {"call": int(folder.name.split("_")[1]), "step": steps[-1], "path": str(folder / f"step_{steps[-1]:09d}.npz")}
        return best
