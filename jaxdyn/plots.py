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


# --- training response ---
def plot_aging(ax, steps, sizes, pl: dict, color: str, label: str | None = None):
    """Response size on log-log axes (seed mean, band: 10-90% of seeds) with the fitted power law.

    Args:
        ax: matplotlib Axes.
        steps: (time,) epochs of the records (the first, epoch 0, is left out of a log axis).
        sizes: (seed, time) response sizes.
        pl: a power-law fit as ``jaxdyn.analysis.response.PowerLawFit.to_dict()``.
        color, label: colour of markers and line; legend label of the markers.
    """
    t = np.asarray(steps)[1:]
    s = np.asarray(sizes)[:, 1:]
    mean = np.nanmean(s, 0)
    with plt.rc_context(STYLE):
        ax.fill_between(t, np.nanquantile(s, 0.1, 0), np.nanquantile(s, 0.9, 0), color=color, alpha=0.15, linewidth=0)
        every = max(1, len(t) // 40)
        ax.plot(t[::every], mean[::every], "o", color=color, markerfacecolor="none", label=label)
        lo, hi = pl["fit_window"]
        tt = np.geomspace(lo, hi, 50)
        ax.plot(tt, pl["amplitude"] * tt ** (-pl["tau"]), color=color,
                label=f"fit: tau = {pl['tau']:.2f} [{pl['tau_ci'][0]:.2f}, {pl['tau_ci'][1]:.2f}]")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("epoch e")
        ax.set_ylabel("response size S(e) = R(h=0)")


def plot_kernels(ax, kernels: dict, bits: int = 16):
    """K(h, e) = R(h) / R(0) per reported epoch, with bootstrap bands and fitted lines.

    Args:
        ax: matplotlib Axes.
        kernels: ``{epoch: KernelFit}`` (``jaxdyn.analysis.response.kernel_fit``).
        bits: string length (distances 0..bits).
    """
    from jaxdyn.analysis.response import line_fit

    h = np.arange(bits + 1)
    with plt.rc_context(STYLE):
        for j, (ep, k) in enumerate(sorted(kernels.items())):
            col = color(j)
            ax.fill_between(h, k.kernel_ci[0], k.kernel_ci[1], color=col, alpha=0.2, linewidth=0)
            ax.plot(h, k.kernel, "o", color=col, markerfacecolor="none")
            line = line_fit(h, k.kernel)
            ax.plot(h, line.intercept + line.slope * h, color=col, linewidth=1, label=f"e = {ep}: slope {k.slope:.3f}/bit")
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.set_xlabel("Hamming distance h from x_o")
        ax.set_ylabel("kernel K(h) = R(h) / R(0)")
        ax.legend(loc="best")


def plot_groups(ax, steps, f_points, group, g_mean, theories: dict, colors=None, log_markers: bool = False):
    """Light lines: every point's seed-mean prediction; markers: group means; lines: theories.

    Args:
        ax: matplotlib Axes.
        steps: (time,) epochs.
        f_points: (time, n) predictions of every training point.
        group: (n,) group index of each point.
        g_mean: (time, G) group-mean predictions (markers).
        theories: ``{name: (time, G)}`` theory curves; 'kernel' solid, 'meanfield' dashed, others dotted.
        colors: ``{group: colour}``.
        log_markers: space the ~30 markers evenly in log time (for a log time axis).
    """
    colors = colors or {a: color(a) for a in range(g_mean.shape[-1])}
    styles = {"kernel": "-", "meanfield": "--"}
    with plt.rc_context(STYLE):
        for a in range(g_mean.shape[-1]):
            for p in np.flatnonzero(group == a):
                ax.plot(steps, f_points[:, p], color=colors[a], alpha=0.15, linewidth=0.7)
            if log_markers:
                pick = np.unique(np.r_[0, np.geomspace(1, len(steps) - 1, 30).astype(int)])
            else:
                pick = np.arange(0, len(steps), max(1, len(steps) // 30))
            ax.plot(steps[pick], g_mean[pick, a], "o", color=colors[a], markerfacecolor="none", label=f"g{a} (simulation)")
            for name, th in theories.items():
                ax.plot(steps, th[:, a], styles.get(name, ":"), color=colors[a], linewidth=1.4, label=f"g{a} ({name})")
        ax.set_xlabel("epoch e")
        ax.set_ylabel("prediction f")
        ax.set_ylim(-0.02, 1.02)
