"""local-elasticity: LE(x, x') of Su's eq. (3.1) on trained networks of the package, with a linear control.

Sources: Su (arXiv 2112.09741), section 3, "Local elasticity", eq. (3.1) and Figure 6; He & Su
(arXiv 1910.06943) for the protocol (one SGD step at a base input with its label) and the
kernelized similarity, which tends to the neural tangent kernel as the step size goes to 0.

Networks, each trained by :func:`jaxdyn.engine.train` (``seeds`` members) on its own data:

- ``rbe``: Nakazato's RBE 1-D conv net (:class:`~jaxdyn.models.RBEConvNet`, logits) on two classes
  of 16-bit strings, each a Hamming ball of radius ``rbe_radius`` around a random centre (the
  centres at least 8 bits apart); binary cross-entropy.
- ``digits_cnn``: a small CNN (:class:`~jaxdyn.models.DenseSampleVGG` with 2 conv layers of 8
  filters, adaptive pool to 4x4, one hidden layer of 64, no dropout) on scikit-learn's 8x8 digits
  (10 classes); softmax cross-entropy.
- ``vgg``: the dense-sample VGG at the quick size of ``dense-sample`` (5 conv layers x 3
  filters, pool 20, hidden 48-48; dropout ``vgg_dropout`` in training, 0 by default) on generated
  dense-sample faces (3 identities, 12x12, 2 poses x 8 x 8 lights); softmax cross-entropy. With
  dense-sample's dropout 0.5 and 400 steps the net stayed at chance on the 3-D faces (test
  accuracy 0.42 and 0.33, training 0.44 and 0.31, 2 seeds); without dropout 1500 steps fit the
  training set (1.0, 0.98; test 0.93, 0.88). The setting was chosen on these accuracies, before any
  LE was read.
- the linear control: a linear classifier z = W x (:class:`~jaxdyn.models.DeepLinear` with one
  layer) on the same (flattened) inputs and loss. For it, one step at x changes z(x') by
  -lr (x'.x) g, so LE(x, x') = |x'.x| / |x|^2: the impact follows the inputs' overlap and norm
  (the leverage effect), not a learned notion of class.

The text's claim is about "well-trained neural networks": a network whose training accuracy is
below ``well_trained`` is not one, and its LE says nothing of learning. Each net's first claim
(kind ``sanity``) is that its members are well-trained; members that are not are left out of the
net's LE claims with that reason (``claims.leaving_out``), as degenerate members are elsewhere.

Measurement (``jaxdyn.analysis.elasticity``): from the trained weights, for every base x
(``bases_per_class`` held-out inputs per class) one plain SGD step with the training learning rate
on (x, y) is taken (evaluation mode, not kept), and LE(x, x') is read on ``probes_per_class``
other held-out inputs per class. A base the network fits with certainty (dL/dz ~ 0) may move
its logits by less than the float64 arithmetic resolves; such bases are counted and left out
(``unresolved_bases``). Same-class and other-class pairs are summarised by their medians
and by the AUC P(LE_same > LE_other) with a 95% bootstrap interval over bases (0.5 = no
separation). The kernelized similarity -<Delta z(x'), g>/(lr |g|^2) (normalised by its value at
x' = x) is summarised the same way, and compared with its lr -> 0 limit g^T Theta(x', x) g / |g|^2
from :func:`jaxdyn.ntk.ntk` at lr and lr / 10.

Tiers (Figure 6: same class > similar class > dissimilar class): class similarity is defined
without LE, by the distance between the class means of the training inputs
(:func:`jaxdyn.analysis.elasticity.similarity_tiers`): for every base class the nearest other class
is "similar", the farthest "dissimilar". Claimed per seed for the nets with at least three
classes (digits_cnn, vgg), with AUCs per tier (same vs similar, similar vs dissimilar) and
histograms per base class as in Figure 6. The two-class RBE net has no tiers.

Local elasticity inside neurashed: the four-level, three-class graph of Figures 1-2
(:func:`jaxdyn.tasks.neurashed.figures12`, classes 1a, 1b, 2, 3) is trained by Algorithm 1 through
the engine (Theorem 1's rules g+ = x + c, g- = x, eta = 1; and, as a second reading, the
appendix's multiplicative rules), and LE of eq. (3.1) is computed on neurashed's logits after one
update at each input type; the text's ordering is that an update at 1a moves 1b most, then 2,
and 3 least.

results.nc holds, for every net and its linear control, the logits before the step at the bases
and the probes, their changes after the step at every base, the loss gradient at the base, the
inputs of the bases and probes and their labels, so LE and the tiers can be recomputed without
jaxdyn; ``unresolved_bases`` counts the bases left out, with why (the probability the network
gives the base's class and the size of its loss gradient).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxdyn import claims, ntk, plots
from jaxdyn.analysis import elasticity as el
from jaxdyn.engine import hparam, losses, observables, optimizer
from jaxdyn.experiments.base import Config, ConfigError, Experiment, Figure, Result, param
from jaxdyn.models import DeepLinear, DenseSampleVGG, RBEConvNet
from jaxdyn.models import neurashed as nm
from jaxdyn.tasks import neurashed as nt
from jaxdyn.theory import kernels as K

NETS = ("rbe", "digits_cnn", "vgg")
"""The nets local-elasticity trains and reads."""
TIER_CODES = {"same_vs_similar": (el.TIER_SAME, el.TIER_SIMILAR), "similar_vs_dissimilar": (el.TIER_SIMILAR, el.TIER_DISSIMILAR)}
"""Figure 6's tier comparisons: ``{pair: (higher tier, lower tier)}``."""


