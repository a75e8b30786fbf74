"""Scoring jets with taggers: the per-jet table a tagging processor histograms.

:func:`jet_table` selects jets, builds each distinct network input once through an
:class:`~coffea_jetimg.inputs.InputPlan`, scores them with every tagger (and ensemble) and returns
one row per selected jet; :data:`JET_VARIABLES` declares, once, the per-jet variables of the score
histograms (their axes, values and the columns they read). Library functions, so that a test or an
analysis can call them without a processor.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import awkward as ak
import hist
import numpy as np

from . import axes as A
from ._bridge import fields_of
from ._constituents import constituents
from .inputs import InputPlan, input_from_spec
from .metrics import ensemble_mean
from .selection import DEFAULT_SELECTION, OTHER, TRUTH_NAMES, TruthSource, select_jets
from .systematics import DIRECTIONS, EventWeights, JetResolution, JetScale, Variation, WeightVariation

if TYPE_CHECKING:  # pragma: no cover
    from .inference import Tagger
    from .stored_taggers import StoredTagger

__all__ = ["JetVariable", "JET_VARIABLES", "DEFAULT_JET_AXES", "jet_variables", "DEFAULT_AXES", "jet_table",
           "pixel_records", "parse_ensembles", "check_ensembles", "empty_table", "add_pixel_sums", "mass_field",
           "SCORE_MAX"]

SCORE_MAX = np.nextafter(np.float32(1.0), np.float32(0.0))


def mass_field(jet_fields: Iterable[str]) -> str:
    """The jets' mass field: ``msoftdrop`` when the jets have it, else ``mass``."""
    return "msoftdrop" if "msoftdrop" in jet_fields else "mass"


def _npv(events: ak.Array, jets: str, mask: ak.Array, flat: ak.Array) -> Any:
    if "PV" in fields_of(events) and "npvs" in fields_of(events.PV):
        return ak.flatten(ak.broadcast_arrays(events.PV.npvs, events[jets].pt)[0][mask], axis=1)
    return np.full(len(flat), -1.0)


@dataclass(frozen=True)
class JetVariable:
    """One per-jet variable of the score histograms: its axis, its value and the columns it reads.

    ``binning`` is a list of edges (variable axis) or ``(bins, lo, hi)`` (regular axis);
    ``JetTaggingProcessor(axes={binning_key: ...})`` overrides it. ``value(events, jets, mask,
    flat_jets)`` gives the selected jets' values; ``reads(jet_fields)`` the ``(collection, field)``
    pairs that needs. ``default``: an axis of the score histograms unless the processor's
    ``jet_axes`` says otherwise (every axis multiplies the histogram's size: class × 40 score
    bins × pT × mass is ~56k bins, × |η| × n PV ~1.2M, ~19 MB per model and chunk to merge).
    """

    name: str
    binning_key: str
    binning: tuple[Any, ...] | list[float]
    label: Callable[[list[str]], str]
    value: Callable[..., Any]
    reads: Callable[[list[str]], set[Any]]
    flow: bool = True
    default: bool = True

    def axis(self, binning: tuple[Any, ...] | list[float],
             jet_fields: list[str]) -> hist.axis.Regular | hist.axis.Variable:
        """The histogram axis of this variable with ``binning`` (its label from ``jet_fields``)."""
        if isinstance(binning, tuple):
            return hist.axis.Regular(*binning, name=self.name, label=self.label(jet_fields), flow=self.flow)
        return hist.axis.Variable(binning, name=self.name, label=self.label(jet_fields), flow=self.flow)


#: The per-jet axes of every score histogram, declared once: a new axis is one line here (the
#: table, the fill, the dask columns and the ROOT export follow it).
JET_VARIABLES: tuple[JetVariable, ...] = (
    JetVariable(A.PT, "pt_edges", [200, 300, 400, 500, 600, 700, 800, 1000, 1500, 3000], lambda jf: r"Jet $p_T$ [GeV]",
                lambda ev, j, m, f: f.pt, lambda jf: {"pt"}),
    JetVariable(A.MSD, "msd", (30, 0.0, 300.0), lambda jf: A.mass_label(mass_field(jf)),
                lambda ev, j, m, f: f[mass_field(fields_of(f))], lambda jf: {mass_field(jf)}),
    JetVariable(A.ABS_ETA, "abs_eta_edges", [0.0, 0.8, 1.6, 2.5], lambda jf: r"Jet $|\eta|$",
                lambda ev, j, m, f: abs(f.eta), lambda jf: {"eta"}, flow=False, default=False),
    JetVariable(A.NPV, "npv_edges", [0, 15, 25, 35, 50, 100], lambda jf: "Number of primary vertices",
                _npv, lambda jf: {("PV", "npvs")}, default=False),
)

