"""Run saved taggers over a fileset with coffea and write histograms, a ROOT file, plots and a summary.

The fileset is coffea's JSON: {"dataset": {"files": {"path.root": "Events"} or ["path.root"],
"metadata": {"label": "qcd"}}}. Every file is checked first (coffea_jetimg._io.check_file): a
bad file is an error naming it, or with --skip-bad-files it is left out and named in the output.
The default executor is a Dask LocalCluster (--workers N, one thread each); --scheduler
tcp://host:port uses a running cluster instead.

Every chunk reports back (:class:`ChunkGuard`): a chunk that fails is listed in summary.json
(``lost_chunks``: file, entry range, error) and its events in the cutflow (``events_lost``);
without --skip-bad-files such a run exits 1 with ``complete: false``. The outputs are written to
a hidden folder and renamed to -o at the end (:func:`run`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

HELP = "run taggers over a fileset (coffea Runner on Dask/futures/iterative) and write histograms and plots"


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--workers 0`` used to hang, ``--chunksize 0`` to divide by 0)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser) -> None:
    from .selection import TRUTH_SOURCES
    parser.add_argument("--fileset", required=True, help="fileset JSON (coffea format)")
    parser.add_argument("--model", action="append", required=True, metavar="ARTIFACT",
                        help="artifact directory (repeat for several models)")
    parser.add_argument("--ensemble", action="append", default=[], metavar="NAME=MODEL+MODEL",
                        help="also score the mean class probabilities of these models (names as in the artifacts' "
                             "spec; repeat for several ensembles)")
    parser.add_argument("--executor", choices=("dask", "futures", "iterative"), default="dask",
                        help="dask: a Dask LocalCluster (or --scheduler); futures: a process pool; "
                             "iterative: this process")
    parser.add_argument("--workers", type=_positive_int, default=2,
                        help="local workers (dask LocalCluster or futures pool)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://...)")
    parser.add_argument("--chunksize", type=_positive_int, default=50_000, help="events per chunk (one task)")
    parser.add_argument("--maxchunks", type=_positive_int, default=None,
                        help="at most this many chunks per dataset (quick tests)")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="leave out files that cannot feed the models (unreadable, no events, missing collections) "
                             "and chunks that fail (corrupt baskets), naming each with its reason in summary.json")
    parser.add_argument("--allow-missing-event-ids", action="store_true",
                        help="open NanoAOD files without run/luminosityBlock/event (coffea refuses them by default)")
    parser.add_argument("--jets", default="FatJet", help="jet collection to tag")
    parser.add_argument("--truth", default="auto", choices=["auto", *TRUTH_SOURCES],
                        help="where jets get their truth class: auto (truthLabel when the jets have it, else "
                             "partonFlavour for quark/gluon models: |flavour| 1-5 quark, 21 gluon, others "
                             "'unmatched'; else the dataset's label), or that field")
    parser.add_argument("--stored", action="append", default=[], metavar="FIELD[:SIGNAL,BACKGROUND]",
                        help="a tagger stored in the file, histogrammed beside the models on the same jets: "
                             "qgl, btagDeepFlavQG, particleNet_TvsQCD, deepTag_WvsQCD, ... (classes known), or any "
                             "jet branch with its classes, e.g. particleNet_QCD:qcd,top (repeatable)")
    parser.add_argument("--pt-min", type=float, default=200.0, help="jet selection: pt >= this (GeV)")
    parser.add_argument("--pt-max", type=float, default=None, help="jet selection: pt < this (GeV)")
    parser.add_argument("--abs-eta-max", type=float, default=2.4, help="jet selection: |eta| < this")
    parser.add_argument("--msd-min", type=float, default=None, help="jet selection: soft-drop mass >= this (GeV)")
    parser.add_argument("--msd-max", type=float, default=None, help="jet selection: soft-drop mass < this (GeV)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--triton", default=None, metavar="URL",
                        help="score on a Triton server (grpc://HOST:8001, see `coffea-jetimg serve`), "
                             "not in the workers")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="run the TorchScript model with torch, or model.onnx with ONNX Runtime")
    parser.add_argument("--batch-size", type=_positive_int, default=512,
                        help="micro-batch of jets per forward pass (halved automatically on CUDA out-of-memory)")
    parser.add_argument("--schema", choices=("auto", "pfnano", "nanoaod", "delphes"), default="auto",
                        help="coffea NanoEvents schema; auto picks it from the first file's branches")
    parser.add_argument("--signal", default=None, help="signal class for the studies (default: the model's)")
    parser.add_argument("--no-plots", action="store_true", help="write histograms and summary only, no PNGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (coffea's included)")
    g = parser.add_argument_group(
        "weights, systematics and fit templates",
        "MC events weigh their generator weight (data, i.e. datasets with metadata is_mc false or without the "
        "generator-weight branch, weigh 1); fileset metadata may give each dataset its xsec (pb), is_mc and "
        "process (the template name; default the dataset). hists.root then holds the templates "
        "REGION/PROCESS, REGION/PROCESS_SYSTUp|Down and REGION/data_obs of one model (coffea-jetimg fit reads them)")
    g.add_argument("--syst", action="append", default=[], metavar="SPEC",
                   help="a systematic variation (repeatable): jes=0.02 (flat JES), jes=FILE.json.gz:KEY (correctionlib "
                        "uncertainty of the jets' eta and pt), jer=0.1 (extra smearing), with +inputs to propagate a "
                        "jet variation into the tagger inputs (re-scored), NAME=BRANCH:UP:DOWN (a weight vector), "
                        "generator (muR, muF from LHEScaleWeight, isr, fsr from PSWeight)")
    g.add_argument("--generator-weight", default="genWeight", metavar="BRANCH",
                   help="the MC generator-weight branch; 'none' for unweighted MC")
    g.add_argument("--weight-branch", action="append", default=[], metavar="BRANCH",
                   help="a further per-event MC weight multiplied in (repeatable), e.g. puWeight")
    g.add_argument("--lumi", type=float, default=None, metavar="PB-1",
                   help="integrated luminosity: MC templates scaled to xsec x lumi / sum of weights")
    g.add_argument("--template-model", default=None, metavar="NAME", help="the model of the templates (default: "
                   "the first)")
    g.add_argument("--template-observable", choices=("msd", "score"), default="msd",
                   help="msd: jet-mass templates in pass/fail regions at --template-wp (several: score-binned mass "
                        "regions score0, score1, ...); score: the tagger score in one region 'all'")
    g.add_argument("--template-wp", type=float, action="append", default=None, metavar="SCORE",
                   help="working point(s) on the template model's score, on a score-bin edge (default 0.5)")
    g.add_argument("--score-bins", type=_positive_int, default=40, help="score bins of the histograms (0 to 1)")
    g.add_argument("--msd-bins", default="30,0,300", metavar="N,LO,HI", help="jet-mass bins of the histograms (GeV)")
    g.add_argument("--pt-bins", default=None, metavar="E0,E1,...",
                   help="jet-pT edges of the histograms (GeV); default 200,300,...,3000 with three more edges "
                        "from --pt-min up when it is below 200")
    g.add_argument("--jet-axes", default=None, metavar="NAME,...",
                   help="per-jet axes of the score histograms (default pt,msd; add abs_eta and/or npv for |eta| and "
                        "pileup slices, at 3x and 7x the histogram size)")
    parser.add_argument("-o", "--output", required=True, help="output directory")


#: The structure a fileset JSON must have (said in the error when it has another).
FILESET_FORMAT = ('{"dataset": {"files": ["a.root", ...] or {"a.root": "Events"}, "metadata": {"label": "qcd"}}} '
                  'or {"dataset": ["a.root", ...]}')


def _normalise_fileset(raw, where: str = "fileset") -> dict:
    """coffea's fileset forms → ``{dataset: {"files": {path: tree or None}, "metadata": {...}}}``.

    Raises
    ------
    InputFileError
        Naming ``where`` and the dataset whose entry has another structure.
    """
    from .errors import InputFileError

    def bad(what):
        return InputFileError(where, f"{what}; expected {FILESET_FORMAT}")

    if not isinstance(raw, dict) or not raw:
        raise bad(f"holds {'an empty mapping' if isinstance(raw, dict) else 'a ' + type(raw).__name__}")
    out = {}
    for ds, spec in raw.items():
        if isinstance(spec, (list, tuple)):
            spec = {"files": list(spec)}
        if not isinstance(spec, dict):
            raise bad(f"dataset {ds!r} is a {type(spec).__name__}")
        files = spec.get("files")
        if isinstance(files, (list, tuple)):
            if not all(isinstance(f, str) for f in files):
                raise bad(f"dataset {ds!r}: 'files' must hold paths (strings)")
            files = {str(f): None for f in files}
        if not isinstance(files, dict) or not files:
            raise bad(f"dataset {ds!r} has no 'files' list or mapping")
        if not all(isinstance(t, str) or t is None for t in files.values()):
            raise bad(f"dataset {ds!r}: 'files' must map paths to tree names")
        meta = spec.get("metadata") or {}
        if not isinstance(meta, dict):
            raise bad(f"dataset {ds!r}: 'metadata' is a {type(meta).__name__}, not a mapping")
        out[str(ds)] = {"files": dict(files), "metadata": dict(meta)}
    return out


def load_fileset(path) -> dict:
    """Read and normalise a fileset JSON (see :data:`FILESET_FORMAT`).

    Raises
    ------
    InputFileError
        If the file is missing, a directory, not JSON, or not a fileset (the message says which).
    """
    from .errors import InputFileError

    p = Path(path)
    if not p.exists():
        raise InputFileError(str(p), "fileset file does not exist")
    if p.is_dir():
        raise InputFileError(str(p), "is a directory; --fileset takes a JSON file")
    try:
        raw = json.loads(p.read_text())
    except UnicodeDecodeError:
        raise InputFileError(str(p), "is not a text (JSON) file") from None
    except json.JSONDecodeError as err:
        raise InputFileError(str(p), f"is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    return _normalise_fileset(raw, str(p))


def duplicate_files(fileset: dict) -> dict[str, list[str]]:
    """Files listed in more than one dataset (they would be processed once per dataset)."""
    seen: dict[str, list[str]] = {}
    for ds, spec in fileset.items():
        for path in spec["files"]:
            seen.setdefault(str(Path(path).resolve()) if "://" not in str(path) else str(path), []).append(ds)
    return {p: dss for p, dss in seen.items() if len(dss) > 1}


def _form_only_events(path: str, tree: str, schema):
    """The file's events with no entries: coffea builds the schema from the branches, reads no data."""
    from coffea.nanoevents import NanoEventsFactory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({path: tree}, schemaclass=schema, mode="virtual",
                                           entry_start=0, entry_stop=0).events()


