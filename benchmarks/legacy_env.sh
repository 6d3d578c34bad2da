#!/usr/bin/env bash
# Build the legacy environment in which neural-tangents runs, for benchmarks/bench_ntk.py.
#
#   bash benchmarks/legacy_env.sh [VENV_PATH]        (default: $NT_VENV or /work/nt-venv)
#
# Why a separate environment: neural-tangents 0.6.5 (the latest release) imports
# jax.core.Jaxpr and ad.source_info_util, both removed from JAX after 0.4.x, so it does not
# import with the JAX that jaxdyn needs. This pinned set installs from the package index alone
# and imports (checked at the end of this script). CPU only. The benchmark calls the venv's
# python on benchmarks/nt_worker.py, which imports only jax, numpy and neural_tangents.
set -euo pipefail

VENV="${1:-${NT_VENV:-/work/nt-venv}}"
PYTHON="${PYTHON:-python3}"

PINS=(
  "jax==0.4.25"
  "jaxlib==0.4.25"
  "numpy==1.26.4"
  "tensorflow==2.16.2"  # a declared dependency of neural-tangents 0.6.5 (and of its dependency tf2jax)
  "neural-tangents==0.6.5"
)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${PINS[@]}"

"$VENV/bin/python" - <<'PY'
import jax, jaxlib, numpy, neural_tangents as nt
assert callable(nt.empirical_ntk_fn)
print(f"legacy env ok: jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpy {numpy.__version__}, "
      f"neural-tangents {nt.__version__}")
PY
echo "python: $VENV/bin/python"
