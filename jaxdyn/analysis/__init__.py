"""Analyses of recorded training: fits, PCA, spectra, kernels, information.

Each analysis is a submodule, imported on first use (``jaxdyn.analysis.response`` or ``from
jaxdyn.analysis import spectra``), so importing one does not import the others' libraries.
"""

from __future__ import annotations

import importlib

SUBMODULES = ("collapse", "elasticity", "information", "layers", "lld", "pca", "response", "spectra")
"""The analysis submodules, by name."""

__all__ = ["collapse", "elasticity", "information", "layers", "lld", "pca", "response", "spectra"]


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"jaxdyn.analysis.{name}")
    raise AttributeError(f"module 'jaxdyn.analysis' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