#: Names of the variables that are score-histogram axes by default.
DEFAULT_JET_AXES: tuple[str, ...] = tuple(v.name for v in JET_VARIABLES if v.default)
#: Axes every score histogram has (``njets``, the moments and ``score_syst`` use them).
REQUIRED_JET_AXES: tuple[str, ...] = (A.PT, A.MSD)


def jet_variables(names: Iterable[str] | None = None) -> tuple[JetVariable, ...]:
    """The :data:`JET_VARIABLES` named ``names`` (in declaration order; ``None``: the default ones).

    Raises ``ValueError`` for an unknown name or when ``pt`` or ``msd`` is left out."""
    if names is None:
        return tuple(v for v in JET_VARIABLES if v.default)
    names = list(names)
    known = [v.name for v in JET_VARIABLES]
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"jet axes {bad}: not among the jet variables {known}")
    missing = [n for n in REQUIRED_JET_AXES if n not in names]
    if missing:
        raise ValueError(f"jet axes {names}: {missing} must be among them (every score histogram has pT and mass)")
    return tuple(v for v in JET_VARIABLES if v.name in names)

#: Histogram binning: score bins, then each :data:`JET_VARIABLES` binning by its key.
DEFAULT_AXES: dict[str, Any] = {"score_bins": 40, **{v.binning_key: v.binning for v in JET_VARIABLES}}


def _np(a: Any, dtype: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.fill_none(a, 0)), dtype=dtype)


def _pixel_columns(x: np.ndarray, cls: np.ndarray, scores: Mapping[str, np.ndarray],
                   rows: np.ndarray) -> dict[str, np.ndarray]:
    """The non-zero pixels of images ``x`` ``(n, C, H, W)`` of table rows ``rows`` as flat columns
    (``row``, ``cls``, ``c``, ``iy``, ``ix``, ``v``, ``y_<model>``), in row order."""
    j, c, iy, ix = np.nonzero(x)
    cols: dict[str, np.ndarray] = {"row": rows[j].astype(np.int64), "cls": cls[j].astype(np.int32),
                                   "c": c.astype(np.int32),
            "iy": iy.astype(np.int32), "ix": ix.astype(np.int32), "v": x[j, c, iy, ix].astype(np.float64)}
    for name, s in scores.items():
        cols[f"y_{name}"] = np.asarray(s, np.float64)[j]
    return cols


def _pixel_table(flat: Mapping[str, np.ndarray], n_rows: int, models: Sequence[str]) -> ak.Array:
    """Flat pixel columns (:func:`_pixel_columns`) → ``n_rows * var * {cls, c, iy, ix, v, y_*}``."""
    counts = np.bincount(np.asarray(flat["row"], np.int64), minlength=n_rows).astype(np.int64)
    keep = {"cls": np.int32, "c": np.int32, "iy": np.int32, "ix": np.int32, "v": np.float64,
            **{f"y_{m}": np.float64 for m in models}, "w": np.float64}
    return ak.unflatten(ak.zip({f: np.asarray(flat[f], dt) for f, dt in keep.items()}, depth_limit=1), counts)


def pixel_records(x: np.ndarray, cls: np.ndarray, scores: Mapping[str, np.ndarray], rows: np.ndarray,
                  n_rows: int, weights: np.ndarray | None = None) -> ak.Array:
    """Non-zero pixels of images ``x`` ``(n, C, H, W)`` of table rows ``rows`` as
    ``n_rows * var * {cls, c, iy, ix, v, y_*, w}`` (rows without an image get no pixels); ``cls``,
    ``scores`` and ``weights`` (the jets' event weights, default 1) are per table row."""
    rows = np.asarray(rows, np.int64)
    cols = _pixel_columns(x, np.asarray(cls)[rows], {m: np.asarray(s)[rows] for m, s in scores.items()}, rows)
    w = np.ones(n_rows) if weights is None else np.asarray(weights, np.float64)
    cols["w"] = w[cols["row"]]
    return _pixel_table(cols, n_rows, list(scores))


