"""Whole-event images (Madrazo et al.) for standard NanoAOD, and a 3-class event classifier.

Event selection (:func:`select_events`): exactly one isolated lepton (electron or muon) with
pT > 20 GeV, at least ``n_jets_min`` jets with pT > 30 GeV and |η| < 2.4, at least
``n_btag_min`` of them b-tagged, MET above ``met_min``. Selected events are drawn with
:func:`coffea_jetimg.event_images.event_images`.

Per dataset (the dataset is the truth class, from ``labels``, the metadata ``label`` or the
dataset name) it fills:

Every fill is weighted by the event weight (:class:`~coffea_jetimg.systematics.EventWeights`:
``genWeight`` for MC, 1 for data), Weight storage (Σw, Σw²):

``ink``            class × channel × iy × ix, weight w × (``background − pixel``) over the
                   pixels an object was drawn on: average image = background − Σ/Σw
``nevents``        class: Σw of the selected events
``class_score[k]`` class × P(k) for each output class k of the model
``predicted``      class × predicted class index (confusion matrix; names in axis metadata)
``cutflow``        dict of counts, ``sumw`` / ``sumw2`` of all events, ``sumw_selected``

With ``model=None`` only the images, counts and cutflow are filled.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_jetimg.event_images import EventImageSpec, event_images, needed_columns
from coffea_jetimg.inference import Tagger
from coffea_jetimg._bridge import fields_of as _fields, is_dask as _is_dask, map_partitions
from coffea_jetimg.inputs import EventImageInput, input_from_spec
from coffea_jetimg.systematics import EventWeights, is_mc

__all__ = ["EventImageProcessor", "select_events", "event_table"]


def _iso_leptons(events: Any, pt_min: float = 20.0, abs_eta_max: float = 2.4, iso_max: float = 0.15) -> dict[str, Any]:
    """Isolated electrons and muons (isolation/ID applied where the fields exist)."""
    out = {}
    for name, iso_f, id_f in (("Muon", "pfRelIso04_all", "tightId"), ("Electron", "pfRelIso03_all", "cutBased")):
        if name not in _fields(events):
            continue
        c = events[name]
        f = _fields(c)
        m = (c.pt > pt_min) & (abs(c.eta) < abs_eta_max)
        if iso_f in f:
            m = m & (c[iso_f] < iso_max)
        if id_f == "tightId" and id_f in f:
            m = m & c[id_f]
        elif id_f == "cutBased" and id_f in f:
            m = m & (c[id_f] >= 2)  # loose or tighter
        out[name] = m
    return out


def select_events(events: Any, lepton_pt_min: float = 20.0, jet_pt_min: float = 30.0, jet_abs_eta_max: float = 2.4,
                  n_jets_min: int = 1, btag_field: str = "btagDeepFlavB", btag_min: float = 0.3, n_btag_min: int = 0,
                  met_min: float = 0.0, return_steps: bool = False) -> Any:
    """Semileptonic event selection.

    Returns
    -------
    mask : ``n_events * bool``
    steps : list of (name, cumulative mask), with ``return_steps``
    """
    lib: Any = ak
    if _is_dask(events):
        import dask_awkward as dak

        lib = dak
    leps = _iso_leptons(events, lepton_pt_min)
    n_lep = None
    for m in leps.values():
        k = lib.sum(m, axis=1)
        n_lep = k if n_lep is None else n_lep + k
    if n_lep is None:
        raise KeyError("events have neither Muon nor Electron collections")
    steps: list[tuple[str, Any]] = []
    mask = n_lep == 1
    steps.append(("one_lepton", mask))
    jets = events.Jet
    jsel = (jets.pt > jet_pt_min) & (abs(jets.eta) < jet_abs_eta_max)
    mask = mask & (lib.sum(jsel, axis=1) >= n_jets_min)
    steps.append(("jets", mask))
    if n_btag_min > 0:
        mask = mask & (lib.sum(jsel & (jets[btag_field] >= btag_min), axis=1) >= n_btag_min)
        steps.append(("btag", mask))
    if met_min > 0:
        mask = mask & (events.MET.pt > met_min)
        steps.append(("met", mask))
    return (mask, steps) if return_steps else mask


def event_table(events: ak.Array, *, mask: ak.Array, spec: EventImageSpec, tagger: Tagger | None,
                class_index: int, weights: EventWeights | None = None, mc: bool = True) -> ak.Array:
    """Images of the selected events (ink pixels, with their event's weight ``w``), the event
    weights ``w`` and model probabilities; one row per selected event."""
    sel = events[mask]
    w_all = weights.of(events, mc) if weights is not None else np.ones(len(events))
    w = w_all[np.asarray(ak.to_numpy(mask), bool)]
    img = event_images(sel, spec)
    n = len(img)
    ink = np.float32(spec.background) - img
    j, c, iy, ix = np.nonzero(ink)
    counts = np.bincount(j, minlength=n).astype(np.int64) if n else np.zeros(0, np.int64)
    px = ak.unflatten(ak.zip({"c": c.astype(np.int32), "iy": iy.astype(np.int32), "ix": ix.astype(np.int32),
                              "v": ink[j, c, iy, ix].astype(np.float64), "w": w[j].astype(np.float64)},
                             depth_limit=1), counts)
    cols: dict[str, Any] = {"cls": np.full(n, class_index, np.int32), "w": w.astype(np.float64), "px": px}
    if tagger is not None:
        probs = tagger.predict(img)
        for k in range(len(tagger.class_names)):
            cols[f"p{k}"] = np.minimum(probs[:, k], np.nextafter(np.float32(1), np.float32(0))).astype(np.float64)
        cols["pred"] = (np.argmax(probs, axis=1) if n else np.zeros(0)).astype(np.int32)
    return ak.zip(cols, depth_limit=1)


class EventImageProcessor(processor.ProcessorABC):
    """Event images and, optionally, a 3-class event classifier (e.g. ttbar / W+jets / DY).

    Parameters
    ----------
    model : str, Path, Tagger or None
        An artifact whose input is an event image (its ``event_image_spec`` is used).
    spec : EventImageSpec or dict, optional
        Image settings when ``model`` is None (default :class:`EventImageSpec`).
    labels : dict of str to str, optional
        Dataset → class name (else the metadata ``label``, else the dataset name).
    selection : dict, optional
        Keywords of :func:`select_events`.
    device, backend, batch_size :
        Passed to :class:`~coffea_jetimg.inference.Tagger`.
    weights : EventWeights or None
        Event weights of MC datasets (default ``genWeight``; data weigh 1); ``None``: unweighted.
    """

    def __init__(self, model: Any = None, spec: EventImageSpec | dict[str, Any] | None = None,
                 labels: dict[str, str] | None = None, selection: dict[str, Any] | None = None,
                 device: str | None = None, backend: str = "torch", batch_size: int = 64,
                 num_threads: int | None = 1, weights: EventWeights | None = EventWeights()) -> None:
        self.tagger: Tagger | None = None
        self.weights = weights
        if model is not None:
            self.tagger = model if isinstance(model, Tagger) else Tagger(model, device=device, backend=backend,
                                                                        batch_size=batch_size, num_threads=num_threads)
            inp = input_from_spec(self.tagger.input_spec)
            if inp.level != "event":
                raise ValueError(f"model {self.tagger.name!r} takes {inp.describe()} inputs, "
                                 "not event images; use JetTaggingProcessor")
            assert isinstance(inp, EventImageInput)  # the one event-level input kind
            spec = inp.event_image_spec
        elif isinstance(spec, dict):
            spec = EventImageSpec.from_dict(spec)
        self.spec = spec or EventImageSpec()
        self.labels = dict(labels or {})
        sel = {"jet_pt_min": self.spec.jet_pt_min, "jet_abs_eta_max": self.spec.jet_abs_eta_max,
               "btag_field": self.spec.btag_field, "btag_min": self.spec.btag_min}
        self.selection = {**sel, **(selection or {})}

    def _class(self, events: Any) -> str:
        meta = getattr(events, "metadata", None) or {}
        ds = meta.get("dataset", "unknown")
        return str(self.labels.get(ds, meta.get("label", ds)))

    def check(self, events: Any) -> None:
        """Raise before any work if the events lack a collection or the b-tag field the images need."""
        have = _fields(events)
        missing = [c for c in ("Jet", "MET") if c not in have]
        if not any(c in have for c in ("Muon", "Electron")):
            missing.append("Muon or Electron")
        if missing:
            raise KeyError(f"event images need the collections {missing}, absent from the events")
        if self.spec.btag_field not in _fields(events.Jet):
            raise KeyError(f"Jet has no b-tag field '{self.spec.btag_field}'")

    def _needed_columns(self, events: Any) -> list[tuple[str, str]]:
        """The images' columns plus the lepton isolation and ID the selection reads."""
        want: list[Any] = list(needed_columns(events, self.spec))
        if self.weights is not None:
            want += sorted(self.weights.columns(events, is_mc(events, self.weights)), key=lambda x: x[1])
        for name, extra in (("Muon", ("pfRelIso04_all", "tightId")), ("Electron", ("pfRelIso03_all", "cutBased"))):
            if name in _fields(events):
                have = _fields(events[name])
                want += [(name, f) for f in extra if f in have]
        return want

    def _hists(self, cls_name: str, dask: bool) -> dict[str, Any]:
        H: Any = hist.Hist
        if dask:
            import hist.dask as hda

            H = hda.Hist
        w, h = self.spec.npix
        cls = hist.axis.StrCategory([cls_name], name="class", label="Dataset class")
        out: dict[str, Any] = {
            "ink": H(cls, hist.axis.Integer(0, 3, name="channel", flow=False),
                     hist.axis.Integer(0, h, name="iy", label="phi pixel", flow=False),
                     hist.axis.Integer(0, w, name="ix", label="eta pixel", flow=False), storage=hist.storage.Weight()),
        }
        out["nevents"] = H(cls, hist.axis.Integer(0, 1, name="n", flow=False), storage=hist.storage.Weight())
        if self.tagger is not None:
            names = self.tagger.class_names
            out["class_score"] = {
                k: H(cls, hist.axis.Regular(40, 0.0, 1.0, name="score", label=f"P({k})", flow=False),
                     storage=hist.storage.Weight()) for k in names}
            out["predicted"] = H(cls, hist.axis.Integer(0, len(names), name="predicted", flow=False,
                                                        metadata={"class_names": names}),
                                 storage=hist.storage.Weight())
        return out

    def process(self, events: Any) -> dict[str, dict[str, Any]]:
        """Images, counts, scores and cutflow of one chunk (eager) or the whole dataset (dask)."""
        meta = getattr(events, "metadata", None) or {}
        dataset = meta.get("dataset", "unknown")
        self.check(events)
        dask = _is_dask(events)
        cls_name = self._class(events)
        mask, steps = select_events(events, return_steps=True, **self.selection)
        mc = is_mc(events, self.weights)
        kwargs: dict[str, Any] = dict(spec=self.spec, tagger=self.tagger, class_index=0, weights=self.weights, mc=mc)
        table = map_partitions(lambda ev, m: event_table(ev, mask=m, **kwargs), events, mask,
                               touch=[self._needed_columns(events), None], meta=self._empty_table(),
                               label="event-image-table")
        flatten: Any = ak.flatten
        lib: Any = ak
        if dask:
            import dask_awkward as dak

            flatten, lib = dak.flatten, dak
        h = self._hists(cls_name, dask)
        h["nevents"].fill(cls_name, table.cls, weight=table.w)
        px = flatten(table.px, axis=1)
        h["ink"].fill(cls_name, px.c, px.iy, px.ix, weight=px.v * px.w)
        if self.tagger is not None:
            for k, name in enumerate(self.tagger.class_names):
                h["class_score"][name].fill(cls_name, table[f"p{k}"], weight=table.w)
            h["predicted"].fill(cls_name, table.pred, weight=table.w)
        cutflow: dict[str, Any] = {"events": lib.num(mask, axis=0)}
        for name, m in steps:
            cutflow[name] = lib.sum(m)
        one = mask * 0 + 1.0  # per event
        w_ev = self.weights.array(events, mc, one) if self.weights is not None else one
        cutflow["sumw"], cutflow["sumw2"] = lib.sum(w_ev), lib.sum(w_ev * w_ev)
        cutflow["sumw_selected"] = lib.sum(w_ev[mask])
        cutflow["events_mc"] = cutflow["events"] if mc else 0
        if not dask:
            cutflow = {k: (float(v) if k.startswith("sumw") else int(v)) for k, v in cutflow.items()}
        h["cutflow"] = cutflow
        return {dataset: h}

    def _empty_table(self) -> ak.Array:
        cols: dict[str, Any] = {"cls": np.zeros(0, np.int32), "w": np.zeros(0),
                "px": ak.unflatten(ak.zip({"c": np.zeros(0, np.int32), "iy": np.zeros(0, np.int32),
                                           "ix": np.zeros(0, np.int32), "v": np.zeros(0), "w": np.zeros(0)},
                                          depth_limit=1), np.zeros(0, np.int64))}
        if self.tagger is not None:
            for k in range(len(self.tagger.class_names)):
                cols[f"p{k}"] = np.zeros(0)
            cols["pred"] = np.zeros(0, np.int32)
        return ak.zip(cols, depth_limit=1)

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
