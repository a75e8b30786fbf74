"""Jet tagging with saved deep-learning taggers: scores, masses and images into histograms.

A thin, stateless bundle over library functions: the selection (:mod:`coffea_jetimg.selection`),
the input plan (:class:`coffea_jetimg.inputs.InputPlan`: layout detected once, constituents built
once, each distinct input built once for all models), the taggers
(:class:`coffea_jetimg.inference.Tagger`) and one eager/dask bridge
(:func:`coffea_jetimg._bridge.map_partitions`). Per chunk::

    check(events)                    the plan checks every model's input before any read
    table = jet_table(events, ...)   selected jets → one row each: class, JET_VARIABLES, scores,
                                     non-zero pixels (eager: directly; dask: per partition)
    fill(hists, table)               one fill path for eager and dask

Per dataset it fills (all addable, so chunks and datasets merge with coffea's ``accumulate``):

Every fill is weighted by the jet's event weight ``w`` (:class:`~coffea_jetimg.systematics.EventWeights`:
``genWeight`` for MC, 1 for data; negative weights are summed as they are), Weight storage
(Σw, Σw²) unless said:

``score[model]``     ``hist``: truth class × score × the ``jet_axes`` (by default jet pT [GeV] and
                     jet mass [GeV]; |η| and n PV on request); also for each ensemble (mean
                     class probabilities)
``score_syst[model]`` only with ``systematics``: truth class × systematic (``nominal``,
                     ``<name>Up``/``Down``) × score × pT × mass, the variations of an MC dataset
                     (data fill ``nominal`` only)
``predicted[model]`` truth class × predicted class index (arg-max; names in the axis metadata)
``score_moments[model]`` truth class × pT × moment k ∈ {1, 2}, Double storage: Σ w yᵏ
``image[key]``       truth class × channel × iy × ix, weight w·x (x the pixel intensity)
``image_x2[key]``    the same axes, Double storage: Σ w x²
``pixel_xy[model]``  the same axes, Double storage: Σ w x·y (pixel intensity × score)
``njets``            truth class × pT: Σw of the scored jets
``cutflow``          dict of counts (``jets_without_constituents``: selected jets whose
                     constituents the file does not store; they are not scored) and weighted sums
                     (``sumw``/``sumw2``: Σw, Σw² of all events, the normalisation of
                     ``xsec × lumi / sumw``; ``sumw_jets_<step>``: Σw of the jets passing each cut)

With Σw, Σwx, Σwx², Σwy, Σwy², Σwxy the per-pixel (weighted) Pearson correlation between
intensity and score follows for any number of merged chunks (:func:`coffea_jetimg.metrics.pearson_map`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

import awkward as ak
import hist
from coffea import processor

from coffea_jetimg import axes as A
from coffea_jetimg._bridge import fields_of, is_dask, map_partitions
from coffea_jetimg.errors import ConstituentsError, InputsError
from coffea_jetimg.inference import Tagger
from coffea_jetimg.inputs import ImageInput, InputPlan, input_from_spec
from coffea_jetimg.stored_taggers import StoredTagger, parse_stored
from coffea_jetimg.selection import (DEFAULT_SELECTION, OTHER, TRUTH_NAMES, TRUTH_SOURCES, TruthSource, select_jets,
                                     truth_source)
from coffea_jetimg.systematics import EventWeights, Variation, is_mc, variation_names
from coffea_jetimg.tagging import (DEFAULT_AXES, JET_VARIABLES, JetVariable, add_pixel_sums, check_ensembles,
                                   empty_table, jet_table, jet_variables, mass_field, parse_ensembles)

__all__ = [
    "JetTaggingProcessor",
    "JetVariable",
    "JET_VARIABLES",
    "select_jets",
    "jet_table",
    "parse_ensembles",
    "TRUTH_NAMES",
    "DEFAULT_SELECTION",
    "DEFAULT_AXES",
]


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
    truth : str or TruthSource
        Where jets get their truth class (:func:`~coffea_jetimg.selection.truth_source`):
        ``'auto'`` (``truthLabel`` when the jets have it, else ``partonFlavour`` for quark/gluon
        taggers, else the dataset's label), ``'truthLabel'``, ``'partonFlavour'`` (|flavour| 1–5
        quark, 21 gluon, other codes ``'unmatched'``: counted in their own class), or a
        :class:`~coffea_jetimg.selection.TruthSource`.
    device, backend, batch_size, num_threads, server :
        Passed to :class:`~coffea_jetimg.inference.Tagger` (``server="grpc://HOST:PORT"``: the
        taggers are served by a Triton server instead of evaluated in the worker).
    axes : dict, optional
        Overrides of :data:`DEFAULT_AXES`.
    jet_axes : sequence of str, optional
        The :data:`JET_VARIABLES` that are axes of the ``score`` histograms, ``pt`` and ``msd``
        among them; default :data:`~coffea_jetimg.tagging.DEFAULT_JET_AXES` (``pt``, ``msd``).
        ``("pt", "msd", "abs_eta", "npv")`` adds |η| and pileup slices (×21 the bins).
    stored : sequence of StoredTagger or str
        Discriminators stored in the file (``"qgl"``, ``"particleNet_TvsQCD"``, or a
        :class:`~coffea_jetimg.stored_taggers.StoredTagger` for any branch), histogrammed like the
        models on the same jets (``score``, ``predicted``, ``score_moments``).
    pixel_maps : bool
        Fill image sums and the Pearson moments (per-pixel histograms).
    ensembles : dict of str to list of str, optional
        Ensemble name → names of two or more of ``models`` with the same class names and signal
        class; scored by the mean of their class probabilities and histogrammed like a model
        (``score``, ``predicted``, ``score_moments``; no pixel maps).
    weights : EventWeights or None
        Event weights of MC datasets (default ``genWeight``); ``None``: every event weighs 1.
        A dataset is data when its metadata say ``is_mc: false`` or (without that key) when its
        events have no generator-weight branch; data weigh 1.
    systematics : sequence of Variation
        Systematic variations (:mod:`coffea_jetimg.systematics`: :class:`~coffea_jetimg.systematics.JetScale`,
        :class:`~coffea_jetimg.systematics.JetResolution`, :class:`~coffea_jetimg.systematics.WeightVariation`)
        filled into ``score_syst`` for MC datasets.
    """

    def __init__(self, models: Any, jets: str = "FatJet", selection: dict[str, Any] | None = None,
                 labels: dict[str, str] | None = None, truth_names: dict[int, str] | None = None,
                 device: str | None = None, backend: str = "torch", batch_size: int = 512,
                 num_threads: int | None = 1, axes: dict[str, Any] | None = None, pixel_maps: bool = True,
                 ensembles: Mapping[str, str | Sequence[str]] | None = None, server: str | None = None,
                 weights: EventWeights | None = EventWeights(), systematics: Sequence[Variation] = (),
                 truth: str | TruthSource = "auto", jet_axes: Sequence[str] | None = None,
                 stored: Sequence[StoredTagger | str] = ()) -> None:
        if not isinstance(models, dict):
            models = {None: models}
        self.taggers: OrderedDict[str, Tagger] = OrderedDict()
        for name, m in models.items():
            t = m if isinstance(m, Tagger) else Tagger(m, device=device, backend=backend, batch_size=batch_size,
                                                        num_threads=num_threads, server=server)
            name = name or t.name
            if name in self.taggers:
                raise ValueError(f"two models named {name!r}; pass a dict {{name: artifact}} with distinct names")
            if input_from_spec(t.input_spec).level != "jet":
                raise ValueError(f"model {name!r} takes {input_from_spec(t.input_spec).describe()} inputs; "
                                 "use EventImageProcessor")
            self.taggers[name] = t
        if not self.taggers:
            raise ValueError("no models given")
        self.ensembles = check_ensembles(ensembles or {}, self.taggers)
        self.stored: OrderedDict[str, StoredTagger] = OrderedDict()
        for st in stored:
            st = st if isinstance(st, StoredTagger) else parse_stored([st])[0]
            if st.name in self.taggers or st.name in self.ensembles or st.name in self.stored:
                raise ValueError(f"stored tagger {st.name!r}: a model, ensemble or stored tagger has that name")
            self.stored[st.name] = st
        self.jets = jets
        self.batch_size = int(batch_size)
        self.selection = dict(DEFAULT_SELECTION if selection is None else {**DEFAULT_SELECTION, **selection})
        self.labels: dict[Any, str] = dict(labels or {})
        self.truth_names = dict(TRUTH_NAMES if truth_names is None else truth_names)
        self._truth_sources = {**TRUTH_SOURCES, "truthLabel": TruthSource("truthLabel", self.truth_names)}
        truth_source(truth, [], sources=self._truth_sources)  # an unknown name fails here, not in a worker
        self.truth = truth
        self.axes = {**DEFAULT_AXES, **(axes or {})}
        self.jet_variables = jet_variables(jet_axes)
        self.pixel_maps = pixel_maps
        self.weights = weights
        self.systematics = tuple(systematics)
        names = [v.name for v in self.systematics]
        if len(set(names)) != len(names):
            raise ValueError(f"systematic variations with the same name: {names}")
        self.plan = InputPlan([t.input_spec for t in self.taggers.values()], jets=jets)
        self._input_models: dict[str, list[str]] = {}
        for name, t in self.taggers.items():
            self._input_models.setdefault(input_from_spec(t.input_spec).key, []).append(name)
        # image inputs whose pixels are histogrammed, and which models' scores go with them:
        # models without an image input are correlated with the first image
        refs: OrderedDict[str, list[str]] = OrderedDict(
            (k, list(ms)) for k, ms in self._input_models.items() if isinstance(self.plan.inputs[k], ImageInput))
        if refs:
            first = next(iter(refs))
            refs[first] += [m for m in self.taggers if m not in sum(refs.values(), [])]
        self.image_refs = refs if pixel_maps else OrderedDict()

    # -- description ------------------------------------------------------------------------
    def model_info(self) -> dict[str, dict[str, Any]]:
        """Per model: artifact path, classes, signal class, input kind and image key."""
        keys = list(self.image_refs)
        out: dict[str, dict[str, Any]] = {}
        for name, t in self.taggers.items():
            img = next((f"img{k}" for k, key in enumerate(keys) if name in self.image_refs[key]), None)
            inp = input_from_spec(t.input_spec)
            out[name] = {"artifact": str(t.path), "architecture": t.spec.get("architecture"),
                         "class_names": t.class_names, "signal_class": t.signal_class,
                         "input_kind": inp.kind, "input": inp.describe(), "image": img}
        for name, members in self.ensembles.items():
            h = self._head(name)
            out[name] = {"ensemble_of": list(members), "class_names": h.class_names, "signal_class": h.signal_class,
                         "input_kind": "ensemble", "image": None}
        for name, st in self.stored.items():
            out[name] = st.info(self.jets)
        return out

    def scored_names(self) -> list[str]:
        """The models, the ensembles, then the stored taggers: every name with ``score``/``predicted``
        histograms."""
        return [*self.taggers, *self.ensembles, *self.stored]

    def _head(self, name: str) -> Tagger | StoredTagger:
        """The tagger whose class names and signal class a model, ensemble or stored tagger has."""
        if name in self.stored:
            return self.stored[name]
        return self.taggers[name] if name in self.taggers else self.taggers[self.ensembles[name][0]]

    def truth_for(self, events: Any) -> TruthSource | None:
        """The truth source of these events' jets, or ``None`` (every jet is of the dataset's class)."""
        jf = fields_of(events[self.jets]) if self.jets in fields_of(events) else []
        return truth_source(self.truth, jf, [self._head(n).signal_class for n in self.scored_names()],
                            sources=self._truth_sources)

    def classes_for(self, events: Any) -> list[str]:
        """Truth classes of a dataset: its truth source's names (+ its unmatched class), or its one label."""
        src = self.truth_for(events)
        return src.classes() if src is not None else [self._dataset_class(events)]

    def _dataset_class(self, events: Any) -> str:
        meta = getattr(events, "metadata", None) or {}
        ds = meta.get("dataset")
        return str(self.labels.get(ds, meta.get("label", OTHER)))

    # -- checks -----------------------------------------------------------------------------
    def check(self, events: Any) -> None:
        """Raise before any work if the events cannot feed every model (names the models and branches)."""
        if self.jets not in fields_of(events):
            raise ConstituentsError(f"no '{self.jets}' collection in the events: nothing to tag")
        missing = [f"{self.jets}_{st.field} (stored tagger {name!r})" for name, st in self.stored.items()
                   if st.field not in fields_of(events[self.jets])]
        if missing:
            where = (getattr(events, "metadata", None) or {}).get("filename", "the events")
            raise InputsError(f"{where}: no branch {', '.join(missing)}")
        self.plan.check(events, names=self._input_models)

    # -- histograms -------------------------------------------------------------------------
    def _hists(self, classes: list[str], jet_fields: list[str], dask: bool,
               systematics: Sequence[str] = ()) -> dict[str, Any]:
        H: Any = hist.Hist
        if dask:
            import hist.dask as hda

            H = hda.Hist
        W, D = hist.storage.Weight(), hist.storage.Double()
        ax = self.axes
        cls = hist.axis.StrCategory(classes, name=A.CLASS, label="Truth class")
        jet_axes = {v.name: v.axis(ax.get(v.binning_key, v.binning), jet_fields) for v in self.jet_variables}
        pt_ax = jet_axes[A.PT]
        moment = hist.axis.Integer(1, 3, name=A.MOMENT, label="moment k of the score (sum of w y^k)", flow=False)
        out: dict[str, Any] = {"score": {}, "predicted": {}, "score_moments": {}, "image": {}, "image_x2": {},
                               "pixel_xy": {}, "njets": H(cls, pt_ax, storage=W)}
        if systematics:
            out["score_syst"] = {}
            syst_ax = hist.axis.StrCategory(list(systematics), name=A.SYSTEMATIC, label="Systematic variation")
        for name in self.scored_names():
            t = self._head(name)
            score_ax = hist.axis.Regular(ax["score_bins"], 0.0, 1.0, name=A.SCORE, label=f"{name} P({t.signal_class})",
                                         flow=False, metadata={"model": name, "signal_class": t.signal_class,
                                                               "class_names": t.class_names})
            out["score"][name] = H(cls, score_ax, *jet_axes.values(), storage=W)
            if systematics:
                out["score_syst"][name] = H(cls, syst_ax, score_ax, pt_ax, jet_axes[A.MSD], storage=W)
            out["predicted"][name] = H(cls, hist.axis.Integer(0, len(t.class_names), name=A.PREDICTED, flow=False,
                                                              label=f"{name} predicted class",
                                                              metadata={"class_names": t.class_names}), storage=W)
            out["score_moments"][name] = H(cls, pt_ax, moment, storage=D)
        for k, (key, models) in enumerate(self.image_refs.items()):
            inp = self.plan.inputs[key]
            assert isinstance(inp, ImageInput)
            spec = inp.image_spec
            C, (Hh, Wd) = len(spec.channels), spec.npix
            meta = {"channels": list(spec.channels), "intensity": spec.intensity, "normalize": spec.normalize}
            pix = [hist.axis.Integer(0, C, name=A.CHANNEL, flow=False, metadata=meta),
                   hist.axis.Integer(0, Hh, name=A.IY, label="pixel row", flow=False),
                   hist.axis.Integer(0, Wd, name=A.IX, label="pixel column", flow=False)]
            out["image"][f"img{k}"] = H(cls, *pix, storage=W)
            out["image_x2"][f"img{k}"] = H(cls, *pix, storage=D)
            for m in models:
                out["pixel_xy"][m] = H(cls, *pix, storage=D)
        return out

    # -- the work ---------------------------------------------------------------------------
    def process(self, events: Any) -> dict[str, dict[str, Any]]:
        """Histograms and cutflow of one chunk (eager) or of the whole dataset (dask), keyed by dataset."""
        dataset = (getattr(events, "metadata", None) or {}).get("dataset", "unknown")
        self.check(events)  # before reading anything
        dask = is_dask(events)
        classes = self.classes_for(events)
        mc = is_mc(events, self.weights)
        variations = self.systematics if mc else ()
        fj = events[self.jets]
        mask, steps = select_jets(fj, **self.selection, return_steps=True)
        kwargs = self._table_kwargs(classes, self._dataset_class(events))
        # no truth source: a field no jet has, so every jet is of the dataset's class
        kwargs["truth"] = self.truth_for(events) or TruthSource("")
        kwargs.update(weights=self.weights, is_mc=mc, variations=variations)
        table = map_partitions(lambda ev, m: jet_table(ev, mask=m, **kwargs), events, mask,
                               touch=[self._needed_columns(events), None],
                               meta=empty_table(self.scored_names(), self.image_refs, variations, mc,
                                                self.jet_variables, self.stored),
                               label="jet-tagging-table")
        hists = self._hists(classes, fields_of(fj), dask, variation_names(self.systematics) if self.systematics else ())
        self._fill(hists, table, classes, dask, variations)
        hists["cutflow"] = self._cutflow(events, fj, steps, table, dask, mc)
        return {dataset: hists}

    def _table_kwargs(self, classes: list[str], dataset_class: str) -> dict[str, Any]:
        return dict(taggers=self.taggers, jets=self.jets, selection=self.selection, class_names=classes,
                    truth_names=self.truth_names, dataset_class=dataset_class, image_refs=self.image_refs,
                    ensembles=self.ensembles, plan=self.plan, batch_size=self.batch_size,
                    variables=self.jet_variables, stored=list(self.stored.values()))

    def _needed_columns(self, events: Any) -> list[tuple[str | None, str]]:
        """(collection, field) pairs the per-chunk work reads: the selection's, the jet variables',
        the truth label, the weights', the variations' and the input plan's."""
        jf = fields_of(events[self.jets])
        want: set[tuple[str | None, str]] = set()
        for v in self.jet_variables:
            for c in v.reads(jf):
                want.add(c if isinstance(c, tuple) else (self.jets, c))
        src = self.truth_for(events)
        want |= {(self.jets, f) for f in ("pt", "eta", *([src.field] if src else [])) if f in jf}
        if self.selection.get("msd") is not None or self.systematics:
            want.add((self.jets, mass_field(jf)))
        mc = is_mc(events, self.weights)
        if self.weights is not None:
            want |= self.weights.columns(events, mc)
        for var in self.systematics if mc else ():
            want |= var.columns(events, self.jets)
            if var.kind == "jet" and getattr(var, "inputs", False):  # the scaled jets' pT and masses
                want |= {(self.jets, f) for f in ("pt", "mass", "msoftdrop")}
        want |= self.plan.columns(events)
        want |= {(self.jets, st.field) for st in self.stored.values()}
        have = fields_of(events)
        got: set[tuple[str | None, str]] = set()
        for c, f in want:
            if c is None:
                if f in have:
                    got.add((c, f))
            elif c in have and f in fields_of(events[c]):
                got.add((c, f))
        return sorted(got, key=lambda x: (x[0] or "", x[1]))

    def _fill(self, h: dict[str, Any], table: Any, classes: list[str], dask: bool,
              variations: Sequence[Variation] = ()) -> dict[str, Any]:
        """One fill path for eager tables and dask-awkward tables."""
        flatten: Any = ak.flatten
        if dask:
            import dask_awkward as dak

            flatten = dak.flatten
        nominal = table[table.scored & table.sel]
        pix = {k: flatten(nominal[f"px_{k}"], axis=1) for k in range(len(self.image_refs))}
        names = ["cls", "w", *(v.name for v in self.jet_variables),
                 *(f"{p}_{n}" for n in self.scored_names() for p in ("s", "pred"))]
        # eager: the scalar columns as numpy once (masking a record array per class costs more)
        col = {f: nominal[f] if dask else ak.to_numpy(nominal[f]) for f in names}
        for i, c in enumerate(classes):
            m = col["cls"] == i
            sel = {f: col[f][m] for f in names}
            w = sel["w"]
            h["njets"].fill(c, sel[A.PT], weight=w)
            jet_cols = [sel[v.name] for v in self.jet_variables]
            for name in self.scored_names():
                y = sel[f"s_{name}"]
                h["score"][name].fill(c, y, *jet_cols, weight=w)
                h["predicted"][name].fill(c, sel[f"pred_{name}"], weight=w)
                h["score_moments"][name].fill(c, sel[A.PT], 1, weight=w * y)
                h["score_moments"][name].fill(c, sel[A.PT], 2, weight=w * y * y)
            for k, (key, models) in enumerate(self.image_refs.items()):
                if not dask:
                    continue  # eager: all classes at once below
                p = pix[k][pix[k].cls == i]
                h["image"][f"img{k}"].fill(c, p.c, p.iy, p.ix, weight=p.w * p.v)
                h["image_x2"][f"img{k}"].fill(c, p.c, p.iy, p.ix, weight=p.w * p.v * p.v)
                for m in models:
                    h["pixel_xy"][m].fill(c, p.c, p.iy, p.ix, weight=p.w * p.v * p[f"y_{m}"])
        if not dask:
            for k, (key, models) in enumerate(self.image_refs.items()):
                add_pixel_sums(h["image"][f"img{k}"], {m: h["pixel_xy"][m] for m in models}, pix[k],
                               h["image_x2"][f"img{k}"])
        if "score_syst" in h:
            self._fill_systematics(h["score_syst"], table, classes, dask, variations)
        return h

    def _fill_systematics(self, h: dict[str, Any], table: Any, classes: list[str], dask: bool,
                          variations: Sequence[Variation]) -> None:
        """``score_syst``: the nominal, then per variation direction the jets it selects, with its
        pT and mass (jet variations; and its scores when propagated into the inputs) or its weight
        (weight variations). A variation that only re-bins costs one fill of the scored table."""
        fields = set(table.fields)
        runs: list[tuple[str, str, str | None, str]] = [("nominal", "sel", None, "w")]  # (label, sel, factor, w)
        for v in variations:
            for d in ("Up", "Down"):
                key = f"{v.name}{d}"
                if v.kind == "jet":
                    runs.append((key, f"sel_{key}", f"f_{key}", "w"))
                else:
                    runs.append((key, "sel", None, f"w_{key}"))
        def score_field(name: str, label: str) -> str:
            return f"s_{name}__{label}" if f"s_{name}__{label}" in fields else f"s_{name}"

        # every column once (eager: as numpy, never the whole table with its pixel lists masked per
        # direction); each direction then masks only the columns it fills
        need = {"cls", "scored", A.PT, A.MSD, *(f for r in runs for f in r[1:] if f),
                *(score_field(n, r[0]) for r in runs for n in self.scored_names())}
        col = {f: table[f] if dask else ak.to_numpy(table[f]) for f in sorted(need)}
        for label, sel_f, f_f, w_f in runs:
            keep = col["scored"] & col[sel_f]
            for i, c in enumerate(classes):
                m = keep & (col["cls"] == i)
                scale: Any = col[f_f][m] if f_f else 1.0
                pt, mass = col[A.PT][m] * scale, col[A.MSD][m] * scale
                for name in self.scored_names():
                    h[name].fill(c, label, col[score_field(name, label)][m], pt, mass, weight=col[w_f][m])

    def _cutflow(self, events: Any, fj: Any, steps: list[tuple[str, Any]], table: Any, dask: bool,
                 mc: bool) -> dict[str, Any]:
        lib: Any = ak
        if dask:
            import dask_awkward as dak

            lib = dak
        n_jets = lib.num(fj.pt, axis=1)
        ones = n_jets * 0 + 1.0
        w_ev = self.weights.array(events, mc, ones) if self.weights is not None else ones
        w_jet = lib.broadcast_arrays(w_ev, fj.pt)[0]
        out: dict[str, Any] = {"events": lib.num(fj.pt, axis=0), "jets": lib.sum(n_jets),
                               "sumw": lib.sum(w_ev), "sumw2": lib.sum(w_ev * w_ev)}
        out["events_mc"] = out["events"] if mc else 0  # addable: a dataset is MC when it counted MC events
        last = None
        for name, m in steps:
            out[f"jets_{name}"] = lib.sum(m)
            out[f"sumw_jets_{name}"] = lib.sum(w_jet[m])
            last = m
        if last is not None:
            out["events_with_selected_jet"] = lib.sum(lib.any(last, axis=1))
        nominal = table.sel
        out["jets_without_constituents"] = lib.sum(nominal & ~table.scored)
        out["jets_scored"] = lib.sum(nominal & table.scored)
        out["sumw_jets_scored"] = lib.sum(table.w[nominal & table.scored])
        for name in self.stored:  # values outside [0, 1], filled into the lowest score bin
            out[f"stored_{name}_invalid"] = lib.sum(nominal & table.scored & table[f"bad_{name}"])
        if not dask:
            out = {k: (float(v) if k.startswith("sumw") else int(v)) for k, v in out.items()}
        return out

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
