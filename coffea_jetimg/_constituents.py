"""Per-jet constituent records from coffea NanoEvents (PFNano, both layouts, and Delphes).

coffea's own ``FatJet.constituents`` raises for the current PFNano layout, where
``FatJetPFCands`` holds only the pair (``jetIdx``, ``pFCandsIdx``) that links a jet to a row of
``PFCands``. This module reduces every supported layout to one form: for each candidate, the
event it is in, the index of its jet inside that event, and its kinematics; one tested helper
(:func:`_group_by_jet`) then builds the ``events → jets → candidates`` array.

The grouping is done with numpy on flat buffers (``ak.num`` + ``ak.flatten``, never by walking
layouts), so it is the same code for eager arrays and, through ``dask_awkward.map_partitions``,
for each partition of a dask-awkward array.
"""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np

from ._util import fields_of as _fields
from .errors import ConstituentsError
from .kinematics import wrap_phi

__all__ = ["constituents", "constituent_columns", "detect_layout", "ConstituentsError", "flat_jet_constituents",
           "CANDIDATE_FIELDS", "OPTIONAL_FIELDS"]

#: Fields every constituent record carries (GeV, rad; charge in e; PDG id).
CANDIDATE_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pdgId")
#: Fields carried when the file has them.
OPTIONAL_FIELDS = ("d0", "dz", "puppiWeight", "fromPV")
#: Always gathered, whatever ``fields`` asks for.
KINEMATIC_FIELDS = ("pt", "eta", "phi", "mass")

_DELPHES_UID_MASK = 0xFFFFFF  # TRef stores the lower 24 bits of TObject::fUniqueID


def _has(events, name: str) -> bool:
    return name in _fields(events)


def detect_layout(events, jets: str = "FatJet") -> str:
    """Which constituent layout ``events`` use for collection ``jets``.

    Returns
    -------
    str
        ``'pfnano'`` (``PFCands`` + ``{jets}PFCands`` with ``jetIdx``/``pFCandsIdx``),
        ``'pfnano-inline'`` (kinematics stored in ``{jets}PFCands``), or ``'delphes'``.

    Raises
    ------
    ConstituentsError
        Naming the branches that are missing.
    """
    if not _has(events, jets):
        raise ConstituentsError(
            f"no '{jets}' collection in the events (available: {', '.join(sorted(_fields(events))[:40])})"
        )
    jet_fields = _fields(events[jets])
    if "Constituents" in jet_fields:
        return "delphes"
    link = f"{jets}PFCands"
    if _has(events, link):
        lf = _fields(events[link])
        if "jetIdx" in lf and "pFCandsIdx" in lf and _has(events, "PFCands"):
            return "pfnano"
        if "jetIdx" in lf and all(f in lf for f in ("pt", "eta", "phi")):
            return "pfnano-inline"
    raise ConstituentsError(
        f"no jet constituents for '{jets}': need branches {link}_jetIdx + {link}_pFCandsIdx + PFCands_* "
        f"(current PFNano), or {link}_{{jetIdx,pt,eta,phi,mass}} (older PFNano), or a Delphes "
        f"'Constituents' reference; this file has none of them (a plain NanoAOD file?)"
    )


def _group_by_jet(n_jets, cand_event, cand_jet, records: dict[str, np.ndarray], src=None, clean=None):
    """Group flat candidates into ``events → jets → candidates``.

    Parameters
    ----------
    n_jets : ndarray of int, shape (n_events,)
        Jets per event.
    cand_event, cand_jet : ndarray of int, shape (n_cands,)
        Event index and jet index inside that event of each candidate. Candidates whose jet
        index is outside ``[0, n_jets[event])`` are dropped (the jet was not stored).
    records : dict of str to ndarray
        Each shape (n_cands,), or, with ``src``, any length: candidate ``i`` is row ``src[i]``
        (PFNano: the whole PFCands columns, gathered once, after dropping and ordering).
    src : ndarray of int, shape (n_cands,), optional
    clean : callable, optional
        ``clean(cols) -> keep mask`` on the gathered columns (it may replace columns in ``cols``);
        candidates with a False are dropped.

    Returns
    -------
    ak.Array
        ``n_events * var * var * {records}``; candidate order inside a jet is the input order.
    """
    take, gjet = _jet_order(n_jets, cand_event, cand_jet)
    if src is not None:
        take = src if take is None else src[take]
    cols = {k: np.asarray(v) if take is None else np.asarray(v)[take] for k, v in records.items()}
    if clean is not None and len(gjet):
        keep = clean(cols)
        if not keep.all():
            cols = {k: v[keep] for k, v in cols.items()}
            gjet = gjet[keep]
    return _assemble(n_jets, gjet, cols)


