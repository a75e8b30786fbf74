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

__all__ = ["InputFileError", "open_events", "check_file", "detect_schema", "schema_class", "missing_event_ids",
           "SCHEMAS"]

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
        If the file does not exist, is a directory or empty, is not a ROOT file, is truncated,
        has no ``Events`` / ``Delphes`` tree, or has no tree ``treename``.
    """
    fobj, name, n, branches = _open_checked(path, treename)
    fobj.close()
    return name, n, branches


def _prime_rntuple_fields(tree) -> None:
    """Fill uproot's per-field child lists of an RNTuple in one pass.

    uproot (5.7.7) finds the children of each ``RField`` by scanning every field record of the
    RNTuple, so listing the fields (``keys()``, coffea's ``typenames()``) is quadratic in their
    number: for a 1,802-field PFNano RNTuple of 10 events, 1.2e7 attribute look-ups and 13-20 s
    per ``keys()``, paid again by every fresh ``uproot.open`` (measured: ``open_events`` 22-28 s
    against 2-7 s for the same file as a TTree). One pass over the records gives the same lists
    (uproot's own rule: anonymous fields are replaced by their children) in milliseconds. Any
    surprise in uproot's internals leaves the lists to uproot.
    """
    try:
        import uproot

        if not isinstance(tree, uproot.behaviors.RNTuple.RNTuple):
            return
        records = tree.field_records
        fields = tree.all_fields
        children: dict[int, list[int]] = {}
        for i, rec in enumerate(records):
            if rec.parent_field_id != i:
                children.setdefault(rec.parent_field_id, []).append(i)

        def visible(fid):
            out = []
            for i in children.get(fid, ()):
                if fields[i].is_anonymous:
                    out.extend(visible(i))
                else:
                    out.append(fields[i])
            return out

        for fid, f in enumerate(fields):
            if getattr(f, "_fields", ...) is None:
                f._fields = visible(fid)
    except Exception:  # noqa: BLE001  # an optimisation only: uproot's own (slow) path still works
        return


def _open_checked(path, treename: str | None = None):
    """:func:`check_file`'s work, returning the open uproot file too: ``(file, tree, n, branches)``."""
    import uproot

    path = str(path)
    if "://" not in path:
        if not os.path.exists(path):
            raise InputFileError(path, "file does not exist")
        if os.path.isdir(path):
            raise InputFileError(path, "is a directory, not a ROOT file")
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
        raise InputFileError(
            path, f"cannot be opened as ROOT ({type(err).__name__}: {err})".replace("\n", " ")
        ) from err
    try:
        try:
            name = treename or _tree_name_for(fobj)
        except KeyError as err:
            raise InputFileError(
                path, f"has no 'Events' (NanoAOD) or 'Delphes' tree; top-level keys: {err.args[0]}"
            ) from None
        if treename is not None:
            keys = {k.split(";")[0]: c for k, c in fobj.classnames(recursive=False).items()}
            if treename not in keys:
                trees = sorted(k for k, c in keys.items()
                               if c in ("TTree", "ROOT::RNTuple", "ROOT::Experimental::RNTuple"))
                raise InputFileError(path, f"has no tree {treename!r}; its trees: {trees or sorted(keys)}")
        try:
            tree = fobj[name]
            _prime_rntuple_fields(tree)
            branches = list(tree.keys())
            n = tree.num_entries
        except Exception as err:
            raise InputFileError(
                path, (f"tree '{name}' cannot be read, the file may be truncated "
                       f"({type(err).__name__}: {err})").replace("\n", " ")
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
                    path, f"tree '{name}' is truncated or corrupt: branch '{branches[-1]}' cannot be read "
                          f"({type(err).__name__})"
                ) from err
    except BaseException:
        fobj.close()
        raise
    return fobj, name, n, branches




def detect_schema(branches) -> str:
    """Guess the coffea schema from branch names: ``'delphes'``, ``'pfnano'`` or ``'nanoaod'``."""
    bset = set(branches)
    if any(b.startswith("Event/") or b == "Event" or b.startswith("ParticleFlowJet") for b in bset):
        return "delphes"
    if "nPFCands" in bset or any(b.startswith("FatJetPFCands_") or b.startswith("JetPFCands_") for b in bset):
        return "pfnano"
    return "nanoaod"


def _jetimg_build_collections(self, field_names, input_contents):
    """``_build_collections`` of coffea's NanoAOD schemas, with two per-file mends (the decision
    is made from the branch names of each file, so one schema class serves a mixed fileset):

    - older *inline* PFNano (``{jets}PFCands_pt`` etc. stored, no ``{jets}PFCands_pFCandsIdx``):
      coffea builds ``{jets}.pFCandsIdxG`` by cutting ``{jets}PFCands`` into runs of
      ``{jets}_nConstituents``, which assumes every constituent of every jet is stored. The
      inline files store a filtered subset (the 2017 UL test file keeps candidates only for AK4
      jets with pT >= 20 GeV), so the counts do not fit and the eager read fails (``structure
      imposed by 'counts' does not fit``), or worse, candidates are given to the wrong jets. The
      index is left out for that layout; :func:`coffea_jetimg.constituents` links candidates to
      jets by ``{jets}PFCands_jetIdx``, which is right in every case.
    - a ``Vertex``-type collection without ``x``/``y``/``z`` (e.g. ``PV`` with only ``PV_npvs``)
      is built as a plain collection: coffea's ``VertexArray`` refuses to exist without them.
    """
    names = set(field_names)
    nested = dict(self.nested_index_items)
    for key, (counts, target) in list(nested.items()):
        if f"{target}_pt" in names and f"{target}_jetIdx" in names and f"{target}_pFCandsIdx" not in names:
            del nested[key]
    mixins = dict(self.mixins)
    for coll, mixin in list(mixins.items()):
        if mixin in ("Vertex", "SecondaryVertex") and any(n.startswith(f"{coll}_") for n in names):
            if not all(f"{coll}_{f}" in names for f in ("x", "y", "z")):
                mixins[coll] = "NanoCollection"
    self.nested_index_items, self.mixins = nested, mixins  # instance attributes shadow the class's
    try:
        return self._coffea_base._build_collections(self, field_names, input_contents)
    finally:
        del self.nested_index_items, self.mixins


def _rntuple_dask_compat() -> None:
    """Let coffea's dask mode read RNTuple files (uproot >= 5.7; NanoAOD is moving to RNTuple).

    coffea's dask opener asks uproot for ``ak_add_doc={"__doc__": "title", ...}``, the TTree
    attribute names, for every file; uproot's RNTuple field (``RField``) calls the attribute
    ``description`` and has no ``title``, so ``.compute()`` failed with ``AttributeError: 'RField'
    object has no attribute 'title'`` (coffea 2026.9.0, uproot 5.7.7; eager and virtual reads go
    another way and work). This gives ``RField`` a read-only ``title`` equal to its
    ``description``, only where uproot has none. It runs wherever the package's schema classes are
    built or unpickled, so on Dask workers too.
    """
    try:
        from uproot.models.RNTuple import RField
    except ImportError:  # an uproot without RNTuple: nothing to mend
        return
    if not hasattr(RField, "title"):
        RField.title = property(lambda self: self.description, doc="The field's description (as TTree's title).")
    _prime_on_open()


def _prime_on_open() -> None:
    """Make every RNTuple opened in this process list its fields in one pass (see
    :func:`_prime_rntuple_fields`), including the ones coffea's dask and Runner paths open
    themselves on each partition: uproot's ``all_fields`` is wrapped to prime the lists the
    first time it is built. The lists are uproot's own (tested field for field)."""
    try:
        from uproot.models.RNTuple import Model_ROOT_3a3a_RNTuple as RNTupleModel
    except ImportError:
        return
    orig = RNTupleModel.__dict__.get("all_fields")
    if not isinstance(orig, property) or getattr(orig.fget, "_jetimg_primed", False):
        return

    def all_fields(self):
        fields = orig.fget(self)
        if not self.__dict__.get("_jetimg_fields_primed"):
            self.__dict__["_jetimg_fields_primed"] = True
            _prime_rntuple_fields(self)
        return fields

    all_fields._jetimg_primed = True  # type: ignore[attr-defined]
    RNTupleModel.all_fields = property(all_fields, doc=orig.__doc__)


def _make_schemas():
    from coffea.nanoevents import NanoAODSchema, PFNanoAODSchema

    _rntuple_dask_compat()

    out = {}
    for key, base in (("pfnano", PFNanoAODSchema), ("nanoaod", NanoAODSchema)):
        for allow in (False, True):
            name = f"JetImg{base.__name__}" + ("AllowMissingEventIds" if allow else "")
            cls = type(name, (base,), {
                "__module__": __name__, "__qualname__": name, "_coffea_base": base,
                "_build_collections": _jetimg_build_collections,
                "__doc__": f"coffea's {base.__name__} with the mends of :func:`schema_class`"
                           + ("; a file without run/luminosityBlock/event is a warning, not an error" if allow else ""),
            })
            if allow:
                cls.error_missing_event_ids = False
            globals()[name] = cls  # importable by name, so the class pickles to Dask/futures workers
            out[key, allow] = cls
    return out


_SCHEMAS: dict = {}

#: The message for a NanoAOD file without event-ID branches ({missing}: their names).
MISSING_EVENT_IDS = ("has no event-ID branches ({missing}); coffea refuses such files by default "
                     "(they cannot be matched to runs/lumi sections or other files). To open it anyway pass "
                     "allow_missing_event_ids=True (coffea-jetimg run/train: --allow-missing-event-ids)")


def missing_event_ids(branches, schema) -> list[str]:
    """The event-ID branches (``run``, ``luminosityBlock``, ``event``) a NanoAOD-type file lacks;
    ``[]`` for other schemas."""
    ids = getattr(schema, "event_ids", None) or []
    bset = set(branches)
    return [b for b in ids if b not in bset]


def schema_class(schema: str, allow_missing_event_ids: bool = False):
    """The coffea schema class for ``schema`` ('pfnano', 'nanoaod' or 'delphes').

    The NanoAOD ones are subclasses of coffea's that open the older inline PFNano layout and
    files whose ``PV`` lacks ``x``/``y``/``z`` (see :func:`_jetimg_build_collections`).

    Parameters
    ----------
    schema : str
        One of :data:`SCHEMAS`.
    allow_missing_event_ids : bool
        Follow coffea's advice for files without ``run``/``luminosityBlock``/``event``
        (``error_missing_event_ids = False``): open them with a warning instead of an error.
    """
    from coffea.nanoevents import DelphesSchema

    if schema == "delphes":
        return DelphesSchema
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; choose one of {SCHEMAS} or 'auto'")
    if not _SCHEMAS:
        _SCHEMAS.update(_make_schemas())
    return _SCHEMAS[schema, bool(allow_missing_event_ids)]


def __getattr__(name):  # the schema classes by name (unpickling on a worker that has not built them)
    if name.startswith("JetImg") and name.endswith(("Schema", "AllowMissingEventIds")):
        schema_class("pfnano")
        if name in globals():
            return globals()[name]
    raise AttributeError(name)


def open_events(
    path: str,
    schema: str = "auto",
    mode: Literal["eager", "dask", "virtual"] = "eager",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    treename: str | None = None,
    allow_missing_event_ids: bool = False,
    metadata: dict | None = None,
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
    entry_start, entry_stop : int, optional
        Read only these entries (eager and virtual modes).
    treename : str, optional
        The tree; by default ``Events`` or ``Delphes``, whichever the file has.
    allow_missing_event_ids : bool
        Open a NanoAOD/PFNano file that lacks ``run``, ``luminosityBlock`` or ``event``
        (coffea refuses by default, ``error_missing_event_ids``) with a warning instead.
    metadata : dict, optional
        The events' ``metadata`` (``dataset``, ``label``, ``filename``, ...), as the Runner gives a
        processor; ``filename`` defaults to ``path``.

    Returns
    -------
    events : awkward.Array or dask_awkward.Array

    Raises
    ------
    InputFileError
        Naming the file, if it cannot be read, holds no events tree, or lacks the event-ID
        branches (and ``allow_missing_event_ids`` is False).
    """
    from coffea.nanoevents import NanoEventsFactory

    fobj, name, n, branches = _open_checked(path, treename)
    if schema == "auto":
        schema = detect_schema(branches)
    cls = schema_class(schema, allow_missing_event_ids)
    missing = missing_event_ids(branches, cls)
    if missing and not allow_missing_event_ids:
        raise InputFileError(path, MISSING_EVENT_IDS.format(missing=", ".join(missing)))
    if missing:
        warnings.warn(f"{path}: no event-ID branches {missing}; opened anyway (allow_missing_event_ids=True)",
                      RuntimeWarning, stacklevel=2)
    if mode == "dask":  # dask opens the file again on each partition: hand it the path
        fobj.close()
        source, kwargs = {str(path): name}, {}
    else:  # the open file, whose field lists are already listed (fast for RNTuple, see above)
        source, kwargs = fobj, {"treepath": name, "entry_start": entry_start, "entry_stop": entry_stop}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            events = NanoEventsFactory.from_root(source, schemaclass=cls, mode=mode,
                                                 metadata={"filename": str(path), **(metadata or {})},
                                                 **kwargs).events()
        except InputFileError:
            raise
        except Exception as err:
            fobj.close()
            raise InputFileError(path, f"coffea could not build {schema} events ({type(err).__name__}: {err})") from err
    if mode == "eager":
        fobj.close()
    return events