def check_fileset(fileset: dict, skip_bad: bool, processor=None, schema: str = "auto",
                  allow_missing_event_ids: bool = False):
    """Pre-flight check of every file before any chunk runs.

    Each file must be readable (:func:`coffea_jetimg._io.check_file`), hold events, have the
    event-ID branches (unless ``allow_missing_event_ids``), open with the run's coffea schema and,
    when ``processor`` has a ``check(events)`` method, have every branch its models need (checked
    on the schema's form: no data is read; once per distinct set of branch names, so a dataset of
    files with the same branches pays it once: about 1 s for a 1,600-branch CMS file).

    Returns
    -------
    good : dict
        The fileset of the files that passed (tree names filled in).
    bad : dict of str to str
        ``{path: reason}`` of the files left out (only with ``skip_bad``), including files
        with no events.
    schema_class : type
        The coffea schema class for the run.
    empty : list of str
        The files of ``bad`` with no events (only with ``skip_bad``: without it a file with no
        events is an error, as any bad file).

    Raises
    ------
    InputFileError
        Naming the first bad file when ``skip_bad`` is False.
    """
    from ._io import MISSING_EVENT_IDS, check_file, detect_schema, missing_event_ids, schema_class
    from .errors import InputFileError

    bad: dict[str, str] = {}
    empty: list[str] = []

    def reject(path, reason):
        if not skip_bad:
            raise InputFileError(path, reason)
        bad[str(path)] = reason

    checked = []
    guess = None
    for ds, spec in fileset.items():
        for path, tree in spec["files"].items():
            try:
                name, n, branches = check_file(path, tree)
            except InputFileError as err:
                reject(path, err.reason)
                continue
            guess = guess or detect_schema(branches)
            checked.append((ds, path, name, n, branches))
    cls = schema_class((guess or "nanoaod") if schema == "auto" else schema, allow_missing_event_ids)
    good: dict = {}
    verdicts: dict[frozenset, str | None] = {}  # the schema check depends only on the branch names
    for ds, path, name, n, branches in checked:
        missing = missing_event_ids(branches, cls)
        if missing and not allow_missing_event_ids:
            reject(path, MISSING_EVENT_IDS.format(missing=", ".join(missing)))
            continue
        key = frozenset(branches)
        if key not in verdicts:
            verdicts[key] = _schema_verdict(path, name, cls, processor)
        if verdicts[key] is not None:
            reject(path, verdicts[key])
            continue
        if n == 0:  # nothing to tag: a bad file like the others (the flag skips it)
            reject(path, "has no events")
            empty.append(str(path))
            continue
        good.setdefault(ds, {"files": {}, "metadata": fileset[ds]["metadata"]})["files"][path] = name
    return good, bad, cls, empty