def _jet_order(n_jets, cand_event, cand_jet):
    """Which candidates to keep, in jet order, and the global jet index of each kept one.

    Returns ``(take, gjet)``: ``take`` indexes the candidates (None: all of them, already in
    order, so the columns need no copy); ``gjet[i]`` is the flat jet of kept candidate ``i``.
    PFNano and Delphes store candidates jet by jet, so the stable sort is usually skipped."""
    n_jets = np.asarray(n_jets, dtype=np.int64)
    cand_event = np.asarray(cand_event, dtype=np.int64)
    cand_jet = np.asarray(cand_jet, dtype=np.int64)
    if not len(cand_event):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    jet_offsets = np.zeros(len(n_jets) + 1, dtype=np.int64)
    np.cumsum(n_jets, out=jet_offsets[1:])
    ok = (cand_jet >= 0) & (cand_jet < n_jets[cand_event])
    gjet = jet_offsets[cand_event] + cand_jet
    take = None
    if not ok.all():
        take = np.flatnonzero(ok)
        gjet = gjet[take]
    if len(gjet) > 1 and bool((gjet[1:] < gjet[:-1]).any()):
        order = np.argsort(gjet, kind="stable")
        take = order if take is None else take[order]
        gjet = gjet[order]
    return take, gjet


def _assemble(n_jets, gjet, cols: dict[str, np.ndarray]):
    """``events → jets → candidates`` from columns already in jet order (``gjet`` non-decreasing)."""
    n_jets = np.asarray(n_jets, dtype=np.int64)
    counts = np.bincount(gjet, minlength=int(n_jets.sum())).astype(np.int64)
    flat = ak.zip(cols, depth_limit=1) if cols else ak.Array(np.zeros(0))
    per_jet = ak.unflatten(flat, counts)
    return ak.unflatten(per_jet, n_jets)


def _flat_event_index(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def _numpy_col(arr, dtype=None) -> np.ndarray:
    out = ak.to_numpy(ak.flatten(arr, axis=None)) if arr.ndim > 1 else ak.to_numpy(arr)
    return out.astype(dtype) if dtype is not None else out


def _njets(events, jets):
    return ak.to_numpy(ak.fill_none(ak.num(events[jets].pt, axis=1), 0)).astype(np.int64)


def _wanted(fields) -> tuple[str, ...]:
    """Our field names to gather: the kinematics, plus ``fields`` (None: every known field)."""
    known = CANDIDATE_FIELDS + OPTIONAL_FIELDS
    if fields is None:
        return known
    if isinstance(fields, str):
        fields = (fields,)
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise ValueError(f"constituents: unknown field(s) {unknown} in fields=; known: {', '.join(known)}")
    return tuple(f for f in known if f in KINEMATIC_FIELDS or f in fields)


def _cand_columns(cands, fields=None) -> dict[str, np.ndarray]:
    """Flat numpy columns of a jagged candidate collection (those of :func:`_wanted`)."""
    have = _fields(cands)
    return {f: _numpy_col(cands[f]) for f in _wanted(fields) if f in have}


def _pfnano(events, jets, fields=None):
    n_jets = _njets(events, jets)
    link = events[f"{jets}PFCands"]
    n_link = ak.to_numpy(ak.fill_none(ak.num(link.jetIdx, axis=1), 0))
    ev = _flat_event_index(n_link)
    jet_idx = _numpy_col(link.jetIdx, np.int64)
    cand_idx = _numpy_col(link.pFCandsIdx, np.int64)
    pf = events.PFCands
    n_pf = ak.to_numpy(ak.fill_none(ak.num(pf.pt, axis=1), 0)).astype(np.int64)
    pf_off = np.zeros(len(n_pf) + 1, dtype=np.int64)
    np.cumsum(n_pf, out=pf_off[1:])
    valid = (cand_idx >= 0) & (cand_idx < n_pf[ev]) if len(ev) else np.zeros(0, bool)
    if not np.all(valid):
        warnings.warn(f"{np.count_nonzero(~valid)} {jets}PFCands_pFCandsIdx entries point outside PFCands; dropped")
        jet_idx = np.where(valid, jet_idx, -1)
    gidx = pf_off[ev] + np.where(valid, cand_idx, 0)
    # the PFCands columns whole, with the index of each link's candidate: the caller gathers
    # once, after dropping and ordering (one pass per column instead of three)
    return n_jets, ev, jet_idx, _cand_columns(pf, fields), gidx


def _pfnano_inline(events, jets, fields=None):
    n_jets = _njets(events, jets)
    link = events[f"{jets}PFCands"]
    n_link = ak.to_numpy(ak.fill_none(ak.num(link.jetIdx, axis=1), 0))
    return n_jets, _flat_event_index(n_link), _numpy_col(link.jetIdx, np.int64), _cand_columns(link, fields), None


_DELPHES_FLOWS = (
    # collection, pt field, charge (None: field Charge), pdgId (None: field PID), mass
    ("EFlowTrack", "PT", None, None, None),
    ("EFlowPhoton", "ET", 0, 22, 0.0),
    ("EFlowNeutralHadron", "ET", 0, 130, 0.0),
    ("Tower", "ET", 0, 0, 0.0),
)


_DELPHES_DTYPES = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "mass": np.float32,
                   "charge": np.int32, "pdgId": np.int32, "d0": np.float32, "dz": np.float32}