def _classes(flat: ak.Array, n: int, class_names: Sequence[str], truth: TruthSource | None,
             dataset_class: str | None) -> np.ndarray:
    """Index into ``class_names`` of each jet: its truth code's class, or the dataset's class."""
    if truth is None or truth.field not in fields_of(flat):
        index: dict[str | None, int] = {c: i for i, c in enumerate(class_names)}
        return np.full(n, index.get(dataset_class, index.get(OTHER, -1)), dtype=np.int32)
    return truth.index(_np(flat[truth.field], np.int64), class_names)


def _where(events: Any) -> str:
    return (getattr(events, "metadata", None) or {}).get("filename", "input file unknown")


def jet_table(events: ak.Array, *, taggers: Mapping[str, Tagger], jets: str = "FatJet",
              selection: Mapping[str, Any] | None = None, class_names: Sequence[str] = (),
              truth_names: Mapping[int, str] | None = None, dataset_class: str | None = None,
              truth: TruthSource | None = None,
              image_refs: Mapping[str, Sequence[str]] | None = None,
              ensembles: Mapping[str, Sequence[str]] | None = None, plan: InputPlan | None = None,
              mask: ak.Array | None = None, batch_size: int | None = None, weights: EventWeights | None = None,
              is_mc: bool = True, variations: Sequence[Variation] = (),
              variables: Sequence[JetVariable] | None = None, stored: Sequence[StoredTagger] = ()) -> ak.Array:
    """Select jets, build each distinct input once, score with every tagger; one row per selected jet.

    Parameters
    ----------
    events : ak.Array
        Eager coffea events.
    taggers : dict of str to Tagger
        In the order of the output fields ``s_<name>``/``pred_<name>``.
    jets : str
        Jet collection.
    selection : dict
        Keywords of :func:`select_jets`.
    class_names : sequence of str
        Truth classes; ``cls`` holds the index into it.
    truth_names : dict of int to str, optional
        ``{jets}_truthLabel`` code → class name; used when the jets have ``truthLabel``.
    dataset_class : str, optional
        Class of every jet when the jets have no truth field.
    truth : TruthSource, optional
        Where the jets' truth class comes from (``partonFlavour``: quark/gluon); default
        ``truthLabel`` named by ``truth_names``, when the jets have it.
    image_refs : dict of str to list of str
        Image input key → the models whose score is correlated with its pixels.
    ensembles : dict of str to list of str, optional
        Ensemble name → member models (mean of the members' class probabilities).
    plan : InputPlan, optional
        The taggers' input plan (made here when not given).
    mask : ``n_events * var`` bool, optional
        The jet selection if already computed.
    batch_size : int, optional
        Jets whose inputs are built and scored together (default: the taggers' largest
        ``batch_size``): the chunk's network inputs are never all in memory at once.
    weights : EventWeights, optional
        The events' weights (column ``w``, per jet); default 1.
    is_mc : bool
        Data (False) get weight 1 and no variations.
    variations : sequence of Variation
        Systematic variations (:mod:`coffea_jetimg.systematics`), MC only.
    variables : sequence of JetVariable, optional
        The per-jet variables in the table (default: every one of :data:`JET_VARIABLES`).
    stored : sequence of StoredTagger
        Discriminators stored in the file (:mod:`coffea_jetimg.stored_taggers`), scored like models
        (``s_<name>``, ``pred_<name>``; ``bad_<name>``: the value was outside [0, 1]).

    Returns
    -------
    ak.Array
        ``n_jets * {cls, <JET_VARIABLES>, sel, w, sel_<var>, f_<var>, w_<var>, scored, s_<model>,
        pred_<model>, s_<model>__<var>, px_<k>}``, one row per jet selected nominally (``sel``) or
        by a jet variation ``<var>`` (``sel_<var>``; ``f_<var>`` its factor on the jet's pT and
        mass); ``w`` is the jet's event weight, ``w_<var>`` that of a weight variation;
        ``s_<model>__<var>`` the score with the variation propagated into the inputs (``inputs=True``).
        ``scored`` is False for jets whose constituents the file does not store (their scores
        are NaN and their pixels empty); ``px_<k>`` are the non-zero pixels of image input ``k``
        (with their jet's weight ``w``).
    """
    selection = DEFAULT_SELECTION if selection is None else selection
    if truth is None:
        truth = TruthSource("truthLabel", TRUTH_NAMES if truth_names is None else truth_names)
    plan = plan or InputPlan([t.input_spec for t in taggers.values()], jets=jets)
    fj = events[jets]
    if mask is None:
        mask = select_jets(fj, **selection)
    # jet variations (MC only): each direction's factors and selection; the table's rows are the
    # jets selected nominally or by any variation, ``sel``/``sel_<var>`` say which
    jet_vars, weight_vars = _split_variations(variations, is_mc)
    factors: dict[str, np.ndarray] = {}  # per variation direction, on the flattened jets of the chunk
    var_masks: dict[str, np.ndarray] = {}
    rows_mask = mask
    if jet_vars:
        # on flat numpy columns: one jagged→flat conversion, not an awkward record per direction
        counts_all = np.asarray(ak.to_numpy(ak.num(fj.pt, axis=1)), np.int64)
        base = _flat_jets(fj)
        rows_flat = _np(ak.flatten(mask, axis=1), bool).copy()
        for jv in jet_vars:
            for d, f in jv.factors(events, jets).items():
                key = f"{jv.name}{d}"
                factors[key] = np.asarray(f, np.float64)
                var_masks[key] = np.asarray(select_jets(_scaled(base, factors[key]), **selection), bool)
                rows_flat |= var_masks[key]
        rows_mask = ak.unflatten(rows_flat, counts_all)
    flat = ak.flatten(fj[rows_mask], axis=1)
    n = len(flat)
    cols: dict[str, np.ndarray] = {"cls": _classes(flat, n, class_names, truth, dataset_class)}
    for v in JET_VARIABLES if variables is None else variables:
        cols[v.name] = _np(v.value(events, jets, rows_mask, flat), np.float64)
    cols["sel"] = _np(ak.flatten(mask[rows_mask], axis=1), bool) if n else np.zeros(0, bool)
    counts = np.asarray(ak.to_numpy(ak.num(fj.pt[rows_mask], axis=1)), np.int64)
    w_event = weights.of(events, is_mc) if weights is not None else np.ones(len(counts))
    cols["w"] = np.repeat(w_event, counts)
    for key in factors:
        cols[f"sel_{key}"] = var_masks[key][rows_flat]
        cols[f"f_{key}"] = factors[key][rows_flat]
    for wv in weight_vars:
        for d, r in wv.relative(events, _where(events)).items():
            cols[f"w_{wv.name}{d}"] = cols["w"] * np.repeat(r, counts)

    # jets whose constituents the file does not store are not scored (an all-zero image would
    # give every one of them the same score)
    cands, scored_mask = None, rows_mask
    jf = fields_of(fj)
    if plan.needs_constituents(jf):
        cands = constituents(events, jets, fields=plan.constituent_fields(jf), layout=plan.layout(events))
        scored_mask = rows_mask & (ak.num(cands, axis=2) > 0)
    scored = _np(ak.flatten(scored_mask[rows_mask], axis=1), bool) if n else np.zeros(0, bool)
    rows = np.flatnonzero(scored)
    cols["scored"] = scored
    n_missing = int((cols["sel"] & ~scored).sum())
    if n_missing:
        warnings.warn(f"{_where(events)}: {n_missing} of {int(cols['sel'].sum())} selected {jets} jets have no stored "
                      "constituents; they are counted in the cutflow (jets_without_constituents) and not scored",
                      RuntimeWarning, stacklevel=2)

    bs = int(batch_size or max([t.batch_size for t in taggers.values()] + [1]))
    ctx = plan.context(events, scored_mask, cands=cands)
    probs_of, pix_parts = _score(plan, ctx, rows, taggers, ensembles or {}, image_refs or {}, cols["cls"], bs,
                                 _where(events), jets)
    for name, probs in probs_of.items():
        head = taggers[name] if name in taggers else taggers[(ensembles or {})[name][0]]
        s = np.full(n, np.nan)
        s[rows] = np.minimum(probs[:, head.signal_index], SCORE_MAX)
        pred = np.full(n, -1, np.int32)
        pred[rows] = np.argmax(probs, axis=1) if len(probs) else np.zeros(0, np.int32)
        cols[f"s_{name}"], cols[f"pred_{name}"] = s, pred
    bad_of: dict[str, np.ndarray] = {}
    for st in stored:  # every row (the fill keeps the scored ones: the same jets as the models')
        s, bad_of[f"bad_{st.name}"] = st.values(flat) if n else (np.zeros(0), np.zeros(0, bool))
        cols[f"s_{st.name}"] = np.minimum(s, SCORE_MAX)
        cols[f"pred_{st.name}"] = np.where(s >= 0.5, st.signal_index, 1 - st.signal_index).astype(np.int32)
    cols.update(bad_of)  # after every s_/pred_, as in empty_table
    # variations propagated into the inputs: the scaled jets' inputs built and scored again
    with_cands = plan.needs_constituents(jf)
    for jv in jet_vars:
        if not jv.inputs:
            continue
        for d in DIRECTIONS:
            key = f"{jv.name}{d}"
            vctx = ctx.scaled(cols[f"f_{key}"][rows], with_cands)
            vprobs, _ = _score(plan, vctx, rows, taggers, ensembles or {}, {}, cols["cls"], bs, _where(events), jets)
            for name, probs in vprobs.items():
                head = taggers[name] if name in taggers else taggers[(ensembles or {})[name][0]]
                s = np.full(n, np.nan)
                s[rows] = np.minimum(probs[:, head.signal_index], SCORE_MAX)
                cols[f"s_{name}__{key}"] = s
    for k, (key, models) in enumerate((image_refs or {}).items()):
        names = ("row", "cls", "c", "iy", "ix", "v", *(f"y_{m}" for m in models))
        pflat = {f: (np.concatenate(pix_parts[f"{k}:{f}"]) if f"{k}:{f}" in pix_parts else
                     np.zeros(0, np.int64 if f in ("row",) else np.float64)) for f in names}
        pflat["w"] = cols["w"][np.asarray(pflat["row"], np.int64)]
        cols[f"px_{k}"] = _pixel_table(pflat, n, models)
    return ak.zip(cols, depth_limit=1)