@dataclasses.dataclass(frozen=True)
class LocalElasticityConfig(Config):
    """Configuration of local-elasticity."""

    nets: tuple[str, ...] = param(NETS, "networks to train and measure", choices=NETS, max_len=3)
    seeds: int = param(2, "trained networks per kind (initialisation and batch order)", min=1, max=64)
    bases_per_class: int = param(8, "held-out base inputs per class (one SGD step each)", min=2, max=200)
    probes_per_class: int = param(16, "held-out test inputs per class", min=2, max=500)
    rbe_radius: int = param(3, "rbe: Hamming radius of each class around its centre", min=0, max=7)
    rbe_train_per_class: int = param(48, "rbe: training strings per class", min=4, max=4096)
    rbe_steps: int = param(600, "rbe: training steps (batch 16, SGD)", min=1, max=100_000)
    rbe_lr: float = param(0.1, "rbe: SGD learning rate (also the LE step)", min=0.0, max=10.0, min_exclusive=True)
    digits_steps: int = param(800, "digits_cnn: training steps (batch 32, SGD with momentum 0.9)", min=1, max=100_000)
    digits_lr: float = param(0.05, "digits_cnn: learning rate (also the LE step, plain SGD)", min=0.0, max=10.0, min_exclusive=True)
    vgg_steps: int = param(1500, "vgg: training steps (batch 16, SGD with momentum 0.9)", min=1, max=100_000)
    vgg_lr: float = param(0.01, "vgg: learning rate (also the LE step, plain SGD)", min=0.0, max=10.0, min_exclusive=True)
    vgg_dropout: float = param(0.0, "vgg: dropout rate in training (dense-sample's VGG uses 0.5)", min=0.0, max=0.99)
    well_trained: float = param(0.95, "training accuracy a network needs to count as well-trained (members below it are left out "
                                "of its LE claims)", min=0.0, max=1.0)
    linear_steps: int = param(800, "linear control: training steps (same batch and optimizer as its network)", min=1, max=100_000)
    linear_lr: float = param(0.02, "linear control: learning rate (also its LE step)", min=0.0, max=10.0, min_exclusive=True)
    infinite_width_nets: tuple[str, ...] = param(NETS, "nets whose kernelized LE is set beside the infinite-width NTK of their "
                                                 "architecture (the faces VGG's: 4.7 s for its 72 inputs on the 2-core CPU)",
                                                 choices=NETS, min_len=0, max_len=3)
    control_band: float = param(0.1, "|AUC - 0.5| below which a model counts as showing no local elasticity", min=0.0, max=0.5)
    neurashed: bool = param(True, "also measure LE inside neurashed on the Figures 1-2 graph")
    neurashed_seeds: int = param(8, "neurashed: seeds (initial factors and epoch orders)", min=1, max=4096)
    neurashed_epochs: int = param(50, "neurashed: training epochs (each of the 4 input types once per epoch)", min=1, max=10_000)
    neurashed_c: float = param(2.0, "neurashed: Theorem 1's additive g+(x) = x + c", min=0.0, max=1e3, min_exclusive=True)

    @classmethod
    def quick(cls) -> LocalElasticityConfig:
        return cls(seeds=1, bases_per_class=4, probes_per_class=8, rbe_steps=300, digits_steps=300, vgg_steps=800,
                   linear_steps=300, neurashed_seeds=4, neurashed_epochs=20)

    def check(self) -> None:
        if len(set(self.nets)) != len(self.nets):
            raise ConfigError("nets: listed twice")


# ----------------------------------------------------------------------------------------------
# Data (numpy, deterministic)
# ----------------------------------------------------------------------------------------------


def rbe_clusters(rng: np.random.Generator, train_per_class: int, test_per_class: int, radius: int, bits: int = 16):
    """Two classes of bit strings: Hamming balls of ``radius`` around two centres >= 8 bits apart.

    Returns (x_train (2n, bits), y_train (2n,) float 0/1, x_test, y_test).
    """
    while True:
        centres = rng.integers(0, 2, (2, bits))
        if np.abs(centres[0] - centres[1]).sum() >= 8:
            break

    def draw(c, n):
        x = np.repeat(centres[c][None], n, 0)
        for i in range(n):
            flips = rng.choice(bits, rng.integers(0, radius + 1), replace=False)
            x[i, flips] = 1 - x[i, flips]
        return x

    xs = [np.concatenate([draw(c, n) for c in (0, 1)]).astype(np.float32) for n in (train_per_class, test_per_class)]
    ys = [np.repeat(np.array([0.0, 1.0], np.float32), n) for n in (train_per_class, test_per_class)]
    return xs[0], ys[0], xs[1], ys[1]


def load_digits_split(rng: np.random.Generator, test_per_class: int):
    """scikit-learn's 8x8 digits scaled to [0, 1]: (x_train (N, 8, 8, 1), y_train, x_test, y_test).

    ``test_per_class`` images per class are held out; the rest train.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("nets: 'digits_cnn' needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int32)
    test = np.concatenate([rng.choice(np.flatnonzero(y == k), test_per_class, replace=False) for k in range(10)])
    train_mask = np.ones(len(y), bool)
    train_mask[test] = False
    return x[train_mask], y[train_mask], x[test], y[test]


def load_faces_split(rng: np.random.Generator, test_per_class: int):
    """Generated dense-sample faces, 3 identities x 2 poses x 8 x 8 lights at 12 x 12 (384 images):
    (x_train (N, 12, 12, 3), y_train, x_test, y_test), standardised by the training pixels."""
    from jaxdyn.tasks import faces

    data = faces.generate_faces(3, 12, num_azimuths=8, num_elevations=8, poses=2, seed=0)
    y = np.asarray(data.identity, np.int32)
    imgs = np.asarray(data.images, np.float64) / 255.0
    test = np.concatenate([rng.choice(np.flatnonzero(y == k), test_per_class, replace=False) for k in range(3)])
    train_mask = np.ones(len(y), bool)
    train_mask[test] = False
    mean, std = imgs[train_mask].mean(), imgs[train_mask].std()
    x = np.repeat(((imgs - mean) / std).astype(np.float32)[..., None], 3, axis=-1)
    return x[train_mask], y[train_mask], x[test], y[test]


# ----------------------------------------------------------------------------------------------
# Training through the engine
# ----------------------------------------------------------------------------------------------


def bce_logits(outputs, batch):
    """Binary cross-entropy on logits (= BCE of sigmoid(z)), mean over the batch."""
    z = outputs.reshape(batch["y"].shape)
    return jnp.mean(jax.nn.softplus(z) - batch["y"] * z)


@dataclasses.dataclass(frozen=True)
class MinibatchTask:
    """An engine task drawing ``batch_size`` training pairs uniformly with replacement at every
    step from the shared ``x`` (N, ...) and ``y`` (N,) (hashable: one compilation per size).

    There is no per-member data (``init`` returns ``{}``): every member sees the same training
    set, passed once as ``shared=``; members differ in their initialisation and batch order.
    """

    batch_size: int

    def init(self, key):
        """No per-member data: the training set is shared (shared=)."""
        del key
        return {}

    def batch(self, data, key, step):
        """The minibatch of this step, drawn from the shared training set with the member's key."""
        del step
        idx = jax.random.randint(key, (self.batch_size,), 0, data["y"].shape[0])
        return {"x": data["x"][idx], "y": data["y"][idx]}


def _train(ctx, model, x, y, loss, *, seeds, steps, lr, batch_size, momentum):
    return ctx.train(model, MinibatchTask(batch_size), optimizer("sgd", learning_rate=hparam("lr"), momentum=momentum if momentum > 0 else None),
                     seeds=seeds, num_steps=steps, loss=loss, shared={"x": x, "y": y}, record_every=steps,
                     observables={"loss": observables.batch_loss(loss)}, hparams={"lr": np.full(len(seeds), lr, np.float32)})