#: Our field → the Delphes branch (pt: the flow's own PT or ET branch).
_DELPHES_BRANCH = {"eta": "Eta", "phi": "Phi", "mass": "Mass", "charge": "Charge", "pdgId": "PID", "d0": "D0",
                   "dz": "DZ"}


def _delphes(events, jets, fields=None):
    """Resolve Delphes ``Constituents`` TRefs against the EFlow collections by unique id."""
    jet_arr = events[jets]
    n_jets = _njets(events, jets)
    refs = jet_arr.Constituents.refs  # events → jets → refs
    n_refs_per_jet = ak.to_numpy(ak.flatten(ak.num(refs, axis=2), axis=None)).astype(np.int64)
    ref_ev = np.repeat(_flat_event_index(n_jets), n_refs_per_jet)
    ref_jet = np.repeat(_jet_in_event(n_jets), n_refs_per_jet)
    ref_uid = _numpy_col(refs, np.int64) & _DELPHES_UID_MASK

    wanted = [f for f in _wanted(fields) if f in _DELPHES_DTYPES]
    keys, cols = [], {k: [] for k in wanted}
    used = []
    for name, ptf, charge, pdg, mass in _DELPHES_FLOWS:
        if not _has(events, name):
            continue
        if name == "Tower" and used:  # towers duplicate the EFlow neutrals: use them only alone
            continue
        coll = events[name]
        n = ak.to_numpy(ak.num(coll[ptf], axis=1)).astype(np.int64)
        uid = _numpy_col(coll.fUniqueID, np.int64) & _DELPHES_UID_MASK
        keys.append((_flat_event_index(n) << 24) | uid)
        size = len(uid)
        has_ip = name == "EFlowTrack" and "D0" in _fields(coll)
        # constants for the flows that do not store a field (photons have no charge branch)
        const = {"mass": mass, "charge": charge, "pdgId": pdg, "d0": None if has_ip else 0, "dz": None if has_ip else 0}
        for f in wanted:
            c, dtype = const.get(f), _DELPHES_DTYPES[f]
            branch = ptf if f == "pt" else _DELPHES_BRANCH[f]
            cols[f].append(np.full(size, c, dtype) if c is not None else _numpy_col(coll[branch], dtype))
        used.append(name)
    if not used:
        raise ConstituentsError(f"Delphes jets '{jets}' reference constituents, but no EFlowTrack/EFlowPhoton/"
                                "EFlowNeutralHadron/Tower collection is in the events")
    all_keys = np.concatenate(keys)
    order = np.argsort(all_keys, kind="stable")
    sorted_keys = all_keys[order]
    want = (ref_ev << 24) | ref_uid
    pos = np.searchsorted(sorted_keys, want)
    pos_c = np.minimum(pos, max(len(sorted_keys) - 1, 0))
    found = (len(sorted_keys) > 0) & (sorted_keys[pos_c] == want) if len(want) else np.zeros(0, bool)
    src = order[pos_c]
    records = {k: np.concatenate(v)[src] for k, v in cols.items()}
    # references to other objects (e.g. muons) are dropped, and so are flow objects with zero pT:
    # Delphes writes Eta = 999.9 for those (EFlowTracks of zero pT in ../shared delphes.root), which
    # would give an infinite energy and NaN pz in every 4-vector input (LoLa) of their jet
    jet_idx = np.where(found & (records["pt"] > 0), ref_jet, -1)
    return n_jets, ref_ev, jet_idx, records, None