def _split_variations(variations: Sequence[Variation],
                      is_mc: bool) -> tuple[list[JetScale | JetResolution], list[WeightVariation]]:
    """(jet variations, weight variations); none for data."""
    if not is_mc:
        return [], []
    return ([v for v in variations if isinstance(v, (JetScale, JetResolution))],
            [v for v in variations if isinstance(v, WeightVariation)])


def _flat_jets(fj: ak.Array) -> SimpleNamespace:
    """The fields :func:`select_jets` reads (pT, η, soft-drop or plain mass) of the flattened jets
    ``fj``, as numpy."""
    m = mass_field(fields_of(fj))
    return SimpleNamespace(fields=["pt", "eta", m],
                           **{k: _np(ak.flatten(fj[k], axis=1), np.float64) for k in ("pt", "eta", m)})


def _scaled(jets: SimpleNamespace, f: np.ndarray) -> SimpleNamespace:
    """:func:`_flat_jets` columns with pT and mass times ``f``."""
    m = jets.fields[2]
    return SimpleNamespace(fields=jets.fields, pt=jets.pt * f, eta=jets.eta, **{m: getattr(jets, m) * f})


def _score(plan: InputPlan, ctx: Any, rows: np.ndarray, taggers: Mapping[str, Tagger],
           ensembles: Mapping[str, Sequence[str]], image_refs: Mapping[str, Sequence[str]], cls: np.ndarray,
           bs: int, where: str, jets: str) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """Class probabilities of the jets ``rows`` of ``ctx`` for every tagger and ensemble, and the
    pixel columns of ``image_refs``. Inputs are built and scored in micro-batches of ``bs`` jets: a
    worker holds one batch of network inputs at a time (its peak memory follows the batch size,
    not the chunk size)."""
    probs_parts: dict[str, list[np.ndarray]] = {name: [] for name in taggers}
    pix_parts: dict[str, list[np.ndarray]] = {}
    bad: dict[str, int] = {}
    for start, built in (plan.build_batches(ctx, len(rows), bs) if len(plan) else ()):
        batch_probs = {}
        for name, tagger in taggers.items():
            x = built[input_from_spec(tagger.input_spec).key]
            bad[name] = bad.get(name, 0) + _n_non_finite(x)
            batch_probs[name] = tagger.predict(x)
            probs_parts[name].append(batch_probs[name])
        for name, members in ensembles.items():
            batch_probs[name] = ensemble_mean([batch_probs[m] for m in members])
        for k, (key, models) in enumerate(image_refs.items()):
            heads = {m: taggers[m] for m in models}
            x = built[key]
            r = rows[start:start + len(x)]
            part = _pixel_columns(x, cls[r], {m: np.minimum(batch_probs[m][:, t.signal_index], SCORE_MAX)
                                              for m, t in heads.items()}, r)
            for f, arr in part.items():
                pix_parts.setdefault(f"{k}:{f}", []).append(arr)
    for name, count in bad.items():
        if count:
            warnings.warn(f"{where}: {count} of {len(rows)} selected {jets} jets have non-finite inputs for "
                          f"model {name!r}; their scores are NaN and land in the histograms' overflow bins",
                          RuntimeWarning, stacklevel=3)
    n_cls = {name: len(t.class_names) for name, t in taggers.items()}
    probs_of = {name: (np.concatenate(v) if v else np.zeros((0, n_cls[name]), np.float32))
                for name, v in probs_parts.items()}
    for name, members in ensembles.items():  # members share class names (checked by the processor)
        probs_of[name] = ensemble_mean([probs_of[m] for m in members])
    return probs_of, pix_parts