def _type_name(err: BaseException) -> str:
    """``OSError``, ``zlib.error``, ``coffea_jetimg.errors.InputFileError`` → short but unambiguous."""
    t = type(err)
    return t.__name__ if t.__module__ in ("builtins", "coffea_jetimg.errors") else f"{t.__module__}.{t.__name__}"


def _schema_verdict(path: str, tree: str, schema, processor) -> str | None:
    """Why coffea cannot build the file's events with ``schema`` or they cannot feed
    ``processor`` (its ``check(events)``), or None; reads no data."""
    from .errors import JetImgError

    try:
        events = _form_only_events(path, tree, schema)
    except Exception as err:  # noqa: BLE001  # coffea raises many types for a schema it cannot build
        return f"coffea cannot build {schema.__name__} events ({type(err).__name__}: {err})".replace("\n", " ")
    if processor is not None and hasattr(processor, "check"):
        try:
            processor.check(events)
        except (JetImgError, KeyError, ValueError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            return f"cannot feed the models: {msg}"
    return None


class ChunkGuard:
    """Wraps a processor so that every chunk reports what went wrong in it, on every executor.

    ``process`` runs the wrapped processor with the package's warnings recorded (they come back
    in the output as ``{"_warnings": {message: count}}``, so the iterative, futures and Dask
    executors all show them, once each) and adds the chunk to ``{"_chunks_done": {(dataset,
    file, start, stop)}}``. An exception in a chunk becomes a record in ``{"_lost_chunks":
    [{dataset, file, entry_start, entry_stop, error}]}`` (the chunk adds nothing else; a package
    error keeps its own message, not coffea's wrapping), so the other chunks' results are kept
    on every executor; :func:`run` then fails the run (without ``--skip-bad-files``) or lists the
    chunk as lost. An ``OSError`` (a transient read failure) is retried ``retries`` times first.
    """

    #: Warnings that are coffea's per-chunk noise, not news about the input.
    QUIET = ("Missing cross-reference", "PFNanoAODSchema", "Skipping bad file", "Performed attempt")
    #: Warning categories left out: libraries' housekeeping (torch.jit.load's deprecation...).
    QUIET_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)

    @classmethod
    def count(cls, caught, counts: dict | None = None) -> dict:
        """``{"Category: message": n}`` of the recorded warnings worth showing."""
        counts = {} if counts is None else counts
        for w in caught:
            msg = str(w.message)
            if issubclass(w.category, cls.QUIET_CATEGORIES) or any(q in msg for q in cls.QUIET):
                continue
            key = f"{w.category.__name__}: {msg}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def __init__(self, inner, retries: int = 2):
        self.inner, self.retries = inner, retries

    def process(self, events):
        from .errors import JetImgError

        meta = dict(getattr(events, "metadata", None) or {})
        where = {"dataset": meta.get("dataset"), "file": meta.get("filename"),
                 "entry_start": meta.get("entrystart"), "entry_stop": meta.get("entrystop")}
        for attempt in range(self.retries + 1):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    out = self.inner.process(events)
                    err = None
                except OSError as e:
                    err = e
                    if attempt < self.retries:
                        continue
                except Exception as e:  # noqa: BLE001  # any failure of this chunk is reported with its place
                    err = e
            break
        counts = self.count(caught)
        if err is None:
            out = dict(out)
            out["_warnings"] = counts
            out["_chunks_done"] = {(where["dataset"], where["file"], where["entry_start"], where["entry_stop"])}
            return out
        text = str(err) if isinstance(err, JetImgError) else f"{_type_name(err)}: {err}"
        return {"_lost_chunks": [{**where, "error": text.replace("\n", " ")}], "_warnings": counts}

    def postprocess(self, accumulator):
        return accumulator


