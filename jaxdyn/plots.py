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


# --- deep linear ---------------------------------------------------------------------------------


_GROUP_LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 3)))


def group_linestyle(i: int) -> str | tuple:
    """The i-th of six line styles (solid, dashed, dotted, dash-dot, dash-dot-dot, long dash;
    cycling), to tell groups of members apart when colour already codes another condition."""
    return _GROUP_LINESTYLES[i % len(_GROUP_LINESTYLES)]


def legend_groups(ax, labels: Sequence[str], *, colors: Sequence[str] | None = None, linestyles: Sequence | None = None,
                  markers: Sequence[str] | None = None, title: str | None = None, loc: str = "best", **kwargs):
    """A legend of proxy handles, one per group (colour, line style and/or marker), independent of
    what was drawn; returns it (pass ``ax.add_artist`` for a second legend on the same axes).

    Args:
        ax: matplotlib Axes, or a Figure (then e.g. ``loc="outside lower center"`` with the
            constrained layout of :func:`figure` puts the legend below the panels).
        labels: one label per group.
        colors, linestyles, markers: per-group styles (default: dark grey, solid, none).
        title, loc, kwargs: passed to ``ax.legend``.
    """
    n = len(labels)
    colors = colors or ["0.3"] * n
    linestyles = linestyles or ["-"] * n
    markers = markers or [None] * n
    handles = [matplotlib.lines.Line2D([], [], color=c, linestyle=ls, marker=mk, markerfacecolor="none", label=lab)
               for lab, c, ls, mk in zip(labels, colors, linestyles, markers)]
    with plt.rc_context(STYLE):
        return ax.legend(handles=handles, title=title, loc=loc, **kwargs)


def reference_line(ax, x, y, *, label: str | None = None, color: str = "0.4", linestyle: str = "--"):
    """A thin reference curve (an asymptote, a threshold) drawn behind the data."""
    with plt.rc_context(STYLE):
        ax.plot(x, y, color=color, linestyle=linestyle, linewidth=1.0, zorder=0, label=label)


# --- neurashed -----------------------------------------------------------------------------------


def median_band(ax, x, values, *, color: str, label: str | None = None, marker: str = "o", band: str = "minmax", **kw):
    """Simulation over seeds: the median as markers and a band over seeds.

    Args:
        ax: matplotlib Axes.
        x: (T,) abscissae.
        values: (S, T) one row per seed (NaN rows left out).
        color: marker and band colour.
        label: legend label of the markers.
        marker: marker style (open markers, the simulation convention).
        band: ``"minmax"`` (the range over seeds) or ``"quartiles"``.
        kw: passed to the markers' ``ax.plot``.
    """
    v = np.asarray(values, np.float64)
    lo, hi = (np.nanmin(v, 0), np.nanmax(v, 0)) if band == "minmax" else (np.nanpercentile(v, 25, 0), np.nanpercentile(v, 75, 0))
    with plt.rc_context(STYLE):
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
        ax.plot(x, np.nanmedian(v, 0), marker, color=color, markerfacecolor="none", label=label, **kw)