def empty_table(scored_names: Iterable[str], image_refs: Mapping[str, Sequence[str]],
                variations: Sequence[Variation] = (), is_mc: bool = True,
                variables: Sequence[JetVariable] | None = None, stored_names: Iterable[str] = ()) -> ak.Array:
    """A length-zero :func:`jet_table` of the models and ensembles ``scored_names`` (and the
    ``variations`` of an MC dataset), built without running (or loading) any network: the dask meta."""
    scored_names = list(scored_names)
    jet_vars, weight_vars = _split_variations(variations, is_mc)
    cols = {"cls": np.zeros(0, np.int32)}
    cols.update({v.name: np.zeros(0, np.float64) for v in (JET_VARIABLES if variables is None else variables)})
    cols.update({"sel": np.zeros(0, bool), "w": np.zeros(0, np.float64)})
    for jv in jet_vars:
        for d in DIRECTIONS:
            cols[f"sel_{jv.name}{d}"] = np.zeros(0, bool)
            cols[f"f_{jv.name}{d}"] = np.zeros(0, np.float64)
    for wv in weight_vars:
        for d in DIRECTIONS:
            cols[f"w_{wv.name}{d}"] = np.zeros(0, np.float64)
    cols["scored"] = np.zeros(0, bool)
    for name in scored_names:
        cols[f"s_{name}"] = np.zeros(0, np.float64)
        cols[f"pred_{name}"] = np.zeros(0, np.int32)
    cols.update({f"bad_{name}": np.zeros(0, bool) for name in stored_names})
    recomputed = [m for m in scored_names if m not in set(stored_names)]  # stored scores do not vary
    for jv in jet_vars:
        if jv.inputs:
            for d in DIRECTIONS:
                cols.update({f"s_{name}__{jv.name}{d}": np.zeros(0, np.float64) for name in recomputed})
    for k, (key, models) in enumerate(image_refs.items()):
        cols[f"px_{k}"] = pixel_records(np.zeros((0, 1, 1, 1), np.float32), np.zeros(0, np.int32),
                                        {m: np.zeros(0) for m in models}, np.zeros(0, np.int64), 0,
                                        np.zeros(0, np.float64))
    return ak.zip(cols, depth_limit=1)


