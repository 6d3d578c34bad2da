"""The figure style shared by every experiment.

Theory is drawn as lines, simulation as markers (or mean and a band over seeds), in the
Okabe-Ito colour-blind-safe palette; axes carry labels with units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.lines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.6,
    "lines.markersize": 3.5,
}


def color(i: int) -> str:
    """The i-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 3.4, height: float = 2.8, **kw):
    """A figure of ``nrows x ncols`` panels of the given size each, in the jaxdyn style.

    The figure is a plain ``matplotlib.figure.Figure``, outside pyplot's global state: it needs
    no display (runs happen on headless machines), leaves the caller's backend alone (a notebook
    keeps its inline backend and shows the figure when it is returned), and is freed when dropped.

    Returns:
        (figure, axes array of shape (nrows, ncols)).
    """
    with plt.rc_context(STYLE):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def theory_and_simulation(ax, t, theory, simulation, *, color: str, label: str | None = None, every: int | None = None):
    """Plots one trajectory: theory as a line, simulation as markers on the same time grid.

    Args:
        ax: matplotlib Axes.
        t: (T,) times.
        theory: (T,) theory values.
        simulation: (T,) or (S, T); with several rows, their mean as markers and the
            min-max range as a band.
        color: line and marker colour.
        label: legend label for the pair.
        every: plot every n-th simulation marker (default: about 25 markers).
    """
    t = np.asarray(t)
    sim = np.asarray(simulation)
    every = every or max(1, len(t) // 25)
    with plt.rc_context(STYLE):
        ax.plot(t, theory, color=color, label=None if label is None else f"{label} (theory)")
        if sim.ndim == 2:
            ax.fill_between(t, np.nanmin(sim, 0), np.nanmax(sim, 0), color=color, alpha=0.2, linewidth=0)
            sim = np.nanmean(sim, 0)
        ax.plot(t[::every], sim[::every], "o", color=color, markerfacecolor="none",
                label=None if label is None else f"{label} (simulation)")


def legend_theory_simulation(ax, labels: Sequence[str] = ("theory", "simulation")):
    """Adds a neutral legend saying that lines are theory and markers are simulation."""
    handles = [
        matplotlib.lines.Line2D([], [], color="0.3", label=labels[0]),
        matplotlib.lines.Line2D([], [], color="0.3", marker="o", linestyle="none", markerfacecolor="none", label=labels[1]),
    ]
    ax.legend(handles=handles, loc="best")


def savefig(fig, path: str | Path) -> None:
    """Writes ``fig`` as PNG to ``path`` in the jaxdyn style (the run layer writes figures
    atomically through this: ``jaxdyn.store.write_figure``)."""
    with plt.rc_context(STYLE):
        fig.savefig(path, format="png")


# --- dense sample ---
def seed_panels(num_seeds: int, *, columns: int = 4, width: float = 3.2, height: float = 2.8):
    """One panel per ensemble member (figures fit and draw each seed, never a seed mean).

    Returns:
        (figure, list of ``num_seeds`` axes, row-major in a grid of at most ``columns``
        columns; spare panels of the grid are hidden).
    """
    if num_seeds < 1:
        raise ValueError(f"num_seeds: expected at least one, got {num_seeds}")
    cols = min(columns, num_seeds)
    rows = -(-num_seeds // cols)
    fig, axes = figure(rows, cols, width=width, height=height)
    flat = list(axes.ravel())
    for extra in flat[num_seeds:]:
        extra.set_visible(False)
    return fig, flat[:num_seeds]


def transition_window(ax, start: float, stop: float, *, color: str = "0.85", label: str | None = None):
    """Shades the epochs [start, stop] (a learning transition, e.g. t10 to t90); nothing when
    either end is not finite."""
    if np.isfinite(start) and np.isfinite(stop):
        ax.axvspan(start, stop, color=color, alpha=0.5, linewidth=0, zorder=0, label=label)