def _accuracy(f, params, x, y) -> float:
    z = np.asarray(f(params, x))
    pred = (z.reshape(-1) > 0).astype(np.float32) if z.ndim == 1 or z.shape[-1] == 1 else z.argmax(-1)
    return float((pred == y).mean())


def _select(y: np.ndarray, per_class: int, offset: int) -> np.ndarray:
    classes = np.unique(y)
    return np.concatenate([np.flatnonzero(y == c)[offset:offset + per_class] for c in classes])


def _measure(f, params_all, loss, x_test, y_test, config, lr, seeds, with_limit: bool):
    """LE, kernel and NTK similarity for every seed: dict of (seed, B, P) arrays, plus the NTK check.

    Computed in float64: on a trained network the bases' loss gradients g are small, and the
    logit changes lr Theta g fall below float32's resolution of the logits.
    """
    bases = _select(y_test, config.bases_per_class, 0)
    probes = _select(y_test, config.probes_per_class, config.bases_per_class)
    P = len(probes)
    out = {"le": [], "kernel_rel": [], "kernel": [], "logits_probe": [], "delta_probe": [], "logits_base": [], "delta_base": [],
           "grad": [], "resolved": []}
    limit = None
    with jax.enable_x64(True):
        xb = jnp.asarray(x_test[bases], jnp.float64)
        yb = jnp.asarray(y_test[bases])
        x_all = jnp.concatenate([jnp.asarray(x_test[probes], jnp.float64), xb])  # probes, then the bases (S_ker(x, x))
        for s in range(len(seeds)):
            params = jax.tree_util.tree_map(lambda a: jnp.asarray(a[s], jnp.float64), params_all)
            first = with_limit and s == 0
            m = el.pair_measures(f, params, loss, xb, yb, x_all, lr, with_ntk=first, batch_size=8, with_logits=True)
            self_k = np.diagonal(m["kernel"][:, P:])
            out["le"].append(m["le"][:, :P])
            out["logits_probe"].append(m["logits_probe"][:P])
            out["delta_probe"].append(m["delta_probe"][:, :P])
            for key in ("logits_base", "delta_base", "grad", "resolved"):
                out[key].append(m[key])
            out["kernel"].append(m["kernel"][:, :P])
            with np.errstate(divide="ignore", invalid="ignore"):
                out["kernel_rel"].append(m["kernel"][:, :P] / self_k[:, None])
            if first:
                ref = m["ntk"][:, :P]
                limit = {"ntk": ref, "kernel_lr": m["kernel"][:, :P]}
                for scale in (1, 10, 100):
                    k = m["kernel"] if scale == 1 else el.pair_measures(f, params, loss, xb, yb, x_all, lr / scale, with_ntk=False, batch_size=8)["kernel"]
                    rel = np.abs(k[:, :P] - ref) / np.abs(ref)
                    limit[f"median_rel_error_lr_over_{scale}"] = float(np.nanmedian(rel))
                    limit[f"max_rel_error_lr_over_{scale}"] = float(np.nanmax(np.abs(k[:, :P] - ref)) / np.abs(ref).max())
                    if scale == 10:
                        limit["kernel_lr_over_10"] = k[:, :P]
    same = (y_test[bases][:, None] == y_test[probes][None, :])
    return {k: np.stack(v) for k, v in out.items()}, same, limit, (bases, probes)


def _net_spec(name: str, config: LocalElasticityConfig, rng: np.random.Generator):
    test_per_class = config.bases_per_class + config.probes_per_class
    if name == "rbe":
        xtr, ytr, xte, yte = rbe_clusters(rng, config.rbe_train_per_class, test_per_class, config.rbe_radius)
        return dict(model=RBEConvNet(num_layers=3, features=8, return_logits=True), loss=bce_logits, data=(xtr, ytr, xte, yte),
                    steps=config.rbe_steps, lr=config.rbe_lr, batch=16, momentum=0.0, classes=2, out=1)
    if name == "digits_cnn":
        xtr, ytr, xte, yte = load_digits_split(rng, test_per_class)
        model = DenseSampleVGG(num_classes=10, num_conv=2, conv_features=8, hidden=(64,), pool_size=4, dropout_rate=0.0)
        return dict(model=model, loss=losses.softmax_cross_entropy, data=(xtr, ytr, xte, yte), steps=config.digits_steps,
                    lr=config.digits_lr, batch=32, momentum=0.9, classes=10, out=10)
    xtr, ytr, xte, yte = load_faces_split(rng, test_per_class)
    model = DenseSampleVGG(num_classes=3, hidden=(48, 48), dropout_rate=config.vgg_dropout)
    return dict(model=model, loss=losses.softmax_cross_entropy, data=(xtr, ytr, xte, yte), steps=config.vgg_steps,
                lr=config.vgg_lr, batch=16, momentum=0.9, classes=3, out=3)