def _n_non_finite(X: np.ndarray) -> int:
    """How many jets' network inputs hold NaN or inf (their scores come out NaN, and hist files NaN
    in the overflow bin without a word: the table warns, naming the file)."""
    if X.size == 0:
        return 0
    return int((~np.isfinite(X.reshape(len(X), -1)).all(axis=1)).sum())


def parse_ensembles(texts: Iterable[str]) -> dict[str, list[str]]:
    """``['NAME=A+B', ...]`` (the ``--ensemble`` syntax) → ``{'NAME': ['A', 'B'], ...}``.

    Raises ``ValueError`` naming the text that is not of that form; which models exist is checked
    where they are known (:class:`JetTaggingProcessor`, the holdout study)."""
    out = {}
    for text in texts:
        name, _, members = text.partition("=")
        parts = members.split("+")
        if not name or not all(parts):
            raise ValueError(f"ensemble {text!r}: expected NAME=MODEL+MODEL[+...]")
        out[name] = parts
    return out


def check_ensembles(ensembles: Mapping[str, str | Sequence[str]],
                    taggers: Mapping[str, Tagger]) -> OrderedDict[str, list[str]]:
    """Ensemble name → member models, checked: two or more distinct known models with the same
    class names and signal class, and a name no model has; ``ValueError`` naming what is wrong."""
    out: OrderedDict[str, list[str]] = OrderedDict()
    for name, members in ensembles.items():
        members = [members] if isinstance(members, str) else list(members)
        if name in taggers or name in out:
            raise ValueError(f"ensemble {name!r}: the name is already taken by a model")
        if len(members) < 2 or len(set(members)) != len(members):
            raise ValueError(f"ensemble {name!r}: needs two or more distinct models, got {members}")
        unknown = [m for m in members if m not in taggers]
        if unknown:
            raise ValueError(f"ensemble {name!r}: unknown models {unknown}; models are {list(taggers)}")
        first = taggers[members[0]]
        for m in members[1:]:
            t = taggers[m]
            if t.class_names != first.class_names or t.signal_class != first.signal_class:
                raise ValueError(f"ensemble {name!r}: {m!r} has classes {t.class_names} (signal {t.signal_class!r}), "
                                 f"{members[0]!r} {first.class_names} (signal {first.signal_class!r})")
        out[name] = members
    return out


