"""The figure style shared by every experiment.

Theory is drawn as lines, simulation as markers (or mean and a band over seeds), in the
Okabe-Ito colour-blind-safe palette; axes carry labels with units.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.lines
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
"""The eight colours of jaxdyn's figures (hex), Okabe & Ito (2008)'s palette, safe for the common
colour-vision deficiencies; :func:`color` cycles through it."""

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
"""The matplotlib rc parameters of jaxdyn's figures (sizes, fonts, no top/right spines, the
:data:`PALETTE` colour cycle), applied with ``plt.rc_context`` when a figure is made."""


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
    _linear_where_nothing_positive(fig)
    with plt.rc_context(STYLE):
        fig.savefig(path, format="png")


def _linear_where_nothing_positive(fig) -> None:
    """A log axis with nothing finite and positive to show (every member of a condition diverged
    or degenerate) gets non-positive limits, which matplotlib cannot draw (it raises); such an axis
    becomes linear, with a note on the panel, so that the run's figures are still written."""
    for ax in fig.axes:
        for axis, scale, limits, set_scale in (("x", ax.get_xscale(), ax.get_xlim(), ax.set_xscale),
                                               ("y", ax.get_yscale(), ax.get_ylim(), ax.set_yscale)):
            if scale == "log" and not (np.all(np.isfinite(limits)) and min(limits) > 0):
                set_scale("linear")
                ax.text(0.5, 0.5, f"no positive {axis} value to show on a log axis\n(diverged or degenerate members)",
                        transform=ax.transAxes, ha="center", va="center", fontsize=7, color="0.4")


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
# --- training response ---------------------------------------------------------------------------


def log_spaced(steps, count: int = 30) -> np.ndarray:
    """Indices of about ``count`` records evenly spaced in log time from the first epoch > 0
    (markers on a log axis; every record where there are fewer)."""
    steps = np.asarray(steps, np.float64)
    pos = np.flatnonzero(steps > 0)
    if pos.size <= count:
        return pos
    targets = np.geomspace(steps[pos[0]], steps[pos[-1]], count)
    return np.unique(pos[np.searchsorted(steps[pos], targets).clip(0, pos.size - 1)])


