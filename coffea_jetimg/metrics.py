"""Tagger metrics in one place: ROC, AUC, 1/ε_B at ε_S, intervals, JSD, Pearson maps, ensembles.

Pure numpy (``scipy.special`` for the χ² quantiles of :func:`poisson_interval`); no histogram
library, no torch. Training (per-jet scores), the studies (histogram counts), the processor
report and the analysis scripts all compute their numbers here, so a table and a plot of the same
quantity agree.

Conventions
-----------
The cut is ``score >= t``. A :class:`Roc` lists thresholds in ascending order, from the lowest
(every jet passes: ε = 1) to above the highest score (ε = 0). From histogram counts the
thresholds are the bin edges; from per-jet scores they are the distinct score values plus
``+inf``. Efficiencies may be weighted: counts are sums of weights and their variances sums of
squared weights (for unweighted counts the variance equals the count).

A working point at signal efficiency ε_S (:func:`working_point`) is interpolated linearly
between the two ROC points that bracket it, each the lowest-ε_B point at its ε_S (the mixture
of two cuts; any count that passes, such as a mass histogram, interpolates with the same
weights). The rejection is 1/ε_B there; when no background passes it is infinite and reported as
a lower limit, the background count (the rejection one passing jet would give).

Binomial uncertainties of a weighted efficiency ε = P / (P + F):
σ²(ε) = [(1 - ε)² V_P + ε² V_F] / (P + F)², with V the variances; for unit weights this is
ε(1 - ε)/N.

The interval conventions follow scikit-hep/hist ``hist.intervals``: central intervals of
``coverage`` (default 68.27 %, ±1σ), the Garwood interval for Poisson counts, scaled by
variance/value for weighted counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ONE_SIGMA",
    "Roc",
    "WorkingPoint",
    "roc_from_counts",
    "roc_from_scores",
    "auc",
    "passing",
    "working_point",
    "rejection_at",
    "poisson_interval",
    "percentile_interval",
    "bootstrap_resamples",
    "bootstrap",
    "bootstrap_counts",
    "jsd",
    "pearson_map",
    "ensemble_mean",
]

ONE_SIGMA: float = math.erf(1 / math.sqrt(2))
"""Coverage of a ±1σ Gaussian interval (0.6827), the default coverage of every interval here."""


# ------------------------------------------------------------------------------------ ROC

@dataclass(frozen=True)
class Roc:
    """A ROC curve as pass counts per threshold.

    Attributes
    ----------
    thresholds : ndarray (k,)
        Cut values, ascending; the cut is ``score >= threshold``.
    sig_pass, bkg_pass : ndarray (k,)
        Sum of signal / background weights passing each cut (non-increasing).
    sig_pass_var, bkg_pass_var : ndarray (k,)
        Their variances (sums of squared weights).
    n_s, n_b : float
        Total signal / background weight (``sig_pass[0]`` / ``bkg_pass[0]`` when the lowest
        threshold keeps everything).
    var_s, var_b : float
        Variances of the totals.
    """

    thresholds: NDArray[np.float64]
    sig_pass: NDArray[np.float64]
    bkg_pass: NDArray[np.float64]
    sig_pass_var: NDArray[np.float64]
    bkg_pass_var: NDArray[np.float64]
    n_s: float
    n_b: float
    var_s: float
    var_b: float

    @property
    def eff_s(self) -> NDArray[np.float64]:
        """Signal efficiency per threshold (NaN when there is no signal)."""
        return _ratio(self.sig_pass, self.n_s)

    @property
    def eff_b(self) -> NDArray[np.float64]:
        """Background efficiency per threshold (NaN when there is no background)."""
        return _ratio(self.bkg_pass, self.n_b)

    @property
    def err_s(self) -> NDArray[np.float64]:
        """Binomial uncertainty of :attr:`eff_s`."""
        return _eff_err(self.sig_pass, self.sig_pass_var, self.n_s, self.var_s)

    @property
    def err_b(self) -> NDArray[np.float64]:
        """Binomial uncertainty of :attr:`eff_b`."""
        return _eff_err(self.bkg_pass, self.bkg_pass_var, self.n_b, self.var_b)

    @property
    def rejection(self) -> NDArray[np.float64]:
        """1/ε_B per threshold (``inf`` where no background passes)."""
        eb = self.eff_b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(eb > 0, 1.0 / eb, np.where(np.isnan(eb), np.nan, np.inf))

    @property
    def rejection_err(self) -> NDArray[np.float64]:
        """σ(ε_B)/ε_B² per threshold (NaN where no background passes)."""
        eb = self.eff_b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(eb > 0, self.err_b / eb**2, np.nan)

    @property
    def n_b_effective(self) -> float:
        """Effective number of background jets, n_b² / var_b (= n_b for unit weights)."""
        return float(self.n_b**2 / self.var_b) if self.var_b > 0 else 0.0


def _ratio(num: NDArray[np.float64], den: float) -> NDArray[np.float64]:
    if den > 0:
        return np.clip(num / den, 0.0, 1.0)
    return np.full(num.shape, np.nan)


def _eff_err(p: NDArray[np.float64], vp: NDArray[np.float64], n: float, vn: float) -> NDArray[np.float64]:
    if n <= 0:
        return np.full(p.shape, np.nan)
    e = np.clip(p / n, 0.0, 1.0)
    vf = np.clip(vn - vp, 0.0, None)
    return np.sqrt(np.clip((1 - e) ** 2 * vp + e**2 * vf, 0.0, None)) / n


def passing(counts: ArrayLike) -> NDArray[np.float64]:
    """Content passing each cut at the bin edges: along axis 0, the sum of bins ``>= k`` for k = 0..n.

    ``counts`` has the score bins on axis 0 (any further axes, e.g. mass, are kept); the result
    has ``n + 1`` rows, the last one zero. A :class:`WorkingPoint` interpolates these rows
    (:meth:`WorkingPoint.mix`).
    """
    a = np.asarray(counts, dtype=np.float64)
    return np.concatenate([np.cumsum(a[::-1], axis=0)[::-1], np.zeros((1,) + a.shape[1:])], axis=0)


def _as_1d(name: str, a: ArrayLike, allow_inf: bool = False) -> NDArray[np.float64]:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    if np.any(np.isnan(arr)) or (not allow_inf and not np.all(np.isfinite(arr))):
        raise ValueError(f"{name}: contains {int((~np.isfinite(arr)).sum())} non-finite value(s)")
    return arr


def roc_from_counts(sig_counts: ArrayLike, bkg_counts: ArrayLike, edges: ArrayLike | None = None,
                    sig_variances: ArrayLike | None = None, bkg_variances: ArrayLike | None = None) -> Roc:
    """ROC of the cuts at the bin edges of a score histogram.

    Parameters
    ----------
    sig_counts, bkg_counts : array_like (n,)
        Signal / background content of each score bin (sums of weights; no flow bins).
    edges : array_like (n + 1,), optional
        The bin edges (default ``0..n``): threshold ``edges[k]`` keeps bins ``k..n-1``.
    sig_variances, bkg_variances : array_like (n,), optional
        Variances of the bin contents (sums of squared weights); by default equal to the counts
        (unweighted, Poisson).

    Returns
    -------
    Roc
        ``n + 1`` thresholds, from ``edges[0]`` (ε = 1) to ``edges[n]`` (ε = 0).
    """
    s = _as_1d("sig_counts", sig_counts)
    b = _as_1d("bkg_counts", bkg_counts)
    if s.shape != b.shape:
        raise ValueError(f"sig_counts and bkg_counts differ in length: {s.shape} vs {b.shape}")
    vs = s if sig_variances is None else _as_1d("sig_variances", sig_variances)
    vb = b if bkg_variances is None else _as_1d("bkg_variances", bkg_variances)
    if vs.shape != s.shape or vb.shape != b.shape:
        raise ValueError("variances must have the shape of their counts")
    t = np.arange(len(s) + 1, dtype=np.float64) if edges is None else _as_1d("edges", edges, allow_inf=True)
    if t.shape != (len(s) + 1,):
        raise ValueError(f"edges: expected {len(s) + 1} values for {len(s)} bins, got {t.shape[0]}")
    ts, tb, tvs, tvb = passing(s), passing(b), passing(vs), passing(vb)
    return Roc(t, ts, tb, tvs, tvb, float(ts[0]), float(tb[0]), float(tvs[0]), float(tvb[0]))


def roc_from_scores(scores: ArrayLike, is_signal: ArrayLike, weights: ArrayLike | None = None) -> Roc:
    """ROC of the cuts at every distinct score value (per-jet scores).

    Parameters
    ----------
    scores : array_like (n,)
        Tagger output per jet (only the order matters).
    is_signal : array_like (n,)
        True (or 1) for signal jets, False (0) for background.
    weights : array_like (n,), optional
        Per-jet weights (default 1).

    Returns
    -------
    Roc
        Thresholds: the distinct scores ascending, then ``+inf`` (ε = 0). Identical to
        :func:`roc_from_counts` of a histogram whose bins each hold at most one distinct score.
    """
    s = _as_1d("scores", scores)
    y = np.asarray(is_signal)
    if y.shape != s.shape:
        raise ValueError(f"is_signal has shape {y.shape}, scores {s.shape}")
    y = y.astype(bool)
    w = np.ones_like(s) if weights is None else _as_1d("weights", weights)
    if w.shape != s.shape:
        raise ValueError(f"weights has shape {w.shape}, scores {s.shape}")
    uniq, inv = np.unique(s, return_inverse=True)
    n = len(uniq)
    sc = np.bincount(inv[y], weights=w[y], minlength=n)
    bc = np.bincount(inv[~y], weights=w[~y], minlength=n)
    vs = np.bincount(inv[y], weights=w[y] ** 2, minlength=n)
    vb = np.bincount(inv[~y], weights=w[~y] ** 2, minlength=n)
    return roc_from_counts(sc, bc, np.concatenate([uniq, [np.inf]]), vs, vb)


def auc(roc: Roc) -> float:
    """Area under ε_S(ε_B) by trapezoids between thresholds.

    1 for a perfect separator, 0.5 for identical distributions (ties count one half: the
    Mann-Whitney statistic). NaN without signal or background.
    """
    es, eb = roc.eff_s, roc.eff_b
    if not (np.all(np.isfinite(es)) and np.all(np.isfinite(eb))):
        return float("nan")
    # thresholds ascending: both efficiencies fall, so ε_B runs from 1 down to 0
    return float(np.sum(-np.diff(eb) * (es[1:] + es[:-1]) / 2))


# ---------------------------------------------------------------------- working points

@dataclass(frozen=True)
class WorkingPoint:
    """The ROC interpolated at a signal efficiency.

    Any quantity ``T`` tabulated per threshold (pass counts, a passing mass histogram) is
    ``(1 - weight) * T[index_low] + weight * T[index_high]`` at this working point.

    Attributes
    ----------
    eff_s : float
        The requested signal efficiency.
    eff_b : float
        Interpolated background efficiency (NaN when undefined).
    rejection : float
        1/ε_B (``inf`` when no background passes).
    threshold : float
        The interpolated cut value (for display).
    index_low, index_high : int
        Thresholds mixed (``index_low <= index_high``).
    weight : float
        Weight of ``index_high``.
    bkg_pass, bkg_pass_var : float
        Interpolated background passing weight and its variance.
    n_b : float
        Total background weight.
    interval : tuple of float
        Central ``coverage`` interval of the rejection from the Poisson interval of the passing
        background (the working point's cut held fixed); ``(lower_limit, inf)`` when none passes.
    lower_limit : float or None
        When no background passes: the rejection one passing jet would give, the effective
        number of background jets (:attr:`Roc.n_b_effective`; ``n_b`` for unit weights), to
        print as "> lower_limit". ``None`` otherwise.
    """

    eff_s: float
    eff_b: float
    rejection: float
    threshold: float
    index_low: int
    index_high: int
    weight: float
    bkg_pass: float
    bkg_pass_var: float
    n_b: float
    interval: tuple[float, float]
    lower_limit: float | None

    def mix(self, per_threshold: ArrayLike) -> NDArray[np.float64]:
        """Interpolate a per-threshold quantity (first axis = thresholds) at this point."""
        a = np.asarray(per_threshold, dtype=np.float64)
        return (1 - self.weight) * a[self.index_low] + self.weight * a[self.index_high]


def working_point(roc: Roc, eff_s: float, coverage: float = ONE_SIGMA) -> WorkingPoint:
    """Interpolate ``roc`` at signal efficiency ``eff_s`` (the one computation of 1/ε_B at ε_S).

    Between the two ROC points bracketing ``eff_s``, each the lowest-ε_B point among the
    thresholds with its ε_S, ε_B is linear in ε_S (the mixture of the two cuts).

    Parameters
    ----------
    roc : Roc
    eff_s : float
        Target signal efficiency in [0, 1].
    coverage : float
        Coverage of :attr:`WorkingPoint.interval`.

    Returns
    -------
    WorkingPoint
        With NaN efficiencies/rejection when the ROC has no signal or no background.
    """
    if not 0.0 <= eff_s <= 1.0:
        raise ValueError(f"eff_s must be in [0, 1], got {eff_s}")
    es, eb = roc.eff_s, roc.eff_b
    nan = float("nan")
    if not (np.all(np.isfinite(es)) and np.all(np.isfinite(eb))) or len(es) < 2:
        return WorkingPoint(eff_s, nan, nan, nan, 0, 0, 0.0, nan, nan, roc.n_b, (nan, nan), None)
    # per distinct ε_S, the last threshold having it (ε_B non-increasing: the lowest ε_B)
    u, first = np.unique(es[::-1], return_index=True)  # reversed: ascending ε_S ~ descending index
    best = len(es) - 1 - first  # reversed array's first occurrence = the original's last one
    j = min(int(np.searchsorted(u, eff_s, side="left")), len(u) - 1)  # u runs from 0 to 1
    if u[j] == eff_s or j == 0:
        lo = hi = int(best[j])
        w = 0.0
    else:
        lo, hi = int(best[j]), int(best[j - 1])  # u[j-1] < eff_s < u[j]; higher ε_S at the lower index
        w = float((u[j] - eff_s) / (u[j] - u[j - 1]))
    mix = lambda a: float((1 - w) * a[lo] + w * a[hi])  # noqa: E731
    p, vp = mix(roc.bkg_pass), mix(roc.bkg_pass_var)
    thr = roc.thresholds
    t = float(thr[lo]) if w == 0 or not np.isfinite(thr[hi]) else mix(thr)
    e_b = p / roc.n_b
    if p > 0:
        rej = 1.0 / e_b
        lo_c, hi_c = poisson_interval([p], [vp], coverage)[:, 0]
        interval = (roc.n_b / hi_c, roc.n_b / lo_c if lo_c > 0 else math.inf)
        limit = None
    else:
        rej = math.inf
        limit = roc.n_b_effective  # n_b / (Σw²/Σw): one passing jet of the weight-weighted mean weight
        interval = (limit, math.inf)
    return WorkingPoint(eff_s, e_b, rej, t, lo, hi, w, p, vp, roc.n_b, interval, limit)


def rejection_at(roc: Roc, eff_s: float) -> float:
    """1/ε_B at signal efficiency ``eff_s`` (:func:`working_point`'s ``rejection``)."""
    return working_point(roc, eff_s).rejection


# ----------------------------------------------------------------------------- intervals

def poisson_interval(values: ArrayLike, variances: ArrayLike | None = None,
                     coverage: float = ONE_SIGMA) -> NDArray[np.float64]:
    """Garwood (frequentist, central) interval of Poisson counts, as ``hist.intervals``.

    Parameters
    ----------
    values : array_like
        Counts (sums of weights).
    variances : array_like, optional
        Sums of squared weights. Weighted counts are scaled to equivalent unweighted counts
        ``values²/variances``, the interval computed and scaled back.
    coverage : float
        Central coverage (default ±1σ).

    Returns
    -------
    ndarray (2, ...)
        Lower and upper bounds (lower 0 for a zero count).
    """
    from scipy.special import gammaincinv

    v = np.asarray(values, dtype=np.float64)
    if variances is None:
        scale = np.ones_like(v)
    else:
        var = np.asarray(variances, dtype=np.float64)
        scale = np.ones_like(v)
        ok = np.isfinite(v) & (v > 0) & (var > 0)
        np.divide(var, v, out=scale, where=ok)
    counts = v / scale
    a_lo, a_hi = (1 - coverage) / 2, (1 + coverage) / 2
    with np.errstate(invalid="ignore"):
        lo = np.where(counts > 0, gammaincinv(np.where(counts > 0, counts, 1.0), a_lo), 0.0)
        hi = gammaincinv(counts + 1.0, a_hi)
    return np.stack([scale * lo, scale * hi])


def percentile_interval(samples: ArrayLike, coverage: float = ONE_SIGMA) -> tuple[float, float]:
    """Central ``coverage`` percentile interval of bootstrap samples (``inf`` allowed).

    Linear interpolation between order statistics, as ``numpy.percentile``; a bound that falls
    on or next to an infinite sample is infinite (no NaN from ``inf - inf``). NaN samples are
    dropped.
    """
    v = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))

    def q(p: float) -> float:
        pos = p * (v.size - 1)
        i, f = int(math.floor(pos)), pos - math.floor(pos)
        a, b = v[i], v[min(i + 1, v.size - 1)]
        if f == 0:
            return float(a)
        if not (np.isfinite(a) and np.isfinite(b)):
            return float(b if np.isinf(b) else a)
        return float(a + f * (b - a))

    return (q((1 - coverage) / 2), q((1 + coverage) / 2))


