"""Jet tagging with saved deep-learning taggers: scores, masses and images into histograms.

The processor is a thin, stateless bundle: the physics lives in the functions of this module
(:func:`select_jets`, :func:`jet_table`) and in the library (:mod:`coffea_jetimg.inputs`,
:mod:`coffea_jetimg.inference`), which a test can call without a processor.

Per dataset it fills (all addable, so chunks and datasets merge with coffea's ``accumulate``):

``score[model]``     ``hist``: truth class × score × jet pT (GeV) × soft-drop mass (GeV) × |η| × n PV
                     (also for each ensemble: the mean class probabilities of its member models)
``predicted[model]`` truth class × predicted class index (arg-max; names in the axis metadata)
``score_moments[model]`` truth class × pT, Weight storage of weight = score: Σy, Σy²
``image[key]``       truth class × channel × iy × ix, Weight storage of weight = pixel intensity:
                     Σx (image sum; average image = Σx / n) and Σx²
``pixel_xy[model]``  truth class × channel × iy × ix, Σ x·y (pixel intensity × score)
``njets``            truth class × pT: n, the number of selected jets
``cutflow``          dict of counts

With ``n``, Σx, Σx², Σy, Σy², Σxy the per-pixel Pearson correlation between intensity and score
follows for any number of merged chunks (:func:`coffea_jetimg.studies.pearson_map`).

Works on eager NanoEvents chunks (``coffea.processor.Runner``) and on dask-awkward events
(``coffea.dataset_tools.apply_to_fileset``): the per-chunk work runs through
``dask_awkward.map_partitions`` with an explicit meta, touching only the columns it reads.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_jetimg._constituents import ConstituentsError, _needed_leaves, constituents, detect_layout
from coffea_jetimg.inference import Tagger
from coffea_jetimg.selection import DEFAULT_SELECTION, OTHER, TRUTH_NAMES, select_jets
from coffea_jetimg._util import fields_of as _fields
from coffea_jetimg._util import is_dask as _is_dask
from coffea_jetimg.inputs import (FEATURE_ALIASES, build_inputs, check_compatible, constituent_fields, input_key,
                                  needs_constituents)

__all__ = [
    "JetTaggingProcessor",
    "select_jets",
    "jet_table",
    "parse_ensembles",
    "TRUTH_NAMES",
    "DEFAULT_SELECTION",
    "DEFAULT_AXES",
]

#: Histogram binning: score bins, pT edges (GeV), soft-drop mass (bins, lo, hi) in GeV, |η| edges, n PV edges.
DEFAULT_AXES = {
    "score_bins": 40,
    "pt_edges": [200, 300, 400, 500, 600, 700, 800, 1000, 1500, 3000],
    "msd": (30, 0.0, 300.0),
    "abs_eta_edges": [0.0, 0.8, 1.6, 2.5],
    "npv_edges": [0, 15, 25, 35, 50, 100],
}

_SCORE_MAX = np.nextafter(np.float32(1.0), np.float32(0.0))


def _np(a, dtype) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.fill_none(a, 0)), dtype=dtype)


def _pixel_records(x: np.ndarray, cls: np.ndarray, scores: dict[str, np.ndarray]):
    """Non-zero pixels of images ``x`` ``(n, C, H, W)`` as ``n * var * {cls, c, iy, ix, v, y_*}``."""
    n = len(x)
    j, c, iy, ix = np.nonzero(x)
    counts = np.bincount(j, minlength=n).astype(np.int64) if n else np.zeros(0, np.int64)
    cols = {
        "cls": cls[j].astype(np.int32),
        "c": c.astype(np.int32),
        "iy": iy.astype(np.int32),
        "ix": ix.astype(np.int32),
        "v": x[j, c, iy, ix].astype(np.float64),
    }
    for name, s in scores.items():
        cols[f"y_{name}"] = s[j].astype(np.float64)
    return ak.unflatten(ak.zip(cols, depth_limit=1), counts)


def _cand_fields(taggers, jet_fields) -> tuple[str, ...]:
    """The constituent fields (besides the 4-vector) that any of the taggers reads: the
    constituents are built once per chunk for all of them, from only these branches."""
    out: dict[str, None] = {}
    for t in taggers:
        if needs_constituents(t.input_spec, jet_fields):
            out.update(dict.fromkeys(constituent_fields(t.input_spec)))
    return tuple(out)


def jet_table(events, *, taggers, jets="FatJet", selection=None, class_names=(), truth_names=None,
              dataset_class=None, image_refs=None, ensembles=None):
    """Select jets, build each distinct input once, score with every tagger; one row per jet.

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
        Class of every jet when the jets have no ``truthLabel``.
    image_refs : dict of str to list of str
        Image input key → the models whose score is correlated with its pixels.
    ensembles : dict of str to list of str, optional
        Ensemble name → member models: ``s_<name>``/``pred_<name>`` from the mean of the members'
        class probabilities.

    Returns
    -------
    ak.Array
        ``n_selected_jets * {cls, pt, msd, abs_eta, npv, s_<model>, pred_<model>, px_<k>}``;
        ``px_<k>`` are the non-zero pixels of image input ``k`` (see :func:`_pixel_records`).
    """
    cols, built, scores = _jet_parts(events, taggers=taggers, jets=jets, selection=selection,
                                     class_names=class_names, truth_names=truth_names, dataset_class=dataset_class,
                                     image_refs=image_refs, ensembles=ensembles)
    for k, (key, models) in enumerate((image_refs or {}).items()):
        cols[f"px_{k}"] = _pixel_records(built[key], cols["cls"], {m: scores[m] for m in models})
    return ak.zip(cols, depth_limit=1)


def _jet_parts(events, *, taggers, jets="FatJet", selection=None, class_names=(), truth_names=None,
               dataset_class=None, image_refs=None, mask=None, ensembles=None):
    """The numpy work of :func:`jet_table`: per-jet columns, the built inputs and the signal scores.

    Returns ``(cols, built, scores)``: ``cols`` maps the table's scalar fields to numpy arrays,
    ``built`` input key → network input ``(n, ...)`` float32, ``scores`` model → raw signal
    probability ``(n,)``. ``mask`` is the jet selection if already computed.
    """
    selection = DEFAULT_SELECTION if selection is None else selection
    truth_names = TRUTH_NAMES if truth_names is None else truth_names
    fj = events[jets]
    if mask is None:
        mask = select_jets(fj, **selection)
    flat = ak.flatten(fj[mask], axis=1)
    n = len(flat)
    class_index = {c: i for i, c in enumerate(class_names)}
    flat_fields = _fields(flat)
    if "truthLabel" in flat_fields:
        codes = _np(flat.truthLabel, np.int64)
        lut = np.array([class_index.get(truth_names.get(k, OTHER), class_index.get(OTHER, -1))
                        for k in range(max(int(codes.max()) + 1 if n else 1, max(truth_names) + 1))], dtype=np.int32)
        cls = np.where(codes >= 0, lut[np.clip(codes, 0, len(lut) - 1)], class_index.get(OTHER, -1)).astype(np.int32)
    else:
        cls = np.full(n, class_index.get(dataset_class, class_index.get(OTHER, -1)), dtype=np.int32)
    cols = {
        "cls": cls,
        "pt": _np(flat.pt, np.float64),
        "msd": _np(flat.msoftdrop, np.float64) if "msoftdrop" in flat_fields else _np(flat.mass, np.float64),
        "abs_eta": np.abs(_np(flat.eta, np.float64)),
    }
    if "PV" in _fields(events) and "npvs" in _fields(events.PV):
        npv = ak.broadcast_arrays(events.PV.npvs, fj.pt)[0][mask]
        cols["npv"] = _np(ak.flatten(npv, axis=1), np.float64)
    else:
        cols["npv"] = np.full(n, -1.0)

    cands = None
    built: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    fj_fields = _fields(fj)
    cand_fields = _cand_fields(taggers.values(), fj_fields)
    probs_of: dict[str, np.ndarray] = {}
    for name, tagger in taggers.items():
        spec = tagger.input_spec
        key = input_key(spec)
        if key not in built:  # one build per distinct input spec
            if cands is None and needs_constituents(spec, fj_fields):
                cands = constituents(events, jets, fields=cand_fields)  # once, for every model
            built[key] = build_inputs(spec, events, jets, jet_mask=mask, cands=cands)
            _warn_non_finite(built[key], events, jets, name)
        probs_of[name] = probs = tagger.predict(built[key])
        scores[name] = probs[:, tagger.signal_index]
    for name, members in (ensembles or {}).items():  # members share class names (checked by the processor)
        probs_of[name] = np.mean([probs_of[m] for m in members], axis=0)
        scores[name] = probs_of[name][:, taggers[members[0]].signal_index]
    for name, probs in probs_of.items():
        cols[f"s_{name}"] = np.minimum(scores[name], _SCORE_MAX).astype(np.float64)
        cols[f"pred_{name}"] = (np.argmax(probs, axis=1) if len(probs) else np.zeros(0)).astype(np.int32)
    return cols, built, scores


def _warn_non_finite(X: np.ndarray, events, jets: str, model: str) -> None:
    """Warn, naming the file, when some jets' network inputs hold NaN or inf: their scores come
    out NaN, and hist files NaN in the overflow bin without a word."""
    if X.size == 0:
        return
    bad = ~np.isfinite(X.reshape(len(X), -1)).all(axis=1)
    if bad.any():
        meta = getattr(events, "metadata", None) or {}
        where = meta.get("filename", "input file unknown")
        warnings.warn(f"{where}: {int(bad.sum())} of {len(X)} selected {jets} jets have non-finite inputs for "
                      f"model {model!r} (first at jet {int(np.flatnonzero(bad)[0])} of the chunk's selection); "
                      "their scores are NaN and land in the histograms' overflow bins", RuntimeWarning, stacklevel=2)


def parse_ensembles(texts) -> dict[str, list[str]]:
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


def _empty_table(taggers, image_refs, ensembles=None):
    cols = {"cls": np.zeros(0, np.int32)}
    for f in ("pt", "msd", "abs_eta", "npv"):
        cols[f] = np.zeros(0, np.float64)
    for name in [*taggers, *(ensembles or {})]:
        cols[f"s_{name}"] = np.zeros(0, np.float64)
        cols[f"pred_{name}"] = np.zeros(0, np.int32)
    for k, (key, models) in enumerate(image_refs.items()):
        cols[f"px_{k}"] = _pixel_records(np.zeros((0, 1, 1, 1), np.float32), np.zeros(0, np.int32),
                                         {m: np.zeros(0) for m in models})
    return ak.zip(cols, depth_limit=1)


class JetTaggingProcessor(processor.ProcessorABC):
    """Score jets with one or more saved taggers and histogram the results.

    Parameters
    ----------
    models : str, Path, or dict of str to (str or Path or Tagger)
        Artifact directories (a single path is named after its spec's ``name``).
    jets : str
        Jet collection (``'FatJet'``).
    selection : dict, optional
        ``pt=(min, max)`` GeV, ``abs_eta=max``, ``msd=(min, max)`` GeV; default
        :data:`DEFAULT_SELECTION`.
    labels : dict of str to str, optional
        Dataset → truth class, for files without ``{jets}_truthLabel`` (otherwise the dataset
        metadata ``{"label": ...}`` is used).
    truth_names : dict of int to str, optional
        ``truthLabel`` code → class; default :data:`TRUTH_NAMES`.
    device, backend, batch_size, num_threads :
        Passed to :class:`~coffea_jetimg.inference.Tagger`.
    axes : dict, optional
        Overrides of :data:`DEFAULT_AXES`.
    pixel_maps : bool
        Fill image sums and the Pearson moments (per-pixel histograms).
    ensembles : dict of str to list of str, optional
        Ensemble name → names of two or more of ``models`` with the same class names and signal
        class; scored by the mean of their class probabilities and histogrammed like a model
        (``score``, ``predicted``, ``score_moments``; no pixel maps). Averaging taggers trained on
        different inputs or seeds often rejects more background than any one of them.
    """

    def __init__(self, models, jets: str = "FatJet", selection: dict | None = None, labels: dict | None = None,
                 truth_names: dict | None = None, device: str | None = None, backend: str = "torch",
                 batch_size: int = 512, num_threads: int | None = 1, axes: dict | None = None,
                 pixel_maps: bool = True, ensembles: dict | None = None):
        if not isinstance(models, dict):
            models = {None: models}
        self.taggers: OrderedDict[str, Tagger] = OrderedDict()
        for name, m in models.items():
            t = m if isinstance(m, Tagger) else Tagger(m, device=device, backend=backend, batch_size=batch_size,
                                                        num_threads=num_threads)
            name = name or t.name
            if name in self.taggers:
                raise ValueError(f"two models named {name!r}; pass a dict {{name: artifact}} with distinct names")
            if t.input_spec["kind"] == "event_image":
                raise ValueError(f"model {name!r} takes event images; use EventImageProcessor")
            self.taggers[name] = t
        if not self.taggers:
            raise ValueError("no models given")
        self.ensembles: OrderedDict[str, list[str]] = OrderedDict()
        for name, members in (ensembles or {}).items():
            members = [members] if isinstance(members, str) else list(members)
            if name in self.taggers or name in self.ensembles:
                raise ValueError(f"ensemble {name!r}: the name is already taken by a model")
            if len(members) < 2 or len(set(members)) != len(members):
                raise ValueError(f"ensemble {name!r}: needs two or more distinct models, got {members}")
            unknown = [m for m in members if m not in self.taggers]
            if unknown:
                raise ValueError(f"ensemble {name!r}: unknown models {unknown}; models are {list(self.taggers)}")
            first = self.taggers[members[0]]
            for m in members[1:]:
                t = self.taggers[m]
                if t.class_names != first.class_names or t.signal_class != first.signal_class:
                    raise ValueError(f"ensemble {name!r}: {m!r} has classes {t.class_names} (signal {t.signal_class!r}), "
                                     f"{members[0]!r} {first.class_names} (signal {first.signal_class!r})")
            self.ensembles[name] = members
        self.jets = jets
        self.selection = dict(DEFAULT_SELECTION if selection is None else {**DEFAULT_SELECTION, **selection})
        self.labels = dict(labels or {})
        self.truth_names = dict(TRUTH_NAMES if truth_names is None else truth_names)
        self.axes = {**DEFAULT_AXES, **(axes or {})}
        self.pixel_maps = pixel_maps
        # image inputs whose pixels are histogrammed, and which models' scores go with them
        self.image_keys: OrderedDict[str, dict] = OrderedDict()
        refs: OrderedDict[str, list[str]] = OrderedDict()
        for name, t in self.taggers.items():
            if t.input_spec["kind"] == "image":
                key = input_key(t.input_spec)
                self.image_keys.setdefault(key, t.input_spec)
                refs.setdefault(key, []).append(name)
        if refs:  # models without an image input are correlated with the first image
            first = next(iter(refs))
            for name, t in self.taggers.items():
                if t.input_spec["kind"] != "image":
                    refs[first].append(name)
        self.image_refs = refs if pixel_maps else OrderedDict()

    # -- description ------------------------------------------------------------------------
    def model_info(self) -> dict:
        """Per model: artifact path, classes, signal class, input kind and image key."""
        keys = list(self.image_refs)
        out = {}
        for name, t in self.taggers.items():
            img = next((f"img{k}" for k, key in enumerate(keys) if name in self.image_refs[key]), None)
            out[name] = {"artifact": str(t.path), "architecture": t.spec.get("architecture"),
                         "class_names": t.class_names, "signal_class": t.signal_class,
                         "input_kind": t.input_spec["kind"], "image": img}
        for name, members in self.ensembles.items():
            t = self._head(name)
            out[name] = {"ensemble_of": list(members), "class_names": t.class_names, "signal_class": t.signal_class,
                         "input_kind": "ensemble", "image": None}
        return out

    def scored_names(self) -> list[str]:
        """The models, then the ensembles: every name with ``score``/``predicted`` histograms."""
        return [*self.taggers, *self.ensembles]

    def _head(self, name):
        """The tagger whose class names and signal class a model or ensemble has."""
        return self.taggers[name] if name in self.taggers else self.taggers[self.ensembles[name][0]]

    def classes_for(self, events) -> list[str]:
        """Truth classes of a dataset: the truthLabel names (+ 'other'), or its one label."""
        if self.jets in _fields(events) and "truthLabel" in _fields(events[self.jets]):
            return list(dict.fromkeys(list(self.truth_names.values()) + [OTHER]))
        return [self._dataset_class(events)]

    def _dataset_class(self, events) -> str:
        meta = getattr(events, "metadata", None) or {}
        ds = meta.get("dataset")
        return str(self.labels.get(ds, meta.get("label", OTHER)))

    # -- checks -----------------------------------------------------------------------------
    def check(self, events) -> None:
        """Raise before any work if the events cannot feed every model (names the branches)."""
        if self.jets not in _fields(events):
            raise ConstituentsError(f"no '{self.jets}' collection in the events: nothing to tag")
        for name, t in self.taggers.items():
            try:
                check_compatible(t.input_spec, events, self.jets)
            except ConstituentsError as err:
                raise ConstituentsError(f"model '{name}' ({t.input_spec['kind']} input) cannot run on these events: "
                                        f"{err}") from None
            except ValueError as err:
                raise type(err)(f"model '{name}': {err}") from None

    # -- histograms -------------------------------------------------------------------------
    def _hists(self, classes, dask: bool):
        if dask:
            import hist.dask as hda

            H = hda.Hist
        else:
            H = hist.Hist
        ax = self.axes
        cls = hist.axis.StrCategory(classes, name="class", label="Truth class")
        pt_ax = hist.axis.Variable(ax["pt_edges"], name="pt", label=r"Jet $p_T$ [GeV]")
        out = {"score": {}, "predicted": {}, "score_moments": {}, "image": {}, "pixel_xy": {},
               "njets": H(cls, pt_ax, storage=hist.storage.Int64())}
        info = self.model_info()
        for name in self.scored_names():
            t = self._head(name)
            out["score"][name] = H(
                cls,
                hist.axis.Regular(ax["score_bins"], 0.0, 1.0, name="score", label=f"{name} P({t.signal_class})",
                                  flow=False, metadata={"model": name, "signal_class": t.signal_class,
                                                        "class_names": t.class_names}),
                pt_ax,
                hist.axis.Regular(*ax["msd"], name="msd", label=r"Soft-drop mass [GeV]"),
                hist.axis.Variable(ax["abs_eta_edges"], name="abs_eta", label=r"Jet $|\eta|$", flow=False),
                hist.axis.Variable(ax["npv_edges"], name="npv", label="Number of primary vertices"),
                storage=hist.storage.Int64(),
            )
            out["predicted"][name] = H(cls, hist.axis.Integer(0, len(t.class_names), name="predicted", flow=False,
                                                              label=f"{name} predicted class",
                                                              metadata={"class_names": t.class_names}),
                                       storage=hist.storage.Int64())
            out["score_moments"][name] = H(cls, pt_ax, storage=hist.storage.Weight())
        for k, (key, spec) in enumerate(self.image_keys.items()):
            if key not in self.image_refs:
                continue
            C, Hh, W = spec["shape"]
            pix = [hist.axis.Integer(0, C, name="channel", flow=False),
                   hist.axis.Integer(0, Hh, name="iy", label="pixel row", flow=False),
                   hist.axis.Integer(0, W, name="ix", label="pixel column", flow=False)]
            out["image"][f"img{k}"] = H(cls, *pix, storage=hist.storage.Weight())
            for m in self.image_refs[key]:
                out["pixel_xy"][m] = H(cls, *pix, storage=hist.storage.Double())
        out["_info"] = info
        return out

    # -- the work ---------------------------------------------------------------------------
    def process(self, events):
        dataset = (getattr(events, "metadata", None) or {}).get("dataset", "unknown")
        self.check(events)  # before reading anything
        dask = _is_dask(events)
        classes = self.classes_for(events)
        hists = self._hists(classes, dask)
        hists.pop("_info")
        if dask:
            table = self._table(events, classes, dask)
            self._fill(hists, table, classes, dask)
            hists["cutflow"] = self._cutflow(events, table, dask)
        else:  # eager chunk: numpy columns straight into the histograms, the selection computed once
            fj = events[self.jets]
            mask, steps = select_jets(fj, **self.selection, return_steps=True)
            cols, built, scores = _jet_parts(events, mask=mask,
                                             **self._table_kwargs(classes, self._dataset_class(events)))
            self._fill_eager(hists, cols, built, scores, classes)
            hists["cutflow"] = self._cutflow_eager(fj, steps, len(cols["cls"]))
        return {dataset: hists}

    def _fill_eager(self, h, cols, built, scores, classes):
        """Same contents as :meth:`_fill` on the table, from numpy; pixel moments by numpy sums."""
        cls = cols["cls"]
        for i, c in enumerate(classes):
            sel = np.flatnonzero(cls == i)
            if not len(sel):
                continue
            pt = cols["pt"][sel]
            h["njets"].fill(c, pt)
            for name in self.scored_names():
                s = cols[f"s_{name}"][sel]
                h["score"][name].fill(c, s, pt, cols["msd"][sel], cols["abs_eta"][sel], cols["npv"][sel])
                h["predicted"][name].fill(c, cols[f"pred_{name}"][sel])
                h["score_moments"][name].fill(c, pt, weight=s)
        # pixel moments: the non-zero pixels (as the table's px records), summed with bincount per
        # (class, pixel) in jet order, straight into the histogram views
        ncls = len(classes)
        for k, (key, models) in enumerate(self.image_refs.items()):
            x = built[key]
            if not len(x):
                continue
            xf = x.reshape(len(x), -1)
            j, p = np.nonzero(xf)
            cj = cls[j]
            ok = (cj >= 0) & (cj < ncls)
            if not ok.all():
                j, p, cj = j[ok], p[ok], cj[ok]
            v = xf[j, p].astype(np.float64)
            npix = xf.shape[1]
            bins = cj.astype(np.int64) * npix + p
            img = h["image"][f"img{k}"].view(flow=False)
            shape = img.shape
            img.value += np.bincount(bins, weights=v, minlength=ncls * npix).reshape(shape)
            img.variance += np.bincount(bins, weights=v * v, minlength=ncls * npix).reshape(shape)
            for m in models:
                y = scores[m].astype(np.float64)[j]
                h["pixel_xy"][m].view(flow=False)[...] += np.bincount(bins, weights=v * y,
                                                                      minlength=ncls * npix).reshape(shape)
        return h

    def _cutflow_eager(self, fj, steps, n_scored):
        out = {"events": len(fj), "jets": int(ak.sum(ak.num(fj.pt, axis=1)))}
        last = None
        for name, m in steps:
            out[f"jets_{name}"] = int(ak.sum(m))
            last = m
        if last is not None:
            out["events_with_selected_jet"] = int(ak.sum(ak.any(last, axis=1)))
        out["jets_scored"] = int(n_scored)
        return out

    def _table_kwargs(self, classes, dataset_class):
        return dict(taggers=self.taggers, jets=self.jets, selection=self.selection, class_names=classes,
                    truth_names=self.truth_names, dataset_class=dataset_class, image_refs=self.image_refs,
                    ensembles=self.ensembles)

    def _table(self, events, classes, dask):
        kwargs = self._table_kwargs(classes, self._dataset_class(events))
        if not dask:
            return jet_table(events, **kwargs)
        import dask_awkward as dak

        leaves = self._needed_columns(events)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta0 = _empty_table(self.taggers, self.image_refs, self.ensembles)
        meta = ak.Array(meta0.layout.to_typetracer(forget_length=True))

        def _part(ev):
            if ak.backend(ev) == "typetracer":  # column optimisation: report exactly what we read
                for coll, field in leaves:
                    ak.typetracer.touch_data(ev[coll][field] if coll else ev[field])
                return meta
            return jet_table(ev, **kwargs)

        return dak.map_partitions(_part, events, label="jet-tagging-table", meta=meta)

    def _needed_columns(self, events) -> list[tuple[str | None, str]]:
        """(collection, field) pairs the per-chunk work reads."""
        jf = _fields(events[self.jets])
        want = {(self.jets, f) for f in ("pt", "eta", "msoftdrop", "truthLabel") if f in jf}
        if "msoftdrop" not in jf:
            want.add((self.jets, "mass"))
        if "PV" in _fields(events) and "npvs" in _fields(events.PV):
            want.add(("PV", "npvs"))
        cand_fields = _cand_fields(self.taggers.values(), jf)
        for t in self.taggers.values():
            spec = t.input_spec
            if needs_constituents(spec, jf):
                want |= set(_needed_leaves(events, self.jets, detect_layout(events, self.jets), cand_fields))
            if spec["kind"] == "image" and (spec.get("image_spec") or {}).get("axis") == "jet":
                # images centred on the stored jet axis (rapidity needs pt and mass too)
                want |= {(self.jets, f) for f in ("pt", "eta", "phi", "mass") if f in jf}
            if spec["kind"] == "features":
                for f in spec["features"]:
                    for g in FEATURE_ALIASES.get(f, (f,)):
                        if g in jf:
                            want.add((self.jets, g))
        return sorted(want, key=lambda x: (x[0] or "", x[1]))

    def _fill(self, h, table, classes, dask):
        if dask:
            import dask_awkward as dak

            flatten = dak.flatten
        else:
            flatten = ak.flatten
        pix = {k: flatten(table[f"px_{k}"], axis=1) for k in range(len(self.image_refs))}
        for i, c in enumerate(classes):
            sel = table[table.cls == i]
            h["njets"].fill(c, sel.pt)
            for name in self.scored_names():
                h["score"][name].fill(c, sel[f"s_{name}"], sel.pt, sel.msd, sel.abs_eta, sel.npv)
                h["predicted"][name].fill(c, sel[f"pred_{name}"])
                h["score_moments"][name].fill(c, sel.pt, weight=sel[f"s_{name}"])
            for k, (key, models) in enumerate(self.image_refs.items()):
                p = pix[k][pix[k].cls == i]
                h["image"][f"img{k}"].fill(c, p.c, p.iy, p.ix, weight=p.v)
                for m in models:
                    h["pixel_xy"][m].fill(c, p.c, p.iy, p.ix, weight=p.v * p[f"y_{m}"])
        return h

    def _cutflow(self, events, table, dask):
        if dask:
            import dask_awkward as dak

            lib = dak
        else:
            lib = ak
        fj = events[self.jets]
        _, steps = select_jets(fj, **self.selection, return_steps=True)
        out = {"events": lib.num(fj.pt, axis=0), "jets": lib.sum(lib.num(fj.pt, axis=1))}
        last = None
        for name, m in steps:
            out[f"jets_{name}"] = lib.sum(m)
            last = m
        if last is not None:
            out["events_with_selected_jet"] = lib.sum(lib.any(last, axis=1))
        out["jets_scored"] = lib.num(table.cls, axis=0)
        if not dask:
            out = {k: int(v) for k, v in out.items()}
        return out

    def postprocess(self, accumulator):
        return accumulator