def _jet_in_event(n_jets) -> np.ndarray:
    """For flat jets, their index inside their event."""
    n_jets = np.asarray(n_jets, dtype=np.int64)
    total = int(n_jets.sum())
    off = np.repeat(np.cumsum(n_jets) - n_jets, n_jets)
    return np.arange(total, dtype=np.int64) - off


_LAYOUTS = {"pfnano": _pfnano, "pfnano-inline": _pfnano_inline, "delphes": _delphes}


def _sanitize(records: dict[str, np.ndarray], where: str) -> np.ndarray:
    """Mask of finite candidates; wraps φ into (-π, π] (a new array: the input is not modified).
    Warns with the count dropped."""
    keep = np.isfinite(records["pt"]) & np.isfinite(records["eta"]) & np.isfinite(records["phi"])
    if "mass" in records:
        keep &= np.isfinite(records["mass"])
    n_bad = len(keep) - int(np.count_nonzero(keep))
    if n_bad:
        warnings.warn(f"{where}: dropped {n_bad} candidate(s) with non-finite pt/eta/phi/mass", RuntimeWarning)
    phi = records["phi"]
    fin = phi[keep] if n_bad else phi
    if len(fin) and not (fin.min() > -np.pi and fin.max() <= np.pi):  # else already wrapped: no copy
        wrapped = wrap_phi(phi)
        records["phi"] = wrapped.astype(phi.dtype, copy=False)
    return keep


def _constituents_eager(events, jets: str, sanitize: bool = True, fields=None, layout: str | None = None):
    layout = layout or detect_layout(events, jets)
    n_jets, ev, jet_idx, records, src = _LAYOUTS[layout](events, jets, fields)
    if "pt" not in records or "eta" not in records or "phi" not in records:
        raise ConstituentsError(f"constituents of '{jets}' lack pt/eta/phi columns")
    if "mass" not in records:
        records["mass"] = np.zeros_like(records["pt"])
    # only the candidates of stored jets are checked (not every PFCand of the event)
    clean = (lambda cols: _sanitize(cols, f"constituents of {jets}")) if sanitize else None
    out = _group_by_jet(n_jets, ev, jet_idx, records, src=src, clean=clean)
    from coffea.nanoevents.methods import vector

    return ak.with_name(out, "PtEtaPhiMLorentzVector", behavior=vector.behavior)


def constituents(events, jets: str = "FatJet", *, sanitize: bool = True, fields=None, layout: str | None = None):
    """Per-jet constituents of collection ``jets``.

    Parameters
    ----------
    events : ak.Array or dask_awkward.Array
        coffea NanoEvents (PFNanoAODSchema / NanoAODSchema / DelphesSchema), eager or dask.
    jets : str
        Jet collection: ``'FatJet'``, ``'Jet'``, or for Delphes e.g. ``'ParticleFlowJet08'``.
    sanitize : bool
        Drop candidates with non-finite pt, eta, phi or mass (with a warning) and wrap φ into
        (-π, π].
    fields : iterable of str, optional
        The fields to gather besides ``pt``, ``eta``, ``phi``, ``mass`` (always there), e.g.
        ``('charge',)`` for charged/neutral images; ``()`` for 4-vectors only. Default: all
        of them. Fewer fields means fewer branches read and gathered: on the dask path only
        those are loaded (:func:`coffea_jetimg.inputs.constituent_fields` says which fields an
        artifact's input needs).
    layout : str, optional
        The layout of :func:`detect_layout`, when the caller has already detected it (an input
        plan detects it once per chunk for every model).

    Returns
    -------
    ak.Array or dask_awkward.Array
        ``n_events * var * var * PtEtaPhiMLorentzVector`` records with fields ``pt`` (GeV),
        ``eta``, ``phi`` (rad), ``mass`` (GeV), ``charge``, ``pdgId``, plus ``d0``, ``dz``
        (cm), ``puppiWeight`` and ``fromPV`` where the file has them (of those, only the
        ones in ``fields`` when it is given). Jets line up with
        ``events[jets]``; a jet whose constituents are not stored has an empty list.

    Raises
    ------
    ConstituentsError
        If the events have no constituent branches for ``jets``; the message names them.
    ValueError
        For a name in ``fields`` that is not a constituent field.
    """
    _wanted(fields)  # a bad name fails here, before any graph is built
    try:
        import dask_awkward as dak
    except ImportError:  # pragma: no cover
        dak = None  # type: ignore[assignment]
    if dak is not None and isinstance(events, dak.Array):
        return _constituents_dask(events, jets, sanitize, fields, layout)
    return _constituents_eager(events, jets, sanitize, fields, layout)


