"""Accumulate generated events into NanoAOD-style columns and write them with uproot.

A chunk is ``{"collections": {name: {"counts": int32[n_events], field: flat ndarray}},
"scalars": {name: ndarray[n_events]}}``: plain numpy, cheap to send between processes.
:func:`chunk_to_awkward` turns it into the dict that ``uproot`` writes with NanoAOD naming
(``nFatJet``, ``FatJet_pt``, ..., ``MET_pt``); floats are stored as float32 and integers as
int32 (``event`` as uint64).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

__all__ = ["ChunkBuilder", "chunk_to_awkward", "RootWriter", "COLLECTIONS"]

#: collections in the order they are written
COLLECTIONS = ("PFCands", "FatJet", "FatJetPFCands", "Jet", "JetPFCands", "GenJet", "GenPart", "Electron", "Muon")


class ChunkBuilder:
    """Collects per-event dicts (from :meth:`EventGenerator.next`) into one chunk."""

    def __init__(self):
        self.events: list[tuple[dict, dict]] = []

    def add(self, collections: dict, scalars: dict):
        self.events.append((collections, scalars))

    def __len__(self):
        return len(self.events)

    def build(self, first_event: int = 0, lumi_block: int = 1) -> dict:
        """The chunk (see the module docstring); ``event`` numbers start at ``first_event + 1``,
        ``run`` is 1 and ``luminosityBlock`` is ``lumi_block``."""
        cols: dict[str, dict] = {}
        if not self.events:
            return {"collections": {}, "scalars": {}}
        for name in COLLECTIONS:
            per = [ev[0][name] for ev in self.events]
            fields = list(per[0])
            d = {"counts": np.array([len(p[fields[0]]) for p in per], dtype=np.int64)}
            for f in fields:
                d[f] = np.concatenate([np.asarray(p[f]) for p in per])
            cols[name] = d
        sc = {k: np.array([ev[1][k] for ev in self.events]) for k in self.events[0][1]}
        n = len(self.events)
        sc["run"] = np.ones(n, dtype=np.uint32)
        sc["luminosityBlock"] = np.full(n, lumi_block, dtype=np.uint32)
        sc["event"] = np.arange(first_event + 1, first_event + n + 1, dtype=np.uint64)
        self.events = []
        return {"collections": cols, "scalars": sc}


def _cast(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    if a.dtype.kind == "b":
        return a.astype(np.bool_)
    if a.dtype in (np.uint64, np.uint32):
        return a
    return a.astype(np.int32)


def chunk_to_awkward(chunk: dict) -> dict:
    """``{branch-group: array}`` for ``uproot``: jagged records per collection, flat scalars."""
    out = {}
    for name, d in chunk["collections"].items():
        counts = d["counts"]
        rec = ak.zip({f: _cast(v) for f, v in d.items() if f != "counts"}, depth_limit=1)
        out[name] = ak.unflatten(rec, counts)
    for name, v in chunk["scalars"].items():
        out[name] = _cast(v)
    return out


class RootWriter:
    """Writes chunks to the ``Events`` tree of a new ROOT file, extending it chunk by chunk."""

    def __init__(self, path: str):
        import uproot

        self.path = str(path)
        self.file = uproot.recreate(self.path)
        self.n = 0

    def write(self, chunk: dict):
        if not chunk["scalars"]:
            return
        data = chunk_to_awkward(chunk)
        if self.n == 0:
            # a TTree with NanoAOD naming (``f["Events"] = data`` writes an RNTuple in uproot >= 5.7)
            self.file.mktree("Events", data, counter_name=lambda counted: "n" + counted,
                             field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner)
        else:
            self.file["Events"].extend(data)
        self.n += len(chunk["scalars"]["event"])

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