def _guard_class():
    from coffea import processor

    cls = globals().get("ChunkGuardProcessor")
    if cls is None:
        cls = type("ChunkGuardProcessor", (ChunkGuard, processor.ProcessorABC), {"__module__": __name__})
        globals()["ChunkGuardProcessor"] = cls  # pickles by name to futures/Dask workers
    return cls


def __getattr__(name):  # unpickling on a worker that has not built the class yet
    if name == "ChunkGuardProcessor":
        return _guard_class()
    raise AttributeError(name)


def guarded(inner) -> ChunkGuard:
    """``inner`` wrapped in a :class:`ChunkGuard` that is a coffea ``ProcessorABC``."""
    return _guard_class()(inner)


def make_executor(args):
    """The coffea executor for ``args`` and, for Dask, the client (``None`` otherwise)."""
    from coffea import processor

    status = not getattr(args, "no_progress", False)
    if args.executor == "iterative":
        return processor.IterativeExecutor(status=status), None
    if args.executor == "futures":  # a pool whose processes ignore the schema's per-chunk warnings
        import concurrent.futures

        pool = concurrent.futures.ProcessPoolExecutor(max_workers=args.workers, initializer=quiet_schema_warnings)
        return processor.FuturesExecutor(workers=args.workers, status=status, pool=pool), None
    from distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        import dask

        # set in this process's config: the nanny applies it before each (re)spawn of a worker
        dask.config.set(worker_malloc_config())
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    client.register_plugin(_quiet_schema_warnings(), name="coffea-jetimg-quiet-schema")
    return processor.DaskExecutor(client=client, status=status), client


def close_client(client, own_cluster: bool, interrupted: bool = False) -> None:
    """Close a Dask client and, if this run started it, its LocalCluster.

    ``client.shutdown()`` stops the scheduler and has each nanny end its worker in order; the
    plain ``client.close(); cluster.close()`` left the nannies to kill their workers on a
    timeout ("Worker process still alive after 4.0 seconds, killing" on every run)."""
    if client is None:
        return
    cluster = getattr(client, "cluster", None) if own_cluster else None
    if cluster is None:
        client.close()
        return
    import logging

    # after a run with torch loaded, workers can still take > 4 s to exit and the nanny then kills
    # them with a WARNING; every result is gathered by now, so that is no news for the user
    nanny = logging.getLogger("distributed.nanny")
    level = nanny.level
    nanny.setLevel(logging.ERROR)
    try:
        if interrupted:  # Ctrl-C: out fast, the workers are killed
            for lg in ("distributed.scheduler", "distributed.worker", "distributed.worker.state_machine",
                       "distributed.core", "distributed.client"):
                logging.getLogger(lg).setLevel(logging.CRITICAL)
            client.close()
            _kill_workers(cluster)
            cluster.close()
        else:
            client.shutdown()
            cluster.close()
    finally:
        nanny.setLevel(level)


#: glibc's mmap threshold for Dask workers (bytes). Dask's nanny starts workers with
#: MALLOC_TRIM_THRESHOLD_=65536; setting any MALLOC_ threshold turns off glibc's *dynamic* mmap
#: threshold, so every large tensor (conv activations) becomes a fresh mmap + page faults, which
#: slows a CNN forward; a fixed threshold restores the plain speed (`analysis/bench_worker_malloc.py`).
WORKER_MMAP_THRESHOLD = 64 << 20