def run(config: LocalElasticityConfig, ctx) -> Result:
    """Trains each network and its linear control, then measures LE and the kernelized similarity."""
    seeds = list(range(config.seeds))
    results = {}
    for name in config.nets:
        spec = _net_spec(name, config, np.random.default_rng(100 + NETS.index(name)))  # data fixed per net
        xtr, ytr, xte, yte = spec["data"]
        res = _train(ctx, spec["model"], xtr, ytr, spec["loss"], seeds=seeds, steps=spec["steps"], lr=spec["lr"],
                     batch_size=spec["batch"], momentum=spec["momentum"])
        ctx.stage("analysis")
        f = ntk.apply_fn(spec["model"])
        acc = [_accuracy(f, jax.tree_util.tree_map(lambda a: a[s], res.params), xte, yte) for s in range(len(seeds))]
        train_acc = [_accuracy(f, jax.tree_util.tree_map(lambda a: a[s], res.params), xtr, ytr) for s in range(len(seeds))]
        meas, same, limit, (bases, probes) = _measure(f, res.params, spec["loss"], xte, yte, config, spec["lr"], seeds, True)
        # Linear control on the flattened inputs.
        lin = DeepLinear(widths=(int(np.prod(xtr.shape[1:])), spec["out"]))
        flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
        lres = _train(ctx, lin, flat(xtr), ytr, spec["loss"], seeds=seeds, steps=config.linear_steps, lr=config.linear_lr,
                      batch_size=spec["batch"], momentum=spec["momentum"])
        ctx.stage("analysis")
        lf = ntk.apply_fn(lin)
        lacc = [_accuracy(lf, jax.tree_util.tree_map(lambda a: a[s], lres.params), flat(xte), yte) for s in range(len(seeds))]
        lmeas, _, _, _ = _measure(lf, lres.params, spec["loss"], flat(xte), yte, config, config.linear_lr, seeds, False)
        same_all = np.broadcast_to(same, meas["le"].shape)
        results[name] = dict(
            meas=meas, lmeas=lmeas, same=same, limit=limit, acc=acc, train_acc=np.array(train_acc), lacc=lacc, bases=bases, probes=probes,
            labels_base=yte[bases], labels_probe=yte[probes], lr=spec["lr"], classes=spec["classes"],
            sep={k: el.separation(v.reshape(-1, v.shape[-1]), same_all.reshape(-1, v.shape[-1])) for k, v in meas.items() if k in ("le", "kernel_rel")},
            lsep={k: el.separation(v.reshape(-1, v.shape[-1]), same_all.reshape(-1, v.shape[-1])) for k, v in lmeas.items() if k in ("le", "kernel_rel")},
            diverged=int((res.diverged_at >= 0).sum() + (lres.diverged_at >= 0).sum()),
            x_base=xte[bases], x_probe=xte[probes],
            tiers=el.similarity_tiers(xtr, ytr) if spec["classes"] >= 3 else None,
        )
        r = results[name]
        if name in config.infinite_width_nets:
            # The lazy limit: the kernelized similarity of an infinitely wide net of this architecture
            # and initialisation, whose NTK stays at its initial value (shared by the outputs, so
            # g^T Theta g / |g|^2 is Theta itself): how much class structure no learning would give.
            ctx.stage("theory")
            x_all = np.concatenate([xte[probes], xte[bases]]).astype(np.float32)
            theta = np.asarray(K.from_model(spec["model"], order=16, input_shape=xte.shape[1:]).kernel_fn(x_all, get="ntk").ntk, np.float64)
            P = len(probes)
            rel = theta[P:, :P] / np.diagonal(theta)[P:, None]  # (base, probe)
            r["infinite"] = {"theta": theta, "kernel_rel": rel, "auc": el.separation(rel, same).auc,
                             "auc_seed_trained": np.array([el.separation(meas["kernel_rel"][s], same).auc for s in range(len(seeds))])}
        r["pair_tiers"] = None if r["tiers"] is None else el.pair_tiers(r["tiers"], r["labels_base"], r["labels_probe"])
        # Per seed: AUC of same vs other classes, and per tier.
        r["auc_seed"] = np.array([el.separation(meas["le"][s], same).auc for s in range(len(seeds))])
        r["lauc_seed"] = np.array([el.separation(lmeas["le"][s], same).auc for s in range(len(seeds))])
        if r["pair_tiers"] is not None:
            pt = r["pair_tiers"]
            r["tier_sep"] = {pair: el.tier_separation(meas["le"].reshape(-1, len(probes)), np.tile(pt, (len(seeds), 1)), *codes)
                             for pair, codes in TIER_CODES.items()}
            r["tier_auc_seed"] = {pair: np.array([el.tier_separation(meas["le"][s], pt, *codes).auc for s in range(len(seeds))])
                                  for pair, codes in TIER_CODES.items()}
    neurashed = _neurashed_le(config, ctx) if config.neurashed else None

    ctx.stage("analysis")
    found, summary_nets = [], {}
    elastic = claims.source("well-trained neural networks are locally elastic in the sense that the value of this measure depends "
                            "on the semantic similarity between two samples", "section 3, 'Local elasticity', eq. (3.1) and Figure 6")
    tiers_quote = claims.source("local elasticity appears to be larger when the two classes are the same or similar",
                                "section 3, Figure 6 caption")
    linear = claims.source("local elasticity does not appear in linear classifiers because of the leverage effect",
                           "section 3, 'Local elasticity'")
    for name, r in results.items():
        s, ls = r["sep"]["le"], r["lsep"]["le"]
        lim = r["limit"]
        unresolved = ~r["meas"]["resolved"].astype(bool)  # (seed, base)
        z_base = r["meas"]["logits_base"]
        summary_nets[name] = {
            "test_accuracy_per_seed": r["acc"],
            "linear_test_accuracy_per_seed": r["lacc"],
            "lr": r["lr"],
            "le_median_same": s.median_same, "le_median_other": s.median_other,
            "le_auc": s.auc, "le_auc_95": [s.auc_low, s.auc_high], "le_auc_per_seed": r["auc_seed"].tolist(),
            "kernel_rel_auc": r["sep"]["kernel_rel"].auc,
            "linear_le_median_same": ls.median_same, "linear_le_median_other": ls.median_other,
            "linear_le_auc": ls.auc, "linear_le_auc_95": [ls.auc_low, ls.auc_high],
            "linear_kernel_rel_auc": r["lsep"]["kernel_rel"].auc,
            **{f"kernel_vs_ntk_{kind}_rel_error_lr_over_{sc}": lim[f"{kind}_rel_error_lr_over_{sc}"]
               for kind in ("median", "max") for sc in (1, 10, 100)},
            "unresolved_bases": int(unresolved.sum()),
            "linear_unresolved_bases": int((~r["lmeas"]["resolved"].astype(bool)).sum()),
            "bases_total": int(unresolved.size),
            "unresolved_fraction": float(unresolved.mean()),
            "unresolved_why": _unresolved_why(r, unresolved, z_base),
            "diverged_members": r["diverged"],
        }
        if r["tiers"] is not None:
            t = r["tiers"]
            summary_nets[name]["tiers"] = {
                "similar_class_of_each_class": t.similar.tolist(), "dissimilar_class_of_each_class": t.dissimilar.tolist(),
                **{f"auc_{pair}": sep.auc for pair, sep in r["tier_sep"].items()},
                **{f"auc_{pair}_95": [sep.auc_low, sep.auc_high] for pair, sep in r["tier_sep"].items()},
                **{f"auc_{pair}_per_seed": v.tolist() for pair, v in r["tier_auc_seed"].items()},
                "le_median_by_tier": {tier: float(np.nanmedian(r["meas"]["le"][:, r["pair_tiers"] == code]))
                                      for tier, code in (("same", el.TIER_SAME), ("similar", el.TIER_SIMILAR),
                                                         ("dissimilar", el.TIER_DISSIMILAR))},
            }
        trained = r["train_acc"] >= config.well_trained  # (seed,): the members the LE claims are about
        summary_nets[name]["train_accuracy_per_seed"] = r["train_acc"].tolist()
        summary_nets[name]["well_trained_members"] = int(trained.sum())
        found.append(claims.per_seed(
            f"{name}-well-trained", f"{name}: the network is well-trained, the text's premise (training accuracy per seed; test "
            f"accuracy {', '.join(f'{a:.3f}' for a in r['acc'])})", r["train_acc"], ">=", config.well_trained, kind="sanity",
            threshold_source="config.well_trained: the project's reading of 'well-trained' (fits its training set)",
            why="a check of the setting, not of the text: members below it are left out of this net's LE claims"))
        # The readings' pooled AUCs are over the members the verdicts are on: the well-trained ones.
        n_trained, le = int(trained.sum()), r["meas"]["le"]  # le: (seed, base, probe)
        le_trained = le[trained].reshape(-1, le.shape[-1])
        pooled = {}
        if n_trained:
            pooled["same"] = el.separation(le_trained, np.broadcast_to(r["same"], le.shape)[trained].reshape(le_trained.shape))
            if r["pair_tiers"] is not None:
                for pair, codes in TIER_CODES.items():
                    pooled[pair] = el.tier_separation(le_trained, np.tile(r["pair_tiers"], (n_trained, 1)), *codes)

        def pooled_auc(key: str) -> str:
            if key not in pooled:
                return "no well-trained seed, so no pooled AUC"
            sep = pooled[key]
            return f"pooled over the {n_trained} well-trained seed{'s' * (n_trained != 1)} the AUC is {sep.auc:.3f} [{sep.auc_low:.3f}, {sep.auc_high:.3f}] (95% base bootstrap)"

        net_claims = [claims.per_seed(
            f"{name}-locally-elastic", f"{name}: the trained network is locally elastic: same-class pairs have larger LE than "
            "other-class pairs (AUC of LE same vs other, per trained network)", r["auc_seed"][trained], ">", 0.5,
            kind="paper", source=elastic, threshold_source="0.5: no separation of same-class from other-class pairs",
            reading=pooled_auc("same"))]
        if r["tiers"] is not None:
            for pair, label in (("same_vs_similar", "same class above the similar class"),
                                ("similar_vs_dissimilar", "the similar class above the dissimilar class")):
                net_claims.append(claims.per_seed(
                    f"{name}-tiers-{pair.replace('_', '-')}", f"{name}: Figure 6's tiers, {label} (AUC of LE between the two tiers; "
                    "similar / dissimilar = nearest / farthest other class by the distance of the training class means)",
                    r["tier_auc_seed"][pair][trained], ">", 0.5, kind="paper", source=tiers_quote,
                    threshold_source="0.5: the two tiers not separated",
                    reading=f"class similarity from the inputs, not from LE; {pooled_auc(pair)}"))
        net_claims.append(claims.per_seed(
            f"{name}-beats-linear", f"{name}: the network separates classes more than the linear control (AUC network - AUC "
            "linear, per seed)", (r["auc_seed"] - r["lauc_seed"])[trained], ">", 0.0, kind="extension",
            threshold_source="0: the network no better than the control",
            why="the text sets networks against linear classifiers; the difference on the same inputs is the direct comparison"))
        if "infinite" in r:
            inf = r["infinite"]
            summary_nets[name]["infinite_width_kernel_rel_auc"] = inf["auc"]
            summary_nets[name]["kernel_rel_auc_per_seed"] = inf["auc_seed_trained"].tolist()
            net_claims.append(claims.per_seed(
                f"{name}-kernel-beyond-infinite-width", f"{name}: training makes the kernelized similarity separate the classes more "
                f"than the infinite-width NTK of the same architecture and initialisation does (the lazy limit, where the kernel "
                f"never moves): AUC same vs other class of the trained net's kernel_rel minus the infinite-width kernel's "
                f"({inf['auc']:.3f}), per seed", (inf["auc_seed_trained"] - inf["auc"])[trained], ">", 0.0, kind="extension",
                why="the kernelized similarity tends to the NTK (He & Su); the infinite-width NTK is fixed by the architecture and the "
                    "inputs, so class structure beyond it is what finite-width training added",
                threshold_source="0: no more separation than the fixed infinite-width kernel"))
        found += claims.leaving_out(net_claims, trained, f"not well-trained (training accuracy below {config.well_trained:g})")
        # The control is trained on its own; its claim is about every member.
        found.append(claims.per_seed(
            f"{name}-linear-control", f"{name}: the linear control shows no local elasticity (|AUC - 0.5| of its LE, per seed)",
            np.abs(r["lauc_seed"] - 0.5), "<=", config.control_band, kind="paper", source=linear,
            threshold_source="config.control_band: the project's band around no separation"))
        errs = [lim[f"median_rel_error_lr_over_{sc}"] for sc in (1, 10, 100)]
        found.append(claims.check(
            f"{name}-kernel-to-ntk", f"{name}: the kernelized similarity tends to the NTK as lr -> 0 (median relative error over "
            f"pairs at lr/100; errors at lr, lr/10, lr/100: {errs[0]:.1e}, {errs[1]:.1e}, {errs[2]:.1e})",
            errs[2] if errs[2] <= errs[0] else float("inf"), "<=", 1e-3, kind="sanity",
            threshold_source="float64 first-order Taylor remainder at lr/100 (the error falls in proportion to lr)",
            why="a first-order identity (z(w - lr g) = z(w) - lr Theta g + O(lr^2)); checks the step and the NTK code agree"))
    numbers = {"seeds": config.seeds, "nets": summary_nets}
    if neurashed is not None:
        found += _neurashed_claims(neurashed)
        numbers["neurashed"] = {rules: {"le_end_median_from_1a": dict(zip(nt.FIGURES12_TYPES, np.median(v["le"][:, -1, 0], 0).tolist())),
                                        "le_initial_median_from_1a": dict(zip(nt.FIGURES12_TYPES, np.median(v["le"][:, 0, 0], 0).tolist())),
                                        "le_end_median_matrix": np.median(v["le"][:, -1], 0).tolist()}
                                for rules, v in neurashed.items()}

    data_vars, coords = {}, {"seed": np.arange(config.seeds)}
    one = lambda long_name: {"long_name": long_name, "units": "1"}  # noqa: E731
    inputs = {"rbe": "16-bit strings (0/1)", "digits_cnn": "8x8 digit images (pixels / 16, 0..1)",
              "vgg": "12x12 generated faces (standardised by the training pixels' mean and std, grey replicated to 3 channels)"}
    for name, r in results.items():
        b, p, k = f"base_{name}", f"probe_{name}", f"logit_{name}"
        coords[b] = (b, np.arange(len(r["bases"])), one(f"{name}: base input, held-out, {config.bases_per_class} per class, class-major"))
        coords[p] = (p, np.arange(len(r["probes"])), one(f"{name}: probe input, held-out (not a base), {config.probes_per_class} per class, "
                                                          "class-major"))
        for prefix, meas in (("", r["meas"]), ("linear_", r["lmeas"])):
            who = (f"{name}'s linear control (z = W x on the flattened inputs, step lr = {config.linear_lr})" if prefix
                   else f"{name} (step lr = {r['lr']:g})")
            step = f"one plain SGD step at the base with its label (eval mode, not kept), {who}"
            nan = "NaN where the base's step is not resolved"
            for key, long_name in (("le", f"LE(x, x') of eq. (3.1), ||Delta z(probe)|| / ||Delta z(base)||, after {step}; {nan}"),
                                   ("kernel_rel", f"kernelized similarity -<Delta z(probe), g> / (lr |g|^2) over its value at the base itself, "
                                                  f"g = dL/dz(base), after {step}; {nan}"),
                                   ("kernel", f"kernelized similarity -<Delta z(probe), g> / (lr |g|^2), g = dL/dz(base), after {step}; {nan}")):
                data_vars[f"{prefix}{key}_{name}"] = (("seed", b, p), meas[key], one(long_name))
            data_vars[f"{prefix}logits_before_probe_{name}"] = (("seed", p, k), meas["logits_probe"], one(
                f"logits z(probe, w) of the trained {who}, before any step"))
            data_vars[f"{prefix}logit_change_probe_{name}"] = (("seed", b, p, k), meas["delta_probe"], one(
                f"Delta z(probe) = z(probe, w+) - z(probe, w) after {step}"))
            data_vars[f"{prefix}logits_after_probe_{name}"] = (("seed", b, p, k), meas["logits_probe"][:, None] + meas["delta_probe"], one(
                f"logits z(probe, w+) after {step}"))
            data_vars[f"{prefix}logits_before_base_{name}"] = (("seed", b, k), meas["logits_base"], one(
                f"logits z(base, w) of the trained {who}, before the step"))
            data_vars[f"{prefix}logit_change_base_{name}"] = (("seed", b, k), meas["delta_base"], one(
                f"Delta z(base) = z(base, w+) - z(base, w) after {step}"))
            data_vars[f"{prefix}logits_after_base_{name}"] = (("seed", b, k), meas["logits_base"] + meas["delta_base"], one(
                f"logits z(base, w+) after {step}"))
            data_vars[f"{prefix}loss_grad_base_{name}"] = (("seed", b, k), meas["grad"], one(
                f"loss gradient g = dL/dz at the base before the step, {who}"))
            data_vars[f"{prefix}resolved_base_{name}"] = (("seed", b), meas["resolved"].astype(np.int8), one(
                f"1 where the step at the base moved its own logits by more than 1e6 float64 epsilons of (|z(base)| + 1), {who} "
                "(0: left out, LE and kernel NaN)"))
        data_vars[f"same_class_{name}"] = ((b, p), r["same"].astype(np.int8), one(f"{name}: 1 where the base and the probe have the same label"))
        data_vars[f"label_{b}"] = (b, np.asarray(r["labels_base"]), one(f"{name}: class label of each base"))
        data_vars[f"label_{p}"] = (p, np.asarray(r["labels_probe"]), one(f"{name}: class label of each probe"))
        data_vars[f"input_{b}"] = ((b, *[f"{b}_dim{i}" for i in range(r["x_base"].ndim - 1)]), r["x_base"], one(
            f"{name}: each base input as the network reads it, {inputs[name]}"))
        data_vars[f"input_{p}"] = ((p, *[f"{p}_dim{i}" for i in range(r["x_probe"].ndim - 1)]), r["x_probe"], one(
            f"{name}: each probe input as the network reads it, {inputs[name]}"))
        if r["pair_tiers"] is not None:  # nets with at least three classes
            data_vars[f"tier_{name}"] = ((b, p), r["pair_tiers"], one(
                f"{name}: tier of the (base, probe) pair: 0 same class, 1 similar (the base class's nearest class mean of the training "
                "inputs), 2 dissimilar (its farthest), 3 other"))
            data_vars[f"class_mean_distance_{name}"] = ((f"class_{name}", f"class2_{name}"), r["tiers"].distance, one(
                f"{name}: Euclidean distance between two classes' means of the (flattened) training inputs"))
        data_vars[f"ntk_similarity_seed0_{name}"] = ((b, p), r["limit"]["ntk"], one(
            f"{name}, seed 0: the kernelized similarity's lr -> 0 limit g^T Theta(probe, base) g / |g|^2, empirical NTK Theta, "
            "g = dL/dz(base)"))
        data_vars[f"kernel_lr_over_10_seed0_{name}"] = ((b, p), r["limit"]["kernel_lr_over_10"], one(
            f"{name}, seed 0: kernelized similarity -<Delta z(probe), g> / (lr |g|^2) of a step of lr / 10 = {r['lr'] / 10:g}; "
            "NaN where that step is not resolved"))
        if "infinite" in r:
            data_vars[f"theta_infinite_{name}"] = ((f"point_{name}", f"point2_{name}"), r["infinite"]["theta"], one(
                f"{name}: infinite-width NTK of the architecture and initialisation over the probes, then the bases (shared by the outputs)"))
        data_vars[f"test_accuracy_{name}"] = ("seed", np.asarray(r["acc"]), one(
            f"{name}: accuracy of the trained network on the held-out inputs (bases and probes)"))
        data_vars[f"train_accuracy_{name}"] = ("seed", r["train_acc"], one(
            f"{name}: accuracy of the trained network on its whole training set (well-trained when at least {config.well_trained:g})"))
        data_vars[f"linear_test_accuracy_{name}"] = ("seed", np.asarray(r["lacc"]), one(
            f"{name}'s linear control: accuracy on the held-out inputs (bases and probes)"))
    if neurashed is not None:
        coords["neurashed_seed"] = ("neurashed_seed", np.arange(config.neurashed_seeds), one(
            "neurashed ensemble member (seed of its initial factors and epoch orders)"))
        coords["input_type"] = ("input_type", list(nt.FIGURES12_TYPES), {"long_name": "input type of the Figures 1-2 graph"})
        coords["neurashed_epoch"] = ("neurashed_epoch", neurashed["additive"]["epochs"], {
            "long_name": "neurashed: epochs of training done (each input type once per epoch) when the record was taken (0: initial factors)",
            "units": "epoch"})
        for rules, v in neurashed.items():
            what = f"neurashed ({rules} rules, Figures 1-2 graph)"
            data_vars[f"neurashed_le_{rules}"] = (("neurashed_seed", "neurashed_epoch", "base_type", "input_type"), v["le"], one(
                f"{what}: LE of eq. (3.1), ||Delta z(input type)|| / ||Delta z(base type)|| after one extra update at the base type "
                "(not kept)"))
            data_vars[f"neurashed_logits_{rules}"] = (("neurashed_seed", "neurashed_epoch", "input_type", "neurashed_class"), v["logits"], one(
                f"{what}: logits of each input type's first-level pattern"))
            data_vars[f"neurashed_logits_after_{rules}"] = (("neurashed_seed", "neurashed_epoch", "base_type", "input_type", "neurashed_class"),
                                                            v["logits_after"], one(
                f"{what}: logits of each input type after one extra update at the base type (not kept)"))
            data_vars[f"neurashed_diverged_at_{rules}"] = ("neurashed_seed", v["diverged_at"], {
                "long_name": f"{what}: first step whose update was non-finite (-1: none; {len(nt.FIGURES12_TYPES)} steps per epoch)", "units": "step"})
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        "le": "||z(x', w+) - z(x', w)|| / ||z(x, w+) - z(x, w)||, w+ = w - lr grad L(x, y), eval mode, step not kept",
        "kernel": "-<Delta z(x'), g> / (lr |g|^2), g = dL/dz(x); kernel_rel divides by its value at x' = x",
        "ntk_similarity": "g^T Theta(x', x) g / |g|^2 (jaxdyn.ntk.ntk)",
        "tiers": "0 same class, 1 similar (nearest class mean of the training inputs), 2 dissimilar (farthest), 3 other",
        "neurashed": "Figures 1-2 graph (tasks.neurashed.figures12); additive: g+ = x + c, g- = x, eta = 1; multiplicative: "
                     "g+ = 1.022^(11/4) x, g- = 1.022^(-1/4) x; LE of eq. (3.1) on the logits after one update at each base type",
        "lrs": [float(results[n]["lr"]) for n in results], "nets": list(results), "linear_lr": config.linear_lr,
    })
    ctx.stage("figures")
    figures = _figures(results)
    if any(r["tiers"] is not None for r in results.values()):
        figures["le_tiers"] = _tier_figure(results)
    if neurashed is not None:
        figures["neurashed_le"] = _neurashed_figure(neurashed)
    return Result(dataset=ds, claims=found, figures=figures, numbers=numbers)


