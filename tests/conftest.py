"""Suite-wide fixtures."""

import gc
import sys

import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, JAX's compiled programs are released.

    The suite compiles hundreds of distinct programs in one process; XLA:CPU maps each executable's
    code into memory, and with every program kept the process's memory maps grew past what a
    default Linux allows (vm.max_map_count 65,530), where a late test module crashed with a
    segmentation fault. Test modules share no compiled programs worth keeping, so each module's are
    dropped when it ends."""
    yield
    if "jax" in sys.modules:
        import jax

        jax.clear_caches()
    gc.collect()
