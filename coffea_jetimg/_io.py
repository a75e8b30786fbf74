"""Opening input files with errors that name the file and the problem.

coffea's ``NanoEventsFactory`` and uproot raise deep, generic errors for an empty, truncated or
non-ROOT file (``received 0 bytes from FSSpecSource``) or for a tree that lacks a branch. The
functions here catch those at the door and raise :class:`InputFileError`, whose message names
the file, the tree or branch, and the likely cause.
"""

from __future__ import annotations

import os
import warnings
from typing import Literal

from .errors import InputFileError

__all__ = ["InputFileError", "open_events", "check_file", "detect_schema", "SCHEMAS"]

SCHEMAS = ("pfnano", "nanoaod", "delphes")


def _tree_name_for(fobj) -> str:
    keys = {k.split(";")[0] for k in fobj.keys(recursive=False)}
    for name in ("Events", "Delphes"):
        if name in keys:
            return name
    raise KeyError(sorted(keys))


def check_file(path: str, treename: str | None = None):
    """Open ``path`` with uproot and return ``(treename, num_entries, branch_names)``.

    Raises
    ------
    InputFileError
        If the file does not exist, is empty, is not a ROOT file, is truncated, or has no
        ``Events`` / ``Delphes`` tree.
    """
    import uproot

    path = str(path)
    if "://" not in path:
        if not os.path.exists(path):
            raise InputFileError(path, "file does not exist")
        size = os.path.getsize(path)
        if size == 0:
            raise InputFileError(path, "file is empty (0 bytes)")
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"root":
            raise InputFileError(path, f"not a ROOT file (starts with {magic!r}, expected b'root')")
    try:
        fobj = uproot.open(path)
    except Exception as err:  # uproot raises several types for broken files
        raise InputFileError(path, f"cannot be opened as ROOT ({type(err).__name__}: {err})".replace("\n", " ")) from err
    try:
        try:
            name = treename or _tree_name_for(fobj)
        except KeyError as err:
            raise InputFileError(
                path, f"has no 'Events' (NanoAOD) or 'Delphes' tree; top-level keys: {err.args[0]}"
            ) from None
        try:
            tree = fobj[name]
            branches = list(tree.keys())
            n = tree.num_entries
        except Exception as err:
            raise InputFileError(
                path, f"tree '{name}' cannot be read, the file may be truncated ({type(err).__name__}: {err})".replace("\n", " ")
            ) from err
        # a truncated file opens but its baskets beyond the cut are unreadable: read the last
        # basket of one branch to find out now, not deep inside a processor
        if n > 0 and branches:
            try:
                br = tree[branches[-1]]
                if getattr(br, "num_baskets", 0):  # TTree; an RNTuple is read whole below
                    br.basket(br.num_baskets - 1)
                elif not hasattr(br, "num_baskets"):
                    tree.arrays([branches[-1]], entry_start=max(n - 1, 0))
            except Exception as err:
                raise InputFileError(
                    path, f"tree '{name}' is truncated or corrupt: branch '{branches[-1]}' cannot be read ({type(err).__name__})"
                ) from err
    finally:
        fobj.close()
    return name, n, branches


def detect_schema(branches) -> str:
    """Guess the coffea schema from branch names: ``'delphes'``, ``'pfnano'`` or ``'nanoaod'``."""
    bset = set(branches)
    if any(b.startswith("Event/") or b == "Event" or b.startswith("ParticleFlowJet") for b in bset):
        return "delphes"
    if "nPFCands" in bset or any(b.startswith("FatJetPFCands_") or b.startswith("JetPFCands_") for b in bset):
        return "pfnano"
    return "nanoaod"


def schema_class(schema: str):
    from coffea.nanoevents import DelphesSchema, NanoAODSchema, PFNanoAODSchema

    try:
        return {"pfnano": PFNanoAODSchema, "nanoaod": NanoAODSchema, "delphes": DelphesSchema}[schema]
    except KeyError:
        raise ValueError(f"unknown schema {schema!r}; choose one of {SCHEMAS} or 'auto'") from None


def open_events(
    path: str,
    schema: str = "auto",
    mode: Literal["eager", "dask", "virtual"] = "eager",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    treename: str | None = None,
):
    """Open one file as coffea NanoEvents, after checking it can be read.

    Parameters
    ----------
    path : str
        A ROOT file (PFNano, NanoAOD or Delphes; generated files are PFNano).
    schema : {'auto', 'pfnano', 'nanoaod', 'delphes'}
        ``'auto'`` picks from the branch names.
    mode : {'eager', 'dask', 'virtual'}
        coffea's NanoEvents mode: eager awkward, dask-awkward or virtual arrays. ``'eager'``
        reads every branch of the file; ``'virtual'`` gives the same arrays but reads a branch
        when it is first touched, so ``constituents(events, jets, fields=...)`` and the inputs
        built from it read only the branches they use (what :func:`coffea_jetimg.train.load_jets`
        does).

    Returns
    -------
    events : awkward.Array or dask_awkward.Array

    Raises
    ------
    InputFileError
        Naming the file, if it cannot be read or holds no events tree.
    """
    from coffea.nanoevents import NanoEventsFactory

    name, n, branches = check_file(path, treename)
    if schema == "auto":
        schema = detect_schema(branches)
    kwargs = {}
    if mode != "dask":
        kwargs = {"entry_start": entry_start, "entry_stop": entry_stop}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            factory = NanoEventsFactory.from_root(
                {str(path): name}, schemaclass=schema_class(schema), mode=mode, **kwargs
            )
            return factory.events()
        except InputFileError:
            raise
        except Exception as err:
            raise InputFileError(path, f"coffea could not build {schema} events ({type(err).__name__}: {err})") from err