def plot_aging(ax, steps, sizes, pl: dict, color: str, label: str | None = None):
    """Response size on log-log axes from epoch 1 (seed mean as markers log-spaced in epoch,
    band: 10-90% of seeds) with the fitted power law.

    Args:
        ax: matplotlib Axes.
        steps: (time,) epochs of the records (epoch 0 is left out of the log axis).
        sizes: (seed, time) response sizes.
        pl: a power-law fit as ``jaxdyn.analysis.response.PowerLawFit.to_dict()``.
        color, label: colour of markers and line; legend label of the markers.
    """
    steps = np.asarray(steps)
    pos = steps > 0
    t = steps[pos]
    s = np.asarray(sizes)[:, pos]
    mean = np.nanmean(s, 0)
    pick = log_spaced(t, 40) if t[0] > 0 else np.arange(len(t))
    with plt.rc_context(STYLE):
        ax.fill_between(t, np.nanquantile(s, 0.1, 0), np.nanquantile(s, 0.9, 0), color=color, alpha=0.15, linewidth=0)
        ax.plot(t[pick], mean[pick], "o", color=color, markerfacecolor="none", label=label)
        lo, hi = pl["fit_window"]
        tt = np.geomspace(lo, hi, 50)
        ax.plot(tt, pl["amplitude"] * tt ** (-pl["tau"]), color=color,
                label=f"fit: tau = {pl['tau']:.2f} [{pl['tau_ci'][0]:.2f}, {pl['tau_ci'][1]:.2f}]")
        ax.axvline(lo, color="0.7", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(left=max(1.0, float(t[0])) * 0.9)
        ax.set_xlabel("epoch e")
        ax.set_ylabel("response size S(e) = R(h=0)")


def plot_saturation_split(ax, steps, curves: dict, taus: dict):
    """Seed means of positive quantities, each divided by its value at the first epoch > 0, on
    log-log axes from epoch 1: the output-space response, its logit-space part, the sigmoid
    factor and the logits' self-NTK (``curves``: {label: (seed, time)}, ``taus``: {label: tau})."""
    steps = np.asarray(steps)
    pos = steps > 0
    t = steps[pos]
    pick = log_spaced(t, 30)
    styles = ("o-", "s-", "^--", "v:")
    with plt.rc_context(STYLE):
        for j, (name, c) in enumerate(curves.items()):
            m = np.nanmean(np.asarray(c, np.float64)[:, pos], 0)
            m = m / m[0]
            ax.plot(t[pick], m[pick], styles[j % len(styles)], color=color(j), markerfacecolor="none", markersize=3, linewidth=1,
                    label=f"{name}: tau = {taus[name]:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("epoch e")
        ax.set_ylabel("seed mean / value at epoch 1")
        ax.legend(loc="best", fontsize=6)


def plot_frozen_ntk(ax, steps, errors, info: dict):
    """Relative error of the NTK frozen at each start epoch against later responses: median over
    seeds (line) and 25-75% band; ``errors`` (seed, start, time), ``info`` the analysis' dict."""
    steps = np.asarray(steps, np.float64)
    with plt.rc_context(STYLE):
        for j, e0 in enumerate(info["starts"]):
            sel = steps > e0
            err = errors[:, j][:, sel]
            col = color(j)
            ax.fill_between(steps[sel] - e0, np.nanquantile(err, 0.25, 0), np.nanquantile(err, 0.75, 0), color=col, alpha=0.2, linewidth=0)
            ax.plot(steps[sel] - e0, np.nanmedian(err, 0), color=col, label=f"e0 = {e0}")
        ax.axhline(info["tolerance"], color="0.4", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("epochs after e0")
        ax.set_ylabel("||R - R_NTK(e0)|| / ||R||")
        ax.legend(loc="best", fontsize=7)


def plot_exponent_sensitivity(ax, fit_starts: dict, windows: list, pl: dict):
    """tau by fit start (markers with intervals, bottom axis) and on doubling windows (horizontal
    bars over the window, with intervals)."""
    with plt.rc_context(STYLE):
        starts = sorted(fit_starts)
        taus = [fit_starts[s]["tau"] for s in starts]
        lo = [fit_starts[s]["tau"] - fit_starts[s]["tau_ci"][0] for s in starts]
        hi = [fit_starts[s]["tau_ci"][1] - fit_starts[s]["tau"] for s in starts]
        ax.errorbar(starts, taus, yerr=[lo, hi], fmt="o", color=color(0), label="fit from epoch e to the end")
        for k, w in enumerate(windows):
            ax.plot(w["window"], [w["tau"]] * 2, color=color(1), linewidth=2, label="window [e, 2e]" if k == 0 else None)
            mid = np.sqrt(w["window"][0] * w["window"][1])
            ax.plot([mid, mid], w["tau_ci"], color=color(1), linewidth=1)
        ax.axhline(pl["tau"], color="0.5", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("aging exponent tau")
        ax.legend(loc="best", fontsize=7)


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
        theories: ``{name: (time, G)}`` theory curves; 'kernel' solid, 'meanfield' dashed, 'literal'
            dash-dotted, 'aging' dotted, 'aging_blocks' long dash-dot, 'linearised' long dashes,
            'kernel_infinite' dash-dot-dot, others dotted.
        colors: ``{group: colour}``.
        log_markers: space the ~30 markers evenly in log time (for a log time axis).
    """
    colors = colors or {a: color(a) for a in range(g_mean.shape[-1])}
    styles = {"kernel": "-", "meanfield": "--", "literal": "-.", "aging": ":", "aging_blocks": (0, (6, 1, 1, 1)),
              "linearised": (0, (8, 3)), "kernel_infinite": (0, (5, 1, 1, 1, 1, 1))}
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
                ax.plot(steps, th[:, a], linestyle=styles.get(name, ":"), color=colors[a], linewidth=1.2, label=f"g{a} ({name})")
        ax.set_xlabel("epoch e")
        ax.set_ylabel("prediction f")
        ax.set_ylim(-0.02, 1.02)


def plot_tau_split(ax, taus: dict):
    """Bars per condition: the aging exponent of the output-space response, of its logit-space
    part and of the sigmoid factor (``taus``: {label: (tau_f, tau_z, tau_sigma)})."""
    labels = list(taus)
    x = np.arange(len(labels))
    names = ("output S_f", "logit S_z", "sigmoid (f(1-f))^2")
    with plt.rc_context(STYLE):
        for j, name in enumerate(names):
            ax.bar(x + (j - 1) * 0.27, [taus[k][j] for k in labels], width=0.27, color=color(j), label=name)
        ax.axhline(0, color="0.5", linewidth=0.8)
        ax.set_xticks(x, labels, fontsize=7, rotation=15)
        ax.set_ylabel("aging exponent tau")
        ax.legend(loc="best", fontsize=6)


def plot_strips(ax, labels, values, *, seed: int = 0):
    """Per-seed values of several conditions side by side (jittered points) with their medians
    (bars): ``values`` a list of (seed,) arrays, one per label."""
    rng = np.random.default_rng(seed)
    with plt.rc_context(STYLE):
        for j, v in enumerate(values):
            v = np.asarray(v, np.float64)
            v = v[np.isfinite(v)]
            ax.plot(j + 0.15 * rng.standard_normal(v.size).clip(-2, 2), v, "o", color=color(j), markerfacecolor="none", markersize=3)
            if v.size:
                ax.plot([j - 0.3, j + 0.3], [np.median(v)] * 2, color="0.1", linewidth=2)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)


def fit_limits(ax, x, y, pad: float = 0.06):
    """Sets each axis' limits to its data's range (finite values) with a margin of ``pad`` of the
    range; returns ((xmin, xmax), (ymin, ymax))."""
    out = []
    for values, setter in ((x, ax.set_xlim), (y, ax.set_ylim)):
        v = np.asarray(values, np.float64)
        v = v[np.isfinite(v)]
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        margin = pad * (hi - lo) if hi > lo else max(abs(hi), 1e-12) * pad
        setter(lo - margin, hi + margin)
        out.append((lo - margin, hi + margin))
    return tuple(out)
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