def bootstrap_resamples(is_signal: ArrayLike, n_boot: int = 300, seed: int = 0) -> list[NDArray[np.intp]]:
    """Stratified bootstrap resamples: signal and background jets resampled separately.

    Each resample is an index array into the jets: ``n_signal`` signal indices drawn with
    replacement, then ``n_background`` background indices. Use the same resamples for several
    models to get paired intervals (e.g. of rejection ratios).

    Parameters
    ----------
    is_signal : array_like of bool (n,)
    n_boot : int
        Number of resamples.
    seed : int
        Seed of ``numpy.random.default_rng``.
    """
    y = np.asarray(is_signal).astype(bool)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    i_s, i_b = np.flatnonzero(y), np.flatnonzero(~y)
    if i_s.size == 0 or i_b.size == 0:
        raise ValueError(f"bootstrap needs signal and background jets, got {i_s.size} and {i_b.size}")
    return [np.concatenate([rng.choice(i_s, i_s.size), rng.choice(i_b, i_b.size)]) for _ in range(n_boot)]


def bootstrap(statistic: Callable[[NDArray[np.intp]], float], resamples: Sequence[NDArray[np.intp]],
              coverage: float = ONE_SIGMA) -> tuple[NDArray[np.float64], tuple[float, float]]:
    """Evaluate ``statistic(indices)`` on every resample.

    Parameters
    ----------
    statistic : callable
        Maps an index array (one resample) to a number, e.g.
        ``lambda i: rejection_at(roc_from_scores(s[i], y[i]), 0.5)``.
    resamples : sequence of index arrays
        From :func:`bootstrap_resamples`.
    coverage : float
        Coverage of the returned interval.

    Returns
    -------
    samples : ndarray (n_boot,)
    interval : tuple of float
        :func:`percentile_interval` of the samples.
    """
    samples = np.array([float(statistic(idx)) for idx in resamples], dtype=np.float64)
    return samples, percentile_interval(samples, coverage)