def worker_malloc_config(threshold: int = WORKER_MMAP_THRESHOLD) -> dict:
    """Dask config that gives LocalCluster workers a fixed mmap threshold (see above)."""
    return {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": str(int(threshold))}


def quiet_schema_warnings() -> None:
    """Ignore, in this process, NanoAODSchema's "Missing cross-reference index" warnings (one per
    absent optional collection, dozens per chunk) and PFNanoAODSchema's notices."""
    warnings.filterwarnings("ignore", message="Missing cross-reference index", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*PFNanoAODSchema.*")


#: Seconds an interrupted run gives each worker to stop before its nanny kills it.
KILL_TIMEOUT = 0.5


def _kill_workers(cluster, timeout: float = KILL_TIMEOUT) -> None:
    """Close every nanny of ``cluster`` at once, each killing its worker process after ``timeout``
    seconds: ``cluster.close()`` alone gives a worker busy with a chunk (or stopped by the same
    Ctrl-C) 4 s to stop before its nanny kills it (Ctrl-C to exit: 4.7 s, now about 1.2 s)."""
    import asyncio

    workers = getattr(cluster, "workers", {})
    nannies = {name: w for name, w in workers.items() if hasattr(w, "close")}
    if not nannies:
        return

    async def close_all():
        await asyncio.gather(*(n.close(timeout=timeout, reason="coffea-jetimg-interrupted")
                               for n in nannies.values()), return_exceptions=True)
        for name in nannies:  # closed: keep cluster.close() from retiring them (seen once to wait forever)
            workers.pop(name, None)

    with contextlib.suppress(Exception):  # cluster.close() still follows, and ends what is left
        cluster.sync(close_all, callback_timeout=4 * timeout + 2)


def _quiet_schema_warnings():
    """A Dask worker plugin that silences NanoAODSchema's per-chunk "Missing cross-reference
    index" warnings (one per absent optional collection, dozens per chunk) on every worker,
    including workers restarted after a crash; the parent process filters them already."""
    from distributed import WorkerPlugin

    class QuietSchemaWarnings(WorkerPlugin):
        def setup(self, worker):
            quiet_schema_warnings()

    return QuietSchemaWarnings()


def build_processor(args):
    from .artifact import load_artifact

    arts = {}
    for m in args.model:
        a = load_artifact(m)
        name = a.name
        k = 2
        while name in arts:
            name, k = f"{a.name}_{k}", k + 1
        arts[name] = a
    from .inputs import input_from_spec

    levels = {input_from_spec(a.input_spec).level for a in arts.values()}  # per jet or per event
    if levels == {"event"}:
        if len(arts) > 1:
            raise SystemExit("coffea-jetimg run: one event-image model at a time")
        from .inference import Tagger
        from .processors.event_image import EventImageProcessor

        a = next(iter(arts.values()))
        return EventImageProcessor(Tagger(a, server=args.triton, batch_size=args.batch_size)
                                   if getattr(args, "triton", None) else a.path,
                                   device=args.device, backend=args.backend, batch_size=args.batch_size)
    if "event" in levels:
        raise SystemExit("coffea-jetimg run: event-image models and jet models cannot run together")
    from .processors.jet_tagging import JetTaggingProcessor, parse_ensembles
    from .stored_taggers import parse_stored

    selection = {"pt": (args.pt_min, args.pt_max), "abs_eta": args.abs_eta_max}
    if args.msd_min is not None or args.msd_max is not None:
        selection["msd"] = (args.msd_min, args.msd_max)
    weights, variations, axes = weights_options(args)
    try:
        from .inference import Tagger  # --triton: served taggers, checked against the server here

        models = {n: Tagger(a, server=args.triton, batch_size=args.batch_size) if getattr(args, "triton", None)
                  else a.path for n, a in arts.items()}
        proc = JetTaggingProcessor(models, jets=args.jets, device=args.device,
                                   backend=args.backend, batch_size=args.batch_size, selection=selection,
                                   ensembles=parse_ensembles(args.ensemble), weights=weights,
                                   systematics=variations, axes=axes, truth=args.truth,
                                   jet_axes=args.jet_axes.split(",") if getattr(args, "jet_axes", None) else None,
                                   stored=parse_stored(getattr(args, "stored", []) or []))
    except ValueError as err:  # a bad --ensemble, --jet-axes or --stored (names from the command line)
        raise SystemExit(f"coffea-jetimg run: {err}") from None
    template_options(args, proc)
    return proc


def weights_options(args):
    """``(EventWeights or None, variations, axes overrides)`` of the weight/systematics options;
    :class:`~coffea_jetimg.systematics.SystematicsError` (exit 2) naming the option that is wrong.
    A correctionlib file is read here, before any chunk runs."""
    from .systematics import EventWeights, JetScale, SystematicsError, _load_correction, parse_systematics

    gen = getattr(args, "generator_weight", "genWeight")
    extra = tuple(getattr(args, "weight_branch", []) or ())
    weights = None if (gen or "").lower() == "none" and not extra else EventWeights(
        None if (gen or "").lower() == "none" else gen, extra)
    variations = parse_systematics(getattr(args, "syst", []) or [])
    for v in variations:
        if isinstance(v, JetScale) and v.correction is not None:
            _load_correction(v.correction, v.key, v.name)
    axes: dict = {"score_bins": int(getattr(args, "score_bins", 40))}
    text = getattr(args, "msd_bins", "30,0,300")
    try:
        n, lo, hi = (float(x) for x in text.split(","))
        if n < 1 or n != int(n) or not hi > lo:
            raise ValueError
    except ValueError:
        raise SystematicsError(f"--msd-bins {text!r}: expected N,LO,HI with N >= 1 and HI > LO") from None
    axes["msd"] = (int(n), lo, hi)
    axes["pt_edges"] = pt_edges(getattr(args, "pt_bins", None), getattr(args, "pt_min", None))
    return weights, variations, axes


def pt_edges(text: str | None, pt_min: float | None) -> list[float]:
    """Jet-pT axis edges of ``--pt-bins`` (``E0,E1,...``, increasing); by default the processor's
    edges (200 GeV up), with three geometric edges from ``--pt-min`` to 200 GeV put below them
    when the selection starts lower (AK4 jets at 20 GeV would otherwise all be underflow)."""
    from .systematics import SystematicsError
    from .tagging import DEFAULT_AXES

    if text:
        try:
            edges = [float(x) for x in text.split(",")]
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError
        except ValueError:
            raise SystematicsError(f"--pt-bins {text!r}: expected two or more increasing edges in GeV") from None
        return edges
    edges = [float(e) for e in DEFAULT_AXES["pt_edges"]]
    if pt_min is not None and 0 < pt_min < edges[0]:
        import numpy as np

        low = [float(round(e)) for e in np.geomspace(pt_min, edges[0], 4)[:-1]]
        edges = sorted(set(low)) + edges
    return edges


def template_options(args, proc) -> dict | None:
    """The fit-template settings (checked before any chunk runs): model, observable, working
    points on score-bin edges, luminosity."""
    from .systematics import SystematicsError

    names = proc.scored_names()
    model = getattr(args, "template_model", None) or names[0]
    if model not in names:
        raise SystematicsError(f"--template-model {model!r}: the models are {names}")
    obs = getattr(args, "template_observable", "msd")
    wps = getattr(args, "template_wp", None)
    if wps is None:
        wps = [0.5] if obs == "msd" else []
    bins = int(getattr(args, "score_bins", 40))
    for wp in wps:
        k = wp * bins
        if not 0 < wp < 1 or abs(k - round(k)) > 1e-9:
            raise SystematicsError(f"--template-wp {wp}: a working point must be a score-bin edge "
                             f"strictly between 0 and 1 (with --score-bins {bins}: multiples of {1 / bins:g})")
    if obs == "score" and wps:
        raise SystematicsError("--template-wp makes mass regions; --template-observable score has one "
                         "region (leave --template-wp out)")
    lumi = getattr(args, "lumi", None)
    if lumi is not None and not lumi > 0:
        raise SystematicsError(f"--lumi {lumi}: must be > 0 (pb^-1)")
    args._templates = {"model": model, "observable": obs, "wps": list(wps), "lumi": lumi}
    return args._templates


def _check_device(args) -> None:
    """``--device`` refused before any chunk when this machine lacks it (not with ``--scheduler``:
    the workers may have GPUs the client has not; the taggers check there on first use)."""
    from .inference import check_device

    if args.device is not None and not args.scheduler:
        check_device(args.device, getattr(args, "backend", "torch"), what=f"--device {args.device}",
                     instead="--device cpu or leave --device out")


def _chunk_dict(item, error: str | None = None) -> dict:
    out = {"dataset": item.dataset, "file": item.filename, "entry_start": int(item.entrystart),
           "entry_stop": int(item.entrystop)}
    if error is not None:
        out["error"] = error
    return out


def _account(chunks, done, reported, failure: str | None = None) -> tuple[list, list]:
    """(chunks in the histograms, lost chunks with their error) from the planned chunks, the
    guard's set of finished chunks and its records of failed ones; ``failure``: the error that
    stopped the run (the chunks it left unrun are listed with it)."""
    key = lambda d: (d["dataset"], d["file"], d["entry_start"], d["entry_stop"])  # noqa: E731
    errors = {key(r): r["error"] for r in reported}
    done = {(ds, f, int(a), int(b)) for ds, f, a, b in done}
    if failure is not None:
        why = f"not processed: the run stopped at the error: {failure}"
    else:
        why = "the chunk returned no result: its file could not be opened or its events built (see the worker log)"
    ok, lost = [], []
    for item in chunks:
        k = (item.dataset, item.filename, int(item.entrystart), int(item.entrystop))
        if k in done and k not in errors:
            ok.append(_chunk_dict(item))
        else:
            lost.append(_chunk_dict(item, errors.get(k, why)))
    return ok, lost


def _add_lost_events(output: dict, lost: list) -> None:
    """Put the events of lost chunks into each dataset's cutflow (``events_lost``)."""
    per_ds: dict[str, int] = {}
    for c in lost:
        per_ds[c["dataset"]] = per_ds.get(c["dataset"], 0) + c["entry_stop"] - c["entry_start"]
    for ds, v in output.items():
        if isinstance(v, dict) and isinstance(v.get("cutflow"), dict):
            v["cutflow"]["events_lost"] = per_ds.get(ds, 0)


def _print_warnings(counts: dict) -> None:
    for msg, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        times = f" ({n} chunks)" if n > 1 else ""
        print(f"coffea-jetimg run: warning{times}: {msg}", file=sys.stderr)


def _swap_into_place(tmp: Path, outdir: Path) -> None:
    """Replace ``outdir`` by ``tmp`` (an earlier run's files never sit beside this run's)."""
    import shutil

    old = None
    if outdir.exists():
        old = outdir.with_name(f".{outdir.name}.old-{os.getpid()}")
        outdir.rename(old)
    tmp.rename(outdir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_outputs(proc, output, outdir: Path, args, extra: dict, datasets: dict | None = None) -> dict:
    if hasattr(proc, "model_info"):
        from .studies import run_studies

        templates = dict(getattr(args, "_templates", None) or {})
        if templates:
            templates["datasets"] = datasets or {}
        return run_studies(output, outdir, signal=args.signal, model_info=proc.model_info(), extra_summary=extra,
                           make_plots=not args.no_plots, templates=templates or None)
    from .studies import save_event_outputs

    return save_event_outputs(output, outdir, extra_summary=extra)


@contextlib.contextmanager
def _coffea_bars(show: bool):
    """Hide coffea's progress bars when ``show`` is False: its iterative and futures executors
    draw them on ``coffea.util.coffea_console`` whatever their ``status`` says."""
    from coffea import util

    console = getattr(util, "coffea_console", None)
    if show or console is None:
        yield
        return
    before = console.quiet
    console.quiet = True
    try:
        yield
    finally:
        console.quiet = before


class RunFailed(Exception):
    """The run failed part-way; ``outdir`` holds what finished, marked ``complete: false``."""

    def __init__(self, error: BaseException, outdir: Path, n_done: int, n_chunks: int):
        self.error, self.outdir, self.n_done, self.n_chunks = error, outdir, n_done, n_chunks
        super().__init__(str(error))


def run(args) -> dict:
    """Run and write everything; returns the summary.

    Everything is written to a hidden folder beside ``-o`` and renamed into place at the end, so
    ``-o`` never holds a half-written run or an earlier run's files beside a newer run's. A run
    that fails part-way replaces ``-o`` with what finished (if anything) and a ``summary.json``
    with ``complete: false``, the error and the chunks in the histograms, then raises
    :class:`RunFailed`. Bad input found before any chunk runs (the pre-flight check) raises a
    :class:`~coffea_jetimg.errors.JetImgError` and leaves ``-o`` untouched.
    """
    import shutil

    from coffea import processor

    outdir = Path(args.output)
    fileset = load_fileset(args.fileset)
    _check_device(args)
    for path, dss in duplicate_files(fileset).items():
        warnings.warn(f"{path} is listed in datasets {dss}: it is processed once for each", UserWarning, stacklevel=2)
    proc = build_processor(args)
    allow_ids = getattr(args, "allow_missing_event_ids", False)
    good, bad, schema, empty = check_fileset(fileset, args.skip_bad_files, proc, args.schema, allow_ids)
    for path, reason in bad.items():
        print(f"coffea-jetimg run: skipping bad file {path}: {reason}", file=sys.stderr)
    if not good:
        from .errors import InputFileError

        raise InputFileError(args.fileset, "no file in the fileset can be run" +
                             (f" ({len(bad)} bad, {len(empty)} of them without events)" if bad else ""))
    executor, client = make_executor(args)
    tmp = outdir.with_name(f".{outdir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    chunks, failure, wrapped = [], None, {}
    try:
        runner = processor.Runner(executor=executor, schema=schema, chunksize=args.chunksize,
                                  maxchunks=args.maxchunks, savemetrics=True,
                                  skipbadfiles=(Exception,) if args.skip_bad_files else False,
                                  # coffea's default cache is process-wide and keyed by (dataset, file,
                                  # tree) only: a second run of the same file in one process would get
                                  # the first run's fileset metadata (label, is_mc, xsec; coffea#662)
                                  metadata_cache={})
        guard = guarded(proc)
        with warnings.catch_warnings(record=True) as caught, _coffea_bars(not getattr(args, "no_progress", False)):
            warnings.simplefilter("always")
            try:
                chunks = list(runner.preprocess(good, treename=None))
                wrapped = runner.run(chunks, guard)
            except BaseException as err:  # noqa: BLE001  # Ctrl-C too: written as an incomplete run, then raised
                failure = err
                partial = getattr(err, "partial_output", None)
                wrapped = {"out": partial or {}, "processed": set()}
    finally:
        close_client(client, own_cluster=not args.scheduler,
                     interrupted=isinstance(failure, KeyboardInterrupt) or sys.exc_info()[0] is KeyboardInterrupt)
        pool = getattr(executor, "pool", None)
        if pool is not None and hasattr(pool, "shutdown"):
            pool.shutdown()
    wall = time.perf_counter() - t0
    output = dict(wrapped.get("out") or {})
    reported = list(output.pop("_lost_chunks", []) or [])
    counts = dict(output.pop("_warnings", {}) or {})
    done = output.pop("_chunks_done", set()) or set()
    ChunkGuard.count(caught, counts)
    if failure is None and reported and not args.skip_bad_files:
        c = reported[0]
        from .errors import InputFileError

        failure = InputFileError(c["file"], f"entries {c['entry_start']}-{c['entry_stop']} of dataset "
                                            f"{c['dataset']!r} failed: {c['error']}"
                                 + (f" (and {len(reported) - 1} more chunk(s), listed in summary.json)"
                                    if len(reported) > 1 else ""))
    error_text = unwrap_error(failure) if failure is not None else None
    ok, lost = _account(chunks, done, reported, error_text)
    _add_lost_events(output, lost)
    for c in lost if failure is None or reported else []:
        print(f"coffea-jetimg run: chunk not in the histograms: {c['file']} entries {c['entry_start']}-"
              f"{c['entry_stop']} ({c['dataset']}): {c['error']}", file=sys.stderr)
    _print_warnings(counts)
    metrics = wrapped.get("metrics") or {}
    extra = {"complete": failure is None, "bad_files": bad, "empty_files": empty,
             "chunks": {"planned": len(chunks), "in_histograms": len(ok), "lost": len(lost)},
             "chunks_in_histograms": ok, "lost_chunks": lost,
             "events_lost": sum(c["entry_stop"] - c["entry_start"] for c in lost),
             "warnings": counts, "executor": args.executor, "workers": args.workers, "wall_s": wall,
             "fileset": {ds: list(v["files"]) for ds, v in good.items()},
             "metrics": {k: (float(v) if isinstance(v, (int, float)) else str(v)) for k, v in metrics.items()
                         if not isinstance(v, (set, dict, list))}}
    if failure is not None:
        extra["error"] = error_text
    tmp.mkdir(parents=True)
    try:
        if output:
            summary = _write_outputs(proc, output, tmp, args, extra,
                                     {ds: v.get("metadata") or {} for ds, v in good.items()})
        else:
            summary = dict(extra)
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_into_place(tmp, outdir)
    if failure is not None:
        raise RunFailed(failure, outdir, len(ok), len(chunks)) from failure
    return summary


def unwrap_error(err: BaseException) -> str:
    """The message of the package's own error inside ``err`` (coffea wraps chunk errors in
    ``Exception("Failed processing file: WorkItem(...). The error was: ...")``, and across Dask
    only the text survives), else ``err``'s first line."""
    import re

    from .errors import JetImgError

    seen = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, JetImgError):
            return str(e)
        e = e.__cause__ or e.__context__
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    text = str(err)
    m = re.search(r"The error was: (\w+)\((['\"])(.*)\2\)\.?$", text, flags=re.S)
    if m:
        inner = m.group(3).encode().decode("unicode_escape", errors="replace")
        return unwrap_error(Exception(inner)) if "The error was:" in inner else f"{inner}"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return f"{type(err).__name__}: {first}" if not first.startswith(type(err).__name__) else first


def main(args) -> int:
    from .errors import JetImgError

    try:
        summary = run(args)
    except JetImgError as err:
        from .errors import InputFileError

        hint = (" (use --skip-bad-files to skip it)" if isinstance(err, InputFileError) and not args.skip_bad_files
                and "fileset" not in err.reason and Path(err.path).suffix != ".json" else "")
        print(f"coffea-jetimg run: error: {err}{hint}", file=sys.stderr)
        return 2
    except RunFailed as fail:
        if isinstance(fail.error, KeyboardInterrupt):
            print(f"coffea-jetimg run: interrupted; {fail.outdir}/summary.json says complete: false", file=sys.stderr)
            return 130
        done = (f"the {fail.n_done} of {fail.n_chunks} chunks that finished are in {fail.outdir}"
                if fail.n_done else f"nothing finished; {fail.outdir}/summary.json says so")
        print(f"coffea-jetimg run: error: {unwrap_error(fail.error)}\n"
              f"coffea-jetimg run: the run is incomplete ({done}, complete: false)", file=sys.stderr)
        return 1
    out = Path(args.output)
    print(f"wrote {out / 'hists.coffea'}, {out / 'hists.root'}, {out / 'summary.json'}, "
          f"{len(summary.get('plots', []))} plots")
    if summary.get("bad_files"):
        print("skipped bad files: " + ", ".join(summary["bad_files"]))
    if summary.get("lost_chunks"):
        print(f"{len(summary['lost_chunks'])} chunk(s), {summary['events_lost']} events, are not in the histograms "
              "(listed in summary.json: lost_chunks)")
    for name, res in (summary.get("models") or {}).items():
        if "auc" in res:
            print(f"{name}: AUC={res['auc']} R30={res['R30']} R50={res['R50']} "
                  f"({res['signal']} vs {'+'.join(res['background'])})")
    return 0