def _unresolved_why(r, unresolved, z_base) -> dict:
    """Why bases were left out: how sure the network is of them and how small their loss gradient is."""
    g = np.linalg.norm(r["meas"]["grad"], axis=-1)  # (seed, base)
    if z_base.shape[-1] == 1:
        p_true = 1.0 / (1.0 + np.exp(-np.where(r["labels_base"][None] > 0.5, 1.0, -1.0) * z_base[..., 0]))
    else:
        zz = z_base - z_base.max(-1, keepdims=True)
        p_all = np.exp(zz) / np.exp(zz).sum(-1, keepdims=True)
        p_true = np.take_along_axis(p_all, np.broadcast_to(np.asarray(r["labels_base"], int)[None, :, None], (*p_all.shape[:2], 1)), -1)[..., 0]
    med = lambda x: float(np.median(x)) if x.size else float("nan")  # noqa: E731
    return {"reason": "the step at a base the network fits with near certainty (p of its class ~ 1, so dL/dz ~ 0) changes its "
                      "own logits by less than 1e6 float64 epsilons of their size: LE is then rounding noise",
            "median_grad_norm_unresolved": med(g[unresolved]), "median_grad_norm_resolved": med(g[~unresolved]),
            "median_p_true_class_unresolved": med(p_true[unresolved]), "median_p_true_class_resolved": med(p_true[~unresolved])}