def bootstrap_counts(statistic: Callable[[NDArray[np.float64], NDArray[np.float64]], float],
                     sig_counts: ArrayLike, bkg_counts: ArrayLike, sig_variances: ArrayLike | None = None,
                     bkg_variances: ArrayLike | None = None, n_boot: int = 300, seed: int = 0,
                     coverage: float = ONE_SIGMA) -> tuple[NDArray[np.float64], tuple[float, float]]:
    """Poisson bootstrap of a statistic of two histograms (the studies' intervals, from counts).

    The per-jet bootstrap (:func:`bootstrap_resamples`) needs the jets; a merged histogram has
    only bin counts. Resampling each bin as Poisson(count) is the bootstrap of a Poisson-sized
    sample, and for N jets it agrees with the fixed-N resampling to O(1/N). Weighted bins are
    resampled in effective counts n_eff = value² / variance, scaled back by variance / value.

    Parameters
    ----------
    statistic : callable
        ``statistic(sig_counts, bkg_counts) -> float``, e.g.
        ``lambda s, b: auc(roc_from_counts(s, b))``.
    sig_counts, bkg_counts : array_like (n,)
        Bin contents (sums of weights).
    sig_variances, bkg_variances : array_like (n,), optional
        Bin variances (sums of squared weights); default the counts (unweighted).
    n_boot, seed, coverage :
        Number of resamples, seed of ``numpy.random.default_rng``, coverage of the interval.

    Returns
    -------
    samples : ndarray (n_boot,)
    interval : tuple of float
        :func:`percentile_interval` of the samples.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    pairs = []
    for name, c, v in (("sig", sig_counts, sig_variances), ("bkg", bkg_counts, bkg_variances)):
        c = _as_1d(f"{name}_counts", c)
        v = c if v is None else _as_1d(f"{name}_variances", v)
        scale = np.divide(v, c, out=np.ones_like(c), where=c > 0)
        pairs.append((np.divide(c, scale, out=np.zeros_like(c), where=scale > 0), scale))
    (ns, ks), (nb, kb) = pairs
    def draw(n: NDArray[np.float64], k: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(rng.poisson(n), np.float64) * k

    samples = np.array([float(statistic(draw(ns, ks), draw(nb, kb))) for _ in range(n_boot)])
    return samples, percentile_interval(samples, coverage)


# --------------------------------------------------------------------------- shapes

def jsd(p: ArrayLike, q: ArrayLike, base: float = 2.0) -> float:
    """Jensen-Shannon divergence of two histograms (each normalised here).

    0 for identical shapes, symmetric, at most 1 in bits (``base=2``, the default). NaN when
    either histogram is empty.
    """
    a = np.asarray(p, dtype=np.float64).ravel()
    b = np.asarray(q, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"jsd: histograms differ in size ({a.size} vs {b.size})")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("jsd: negative bin contents")
    if a.sum() <= 0 or b.sum() <= 0:
        return float("nan")
    a = a / a.sum()
    b = b / b.sum()
    m = 0.5 * (a + b)

    def kl(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log(x[nz] / y[nz])))

    return max(0.0, 0.5 * (kl(a, m) + kl(b, m)) / math.log(base))


def pearson_map(n: ArrayLike, sum_x: ArrayLike, sum_x2: ArrayLike, sum_y: ArrayLike, sum_y2: ArrayLike,
                sum_xy: ArrayLike) -> NDArray[np.float64]:
    """Per-pixel Pearson correlation from summed moments (mergeable over chunks by addition).

    Parameters
    ----------
    n : array_like
        Number of jets (scalar or broadcastable).
    sum_x, sum_x2 : array_like
        Σx and Σx² per pixel (the maps).
    sum_y, sum_y2 : array_like
        Σy and Σy² of the score (scalars or broadcastable).
    sum_xy : array_like
        Σxy per pixel.

    Returns
    -------
    ndarray
        r in [-1, 1]; NaN where a variance is zero (a constant pixel or score).
    """
    nn = np.asarray(n, dtype=np.float64)
    sx, sx2, sy, sy2, sxy = (np.asarray(a, dtype=np.float64) for a in (sum_x, sum_x2, sum_y, sum_y2, sum_xy))
    cov = nn * sxy - sx * sy
    vx = nn * sx2 - sx**2
    vy = nn * sy2 - sy**2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt(vx * vy)
    r = np.where((vx > 1e-12 * np.maximum(nn * sx2, 1e-300)) & (vy > 0), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def ensemble_mean(probabilities: Sequence[ArrayLike]) -> NDArray[np.float64]:
    """Mean of the members' class probabilities (an ensemble's output).

    Parameters
    ----------
    probabilities : sequence of array_like, each (n_jets,) or (n_jets, n_classes)
        One per member, all of one shape.

    Returns
    -------
    ndarray
        The element-wise mean, of the members' shape.
    """
    arrs = [np.asarray(p, dtype=np.float64) for p in probabilities]
    if len(arrs) < 1:
        raise ValueError("ensemble_mean needs at least one member")
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members disagree in shape: {sorted(shapes)}")
    return np.mean(arrs, axis=0)