def add_pixel_sums(h_image: hist.Hist, h_xy: Mapping[str, hist.Hist], p: ak.Array,
                   h_x2: hist.Hist | None = None) -> None:
    """The eager fast path of the pixel fills: Σwv, Σw²v², Σwv² and Σwv·y per (class, channel, iy,
    ix), one ``bincount`` each, added into the histograms' views (the same sums as ``fill``; ~100k
    pixels per chunk make a ``fill`` per class the largest cost of filling). ``w`` is the pixel's
    jet weight (1 when the records have none)."""
    view: Any = h_image.view(flow=False)  # a WeightedSum record view
    shape = view.shape
    cls, c, iy, ix = (np.asarray(p[f], np.int64) for f in ("cls", "c", "iy", "ix"))
    ok = (cls >= 0) & (cls < shape[0])
    idx = np.ravel_multi_index((cls[ok], c[ok], iy[ok], ix[ok]), shape)
    v = np.asarray(p.v, np.float64)[ok]
    w = np.asarray(p.w, np.float64)[ok] if "w" in fields_of(p) else np.ones_like(v)
    wv = w * v
    n = int(np.prod(shape))
    view.value += np.bincount(idx, weights=wv, minlength=n).reshape(shape)
    view.variance += np.bincount(idx, weights=wv * wv, minlength=n).reshape(shape)
    if h_x2 is not None:
        h_x2.view(flow=False)[...] += np.bincount(idx, weights=wv * v, minlength=n).reshape(shape)
    for m, h in h_xy.items():
        h.view(flow=False)[...] += np.bincount(idx, weights=wv * np.asarray(p[f"y_{m}"], np.float64)[ok],
                                               minlength=n).reshape(shape)