# ----------------------------------------------------------------------------------------------
# Local elasticity inside neurashed (Figures 1-2)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NeurashedLE:
    """Observable: LE of eq. (3.1) on neurashed's logits after one update at each input type.

    Returns ``{"le": (P_base, P), "logits": (P, K), "logits_after": (P_base, P, K)}``: row b is one
    extra update of ``learner`` at input type b (not kept), column p the change of the logit vector
    at type p over the change at the base itself.
    """

    learner: nm.NeurashedLearner
    dims = {"le": ("base_type", "input_type"), "logits": ("input_type", "neurashed_class"),
            "logits_after": ("base_type", "input_type", "neurashed_class")}

    def __call__(self, snap):
        patterns = snap.data["patterns"]
        first, label = jnp.asarray(patterns.first), jnp.asarray(patterns.label)
        z0 = nm.logits(snap.state.graph, snap.params, first)

        def after(b):
            new = self.learner.update(snap.state, {"x": first[b][None], "label": label[b][None]})
            return nm.logits(snap.state.graph, new.amp, first)

        z1 = jax.vmap(after)(jnp.arange(first.shape[0]))
        change = jnp.linalg.norm(z1 - z0[None], axis=-1)  # (base, P)
        return {"le": change / jnp.diagonal(change)[:, None], "logits": z0, "logits_after": z1}


