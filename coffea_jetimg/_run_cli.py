"""Run saved taggers over a fileset with coffea and write histograms, a ROOT file, plots and a summary.

The fileset is coffea's JSON: {"dataset": {"files": {"path.root": "Events"} or ["path.root"],
"metadata": {"label": "qcd"}}}. Every file is checked first (coffea_jetimg._io.check_file): a
bad file is an error naming it, or with --skip-bad-files it is left out and named in the output.
The default executor is a Dask LocalCluster (--workers N, one thread each); --scheduler
tcp://host:port uses a running cluster instead.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

HELP = "run taggers over a fileset (coffea Runner on Dask/futures/iterative) and write histograms and plots"


def add_arguments(parser) -> None:
    parser.add_argument("--fileset", required=True, help="fileset JSON (coffea format)")
    parser.add_argument("--model", action="append", required=True, metavar="ARTIFACT",
                        help="artifact directory (repeat for several models)")
    parser.add_argument("--ensemble", action="append", default=[], metavar="NAME=MODEL+MODEL",
                        help="also score the mean class probabilities of these models (names as in the artifacts' "
                             "spec; repeat for several ensembles)")
    parser.add_argument("--executor", choices=("dask", "futures", "iterative"), default="dask",
                        help="dask: a Dask LocalCluster (or --scheduler); futures: a process pool; iterative: this process")
    parser.add_argument("--workers", type=int, default=2, help="local workers (dask LocalCluster or futures pool)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://...)")
    parser.add_argument("--chunksize", type=int, default=50_000, help="events per chunk (one task)")
    parser.add_argument("--maxchunks", type=int, default=None, help="at most this many chunks per file (quick tests)")
    parser.add_argument("--skip-bad-files", action="store_true", help="skip unreadable files, naming them")
    parser.add_argument("--jets", default="FatJet", help="jet collection to tag")
    parser.add_argument("--pt-min", type=float, default=200.0, help="jet selection: pt >= this (GeV)")
    parser.add_argument("--pt-max", type=float, default=None, help="jet selection: pt < this (GeV)")
    parser.add_argument("--abs-eta-max", type=float, default=2.4, help="jet selection: |eta| < this")
    parser.add_argument("--msd-min", type=float, default=None, help="jet selection: soft-drop mass >= this (GeV)")
    parser.add_argument("--msd-max", type=float, default=None, help="jet selection: soft-drop mass < this (GeV)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="run the TorchScript model with torch, or model.onnx with ONNX Runtime")
    parser.add_argument("--batch-size", type=int, default=512,
                        help="micro-batch of jets per forward pass (halved automatically on CUDA out-of-memory)")
    parser.add_argument("--schema", choices=("auto", "pfnano", "nanoaod", "delphes"), default="auto",
                        help="coffea NanoEvents schema; auto picks it from the first file's branches")
    parser.add_argument("--signal", default=None, help="signal class for the studies (default: the model's)")
    parser.add_argument("--no-plots", action="store_true", help="write histograms and summary only, no PNGs")
    parser.add_argument("-o", "--output", required=True, help="output directory")


def _normalise_fileset(raw: dict) -> dict:
    out = {}
    for ds, spec in raw.items():
        if isinstance(spec, (list, tuple)):
            spec = {"files": list(spec)}
        files = spec.get("files", {})
        if isinstance(files, (list, tuple)):
            files = {str(f): None for f in files}
        out[ds] = {"files": dict(files), "metadata": dict(spec.get("metadata") or {})}
    return out


def check_fileset(fileset: dict, skip_bad: bool):
    """Check every file; return (good fileset, {path: reason} of the bad ones, schema guess).

    Raises
    ------
    InputFileError
        For the first bad file when ``skip_bad`` is False.
    """
    from ._io import InputFileError, check_file, detect_schema

    good, bad, schema = {}, {}, None
    for ds, spec in fileset.items():
        files = {}
        for path, tree in spec["files"].items():
            try:
                name, n, branches = check_file(path, tree)
            except InputFileError as err:
                if not skip_bad:
                    raise
                bad[str(path)] = err.reason
                continue
            files[path] = name
            schema = schema or detect_schema(branches)
        if files:
            good[ds] = {"files": files, "metadata": spec["metadata"]}
    return good, bad, schema


def make_executor(args):
    from coffea import processor

    if args.executor == "iterative":
        return processor.IterativeExecutor(status=True), None
    if args.executor == "futures":
        return processor.FuturesExecutor(workers=args.workers, status=True), None
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
    return processor.DaskExecutor(client=client, status=True), client


#: glibc's mmap threshold for Dask workers (bytes). Dask's nanny starts workers with
#: MALLOC_TRIM_THRESHOLD_=65536; setting any MALLOC_ threshold turns off glibc's *dynamic* mmap
#: threshold, so every large tensor (conv activations) becomes a fresh mmap + page faults, which
#: slows a CNN forward; a fixed threshold restores the plain speed (`analysis/bench_worker_malloc.py`).
WORKER_MMAP_THRESHOLD = 64 << 20


def worker_malloc_config(threshold: int = WORKER_MMAP_THRESHOLD) -> dict:
    """Dask config that gives LocalCluster workers a fixed mmap threshold (see above)."""
    return {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": str(int(threshold))}


def _quiet_schema_warnings():
    """A Dask worker plugin that silences NanoAODSchema's per-chunk "Missing cross-reference
    index" warnings (one per absent optional collection, dozens per chunk) on every worker,
    including workers restarted after a crash; the parent process filters them already."""
    from distributed import WorkerPlugin

    class QuietSchemaWarnings(WorkerPlugin):
        def setup(self, worker):
            warnings.filterwarnings("ignore", message="Missing cross-reference index", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message=".*PFNanoAODSchema.*")

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
    kinds = {a.input_spec["kind"] for a in arts.values()}
    if kinds == {"event_image"}:
        if len(arts) > 1:
            raise SystemExit("coffea-jetimg run: one event-image model at a time")
        from .processors.event_image import EventImageProcessor

        return EventImageProcessor(next(iter(arts.values())).path, device=args.device, backend=args.backend,
                                   batch_size=args.batch_size)
    if "event_image" in kinds:
        raise SystemExit("coffea-jetimg run: event-image models and jet models cannot run together")
    from .processors.jet_tagging import JetTaggingProcessor, parse_ensembles

    selection = {"pt": (args.pt_min, args.pt_max), "abs_eta": args.abs_eta_max}
    if args.msd_min is not None or args.msd_max is not None:
        selection["msd"] = (args.msd_min, args.msd_max)
    try:
        return JetTaggingProcessor({n: a.path for n, a in arts.items()}, jets=args.jets, device=args.device,
                                   backend=args.backend, batch_size=args.batch_size, selection=selection,
                                   ensembles=parse_ensembles(args.ensemble))
    except ValueError as err:  # a bad --ensemble (the names and models come from the command line)
        raise SystemExit(f"coffea-jetimg run: {err}") from None


def run(args) -> dict:
    """Run and write everything; returns the summary (raises InputFileError/ArtifactError)."""
    from coffea import processor

    from ._io import schema_class

    outdir = Path(args.output)
    fileset = _normalise_fileset(json.loads(Path(args.fileset).read_text()))
    good, bad, guessed = check_fileset(fileset, args.skip_bad_files)
    for path, reason in bad.items():
        print(f"coffea-jetimg run: skipping bad file {path}: {reason}", file=sys.stderr)
    if not good:
        raise SystemExit("coffea-jetimg run: no readable files in the fileset")
    schema = schema_class(guessed if args.schema == "auto" else args.schema)
    proc = build_processor(args)
    executor, client = make_executor(args)
    t0 = time.perf_counter()
    try:
        runner = processor.Runner(executor=executor, schema=schema, chunksize=args.chunksize,
                                  maxchunks=args.maxchunks, skipbadfiles=args.skip_bad_files, savemetrics=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output, metrics = runner(good, processor_instance=proc, treename="Events")
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and not args.scheduler:
                cluster.close()
    wall = time.perf_counter() - t0
    outdir.mkdir(parents=True, exist_ok=True)
    extra = {"bad_files": bad, "executor": args.executor, "workers": args.workers, "wall_s": wall,
             "fileset": {ds: list(v["files"]) for ds, v in good.items()},
             "metrics": {k: (float(v) if isinstance(v, (int, float)) else str(v)) for k, v in (metrics or {}).items()
                         if not isinstance(v, (set, dict, list))}}
    if hasattr(proc, "model_info"):
        from .studies import run_studies

        summary = run_studies(output, outdir, signal=args.signal, model_info=proc.model_info(), extra_summary=extra,
                              make_plots=not args.no_plots)
    else:
        from .studies import save_event_outputs

        summary = save_event_outputs(output, outdir, extra_summary=extra)
    return summary


def main(args) -> int:
    from ._io import InputFileError
    from .artifact import ArtifactError
    from ._constituents import ConstituentsError

    try:
        summary = run(args)
    except (InputFileError, ArtifactError, ConstituentsError) as err:
        hint = " (use --skip-bad-files to skip it)" if isinstance(err, InputFileError) else ""
        print(f"coffea-jetimg run: error: {err}{hint}", file=sys.stderr)
        return 2
    out = Path(args.output)
    print(f"wrote {out / 'hists.coffea'}, {out / 'hists.root'}, {out / 'summary.json'}, {len(summary.get('plots', []))} plots")
    if summary.get("bad_files"):
        print("skipped bad files: " + ", ".join(summary["bad_files"]))
    for name, res in (summary.get("models") or {}).items():
        if "auc" in res:
            print(f"{name}: AUC={res['auc']} R30={res['R30']} R50={res['R50']} ({res['signal']} vs {'+'.join(res['background'])})")
    return 0