def _needed_leaves(events, jets: str, layout: str, fields=None) -> dict[tuple[str, str], object]:
    """The (collection, field) columns that ``layout`` reads for ``fields`` (see
    :func:`constituents`): all the dask graph will load."""
    want: dict[str, tuple[str, ...]] = {}
    opt = _wanted(fields)
    if layout == "pfnano":
        want = {jets: ("pt",), f"{jets}PFCands": ("jetIdx", "pFCandsIdx"), "PFCands": opt}
    elif layout == "pfnano-inline":
        want = {jets: ("pt",), f"{jets}PFCands": ("jetIdx",) + opt}
    else:
        want = {jets: ("pt", "Constituents")}
        for name, ptf, *_ in _DELPHES_FLOWS:
            if _has(events, name):
                want[name] = ("fUniqueID", ptf) + tuple(_DELPHES_BRANCH[f] for f in opt if f in _DELPHES_BRANCH)
    leaves = {}
    for coll, fields in want.items():
        have = _fields(events[coll])
        for f in fields:
            if f in have:
                leaves[(coll, f)] = events[coll][f]
    return leaves


def constituent_columns(events, jets: str, fields=None, layout: str | None = None) -> list[tuple[str, str]]:
    """The ``(collection, field)`` columns :func:`constituents` reads for ``fields``: all that a
    dask graph of it loads."""
    return list(_needed_leaves(events, jets, layout or detect_layout(events, jets), fields))


def _constituents_dask(events, jets, sanitize, fields=None, layout=None):
    from ._bridge import map_partitions

    layout = layout or detect_layout(events, jets)  # fails now, before any work, on a file without them
    leaves = _needed_leaves(events, jets, layout, fields)
    keys = list(leaves)

    def _from_leaves(*arrays):  # the leaves → a minimal events record → the eager function
        colls: dict[str, dict] = {}
        for (coll, f), a in zip(keys, arrays):
            colls.setdefault(coll, {})[f] = a
        ev = ak.zip({c: ak.zip(v, depth_limit=2) for c, v in colls.items()}, depth_limit=1)
        return _constituents_eager(ev, jets, sanitize, fields, layout)

    return map_partitions(_from_leaves, *leaves.values(), label=f"{jets.lower()}-constituents")


def flat_jet_constituents(cands, fields=("pt", "eta", "phi", "mass")):
    """Unpack jagged constituents into flat numpy buffers for the kernels.

    Parameters
    ----------
    cands : ak.Array
        ``n_jets * var * {fields}`` (jets → candidates) or ``n_events * var * var * {fields}``
        (events → jets → candidates; flattened over events). Masked/None jets count as empty.

    Returns
    -------
    offsets : ndarray of int64, shape (n_jets + 1,)
    columns : dict of str to ndarray, each shape (n_cands,)
    """
    cands = ak.to_packed(cands)
    if cands.ndim == 3:
        cands = ak.flatten(cands, axis=1)
    if cands.ndim != 2:
        raise ValueError("expected jets → candidates (2 levels) or events → jets → candidates (3), "
                         f"got type {cands.type}")
    cands = ak.fill_none(cands, [], axis=0)
    counts = ak.to_numpy(ak.num(cands, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = ak.flatten(cands, axis=1)
    cols = {}
    for f in fields:
        if f in _fields(flat):
            cols[f] = np.ascontiguousarray(ak.to_numpy(flat[f]))
        elif f == "mass":
            cols[f] = np.zeros(len(flat), dtype=np.float32)
        else:
            raise KeyError(f"constituents have no field '{f}' (fields: {_fields(flat)})")
    return offsets, cols