def _neurashed_le(config: LocalElasticityConfig, ctx) -> dict:
    """Trains the Figures 1-2 graph with both rule sets; LE over training (epochs) per seed."""
    built = nt.figures12()
    seeds = list(range(config.neurashed_seeds))
    learners = {"additive": nm.theorem1_learner(config.neurashed_c, dtype="float64"),
                "multiplicative": nm.NeurashedLearner(plus=nm.multiplicative(nt.FIGURE5_BASE ** nt.FIGURE5_PLUS_EXPONENT),
                                                      minus=nm.multiplicative(nt.FIGURE5_BASE ** nt.FIGURE5_MINUS_EXPONENT), dtype="float64")}
    out = {}
    num_types = len(nt.FIGURES12_TYPES)
    with jax.enable_x64(True):
        for rules, learner in learners.items():
            res = ctx.train(learner, nt.PatternSampler(max_batch=1, sampling="epoch"), seeds=seeds,
                            num_steps=num_types * config.neurashed_epochs, observables={"le": NeurashedLE(learner)},
                            record_every=num_types, data=nt.sampler_data(seeds, 1, num_patterns=num_types),
                            shared={"graph": built.graph, "patterns": built.patterns})
            out[rules] = {key: np.asarray(res.records[key]) for key in ("le", "logits", "logits_after")}
            out[rules]["epochs"] = res.times["time"] // num_types
            out[rules]["diverged_at"] = res.diverged_at
    return out


