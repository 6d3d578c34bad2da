"""Suite-wide settings: one XLA compilation cache for the session, compiled programs released
after each module, and the slow tier (``--run-slow``).

The suite runs on two cores in CI within its time budget by compiling each program once: the
persistent cache below is shared by the test processes (pytest-xdist workers) and every
subprocess a test starts (the CLI, the kill harness, the notebooks' kernels), which would
otherwise recompile the programs the in-process tests already built. A cached executable is the
same binary, so results do not change.
"""

import gc
import os
import shutil
import sys
import tempfile

import pytest

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_CREATED_CACHE = None
if not os.environ.get(_CACHE_ENV):
    # Set before any test module imports JAX; the xdist workers and subprocesses inherit it.
    _CREATED_CACHE = os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="jaxdyn-tests-xla-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
if "jax" in sys.modules:  # a plugin imported JAX before this file: its flags were read already
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# Modules that run what other modules compile go last, so that they find it in the cache.
_LAST = ("test_notebooks.py",)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true",
                     help="also run the slow tier (tests marked slow: paper-size checks and repeats of what faster tests cover)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the slow tier, run with --run-slow (README: Tests)")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name in _LAST)  # stable: the order within each group is kept
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow tier: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config):
    if _CREATED_CACHE and not hasattr(config, "workerinput"):  # the process that made it
        shutil.rmtree(_CREATED_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, JAX's compiled programs are released from memory.

    The suite compiles hundreds of distinct programs; XLA:CPU maps each executable's code into
    memory, and with every program kept in one process its memory maps grew toward the limit a
    default Linux allows (vm.max_map_count 65,530: 37,647 maps a third of the way through the
    suite), where a late module crashed with a segmentation fault. A program needed again is read
    back from the compilation cache."""
    yield
    if "jax" in sys.modules:
        import jax

        jax.clear_caches()
    gc.collect()