def _neurashed_claims(neurashed: dict) -> list:
    quote = claims.source("the impact of updating at a sample in Class 1a is most significant on Class 1b, less significant on "
                          "Class 2, and unnoticeable on Class 3", "section 3, 'Local elasticity' (Figure 2)")
    found = []
    for rules, kind in (("additive", "paper"), ("multiplicative", "extension")):
        le = neurashed[rules]["le"]  # (seed, epoch, base, type)
        end, start = le[:, -1, 0], le[:, 0, 0]  # from base 1a
        include = neurashed[rules]["diverged_at"] < 0
        extra = {} if kind == "paper" else {"why": "the same ordering under the appendix's multiplicative rules, which shrink the "
                                                   "factors of nodes that do not fire: whether 'unnoticeable' survives g- < x"}
        src = {"source": quote} if kind == "paper" else {}
        what = "Theorem 1's rules g+ = x + c, g- = x" if rules == "additive" else "multiplicative rules 1.022^(11/4) x, 1.022^(-1/4) x"
        found.append(claims.per_seed(
            f"neurashed-{rules}-1b-above-2", f"LE inside neurashed (Figures 1-2 graph, {what}): an update at 1a moves 1b more than "
            "class 2 (LE(1a, 1b) - LE(1a, 2) at the end of training)", end[:, 1] - end[:, 2], ">", 0.0, kind=kind,
            threshold_source="0: the two equally moved", initial=start[:, 1] - start[:, 2], include=include, **src, **extra))
        found.append(claims.per_seed(
            f"neurashed-{rules}-2-above-3", f"LE inside neurashed ({what}): an update at 1a moves class 2 more than class 3 "
            "(LE(1a, 2) - LE(1a, 3) at the end of training)", end[:, 2] - end[:, 3], ">", 0.0, kind=kind,
            threshold_source="0: the two equally moved", initial=start[:, 2] - start[:, 3], include=include, **src, **extra))
        found.append(claims.per_seed(
            f"neurashed-{rules}-3-unnoticeable", f"LE inside neurashed ({what}): the impact on class 3 is unnoticeable (LE(1a, 3) "
            "against 1% of the base's own change)", end[:, 3], "<=", 0.01, kind=kind, initial=start[:, 3], include=include,
            threshold_source="1%: the project's reading of 'unnoticeable'", **src, **extra))
    return found


def _tier_figure(results):
    nets = [n for n, r in results.items() if r["tiers"] is not None]
    fig, axes = plots.figure(len(nets), 3, width=3.3, height=2.6)
    for i, name in enumerate(nets):
        r = results[name]
        le = r["meas"]["le"]  # (seed, base, probe)
        for j, c in enumerate(np.unique(r["labels_base"])[:3]):
            ax = axes[i, j]
            rows = r["labels_base"] == c
            v = le[:, rows]
            pt = np.broadcast_to(r["pair_tiers"][rows], v.shape)
            ok = np.isfinite(v) & (v > 0)
            if not ok.any():
                continue
            lv = np.log10(np.where(ok, v, 1.0))
            bins = np.linspace(np.percentile(lv[ok], 0.5), np.percentile(lv[ok], 99.5), 25)
            for code, label, col in ((el.TIER_SAME, f"class {c} (same)", 0), (el.TIER_SIMILAR, f"class {r['tiers'].similar[c]} (similar)", 1),
                                     (el.TIER_DISSIMILAR, f"class {r['tiers'].dissimilar[c]} (dissimilar)", 2)):
                m = ok & (pt == code)
                if m.any():
                    ax.hist(lv[m], bins=bins, density=True, alpha=0.5, color=plots.color(col), label=label)
            ax.set_title(f"{name}: base class {c}")
            ax.set_xlabel("log10 LE(x, x')")
            ax.set_ylabel("density")
            ax.legend(loc="upper left", fontsize=6)
    return Figure(fig, "Figure 6's layout: LE histograms per base class for test inputs of the same, the similar (nearest class "
                       "mean) and the dissimilar (farthest class mean) class")


def _neurashed_figure(neurashed):
    fig, axes = plots.figure(1, 2, width=4.2, height=3.0)
    for j, (rules, v) in enumerate(neurashed.items()):
        ax = axes[0, j]
        epochs = v["epochs"]
        for k, name in enumerate(nt.FIGURES12_TYPES[1:], start=1):
            plots.median_band(ax, epochs, v["le"][:, :, 0, k], color=plots.color(k), marker="o-", markersize=2, label=f"LE(1a, {name})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("LE from an update at 1a")
        ax.set_title(f"neurashed (Figures 1-2), {rules} rules\nmedian and min-max over seeds")
        ax.legend(loc="best", fontsize=7)
    return Figure(fig, "LE of eq. (3.1) inside neurashed after an update at type 1a, for 1b, class 2 and class 3, over training")


def _figures(results) -> dict:
    names = list(results)
    fig, axes = plots.figure(3, len(names), width=3.5, height=2.7)
    for j, name in enumerate(names):
        r = results[name]
        for i, (meas, sep, label) in enumerate(((r["meas"], r["sep"], "network"), (r["lmeas"], r["lsep"], "linear control"))):
            ax = axes[i, j]
            le = meas["le"]
            same = np.broadcast_to(r["same"], le.shape)
            ok = np.isfinite(le)  # unresolved bases are left out
            v = np.log10(np.maximum(np.where(ok, le, 1.0), 1e-12))
            bins = np.linspace(np.percentile(v[ok], 0.5), np.percentile(v[ok], 99.5), 30)
            ax.hist(v[same & ok], bins=bins, density=True, alpha=0.55, color=plots.color(0), label="same class")
            ax.hist(v[~same & ok], bins=bins, density=True, alpha=0.55, color=plots.color(1), label="other classes")
            for med, c in ((sep["le"].median_same, 0), (sep["le"].median_other, 1)):
                ax.axvline(np.log10(med), color=plots.color(c), linestyle="--", linewidth=1)
            ax.set_xlabel("log10 LE(x, x')  (dashed: medians)")
            ax.set_ylabel("density")
            ax.set_title(f"{name}, {label}\nAUC = {sep['le'].auc:.2f} [{sep['le'].auc_low:.2f}, {sep['le'].auc_high:.2f}]")
            if i == 0 and j == 0:
                ax.legend(loc="upper left", fontsize=7)
        ax = axes[2, j]
        lim = r["limit"]
        ref = lim["ntk"].ravel()
        ax.plot([ref.min(), ref.max()], [ref.min(), ref.max()], "-", color="0.3", label="NTK limit (theory)")
        ax.plot(ref, lim["kernel_lr"].ravel(), "o", color=plots.color(2), markerfacecolor="none", markersize=3,
                label=f"lr = {r['lr']:g}: median rel. err {lim['median_rel_error_lr_over_1']:.1e}")
        ax.plot(ref, lim["kernel_lr_over_10"].ravel(), "x", color=plots.color(3), markersize=3,
                label=f"lr/10: median rel. err {lim['median_rel_error_lr_over_10']:.1e}")
        ax.set_xlabel("NTK along g: g^T Theta(x', x) g / |g|^2")
        ax.set_ylabel("kernelized similarity")
        ax.set_title(f"{name}: kernel vs NTK, seed 0")
        ax.legend(loc="upper left", fontsize=7)
    return {"local_elasticity": Figure(fig, "LE histograms, same class vs other classes, network (top) and linear control "
                                             "(middle) per net; bottom: kernelized similarity vs its NTK limit")}


EXPERIMENT = Experiment(
    name="local-elasticity",
    work="Su, He & Su",
    description="LE(x, x') of eq. 3.1 on well-trained RBE net, digits CNN and dense-sample VGG vs a linear control: Figure 6's tiers, kernel vs NTK and the infinite-width NTK, LE inside neurashed",
    config=LocalElasticityConfig,
    run=run,
)
