"""Throughput of JetTaggingProcessor on generated PFNano files (CPU inference).

Measures, in one run and on the same files:
  full     the processor (selection, constituents, images, CNN forward, hist fills), IterativeExecutor
  read     a processor that only reads the same columns (ak.materialize of them)
  forward  the bare TorchScript forward on ready tensors of the same jets
and Dask LocalCluster throughput with 2 workers vs 1 (threads_per_worker=1), and the cost of
systematic variations (re-binning jet variations, weight variations, a JES variation propagated
into the tagger inputs) against the same processor without them.

Ends with: RESULT overhead_vs_model=<full/(read+forward)> dask_scaling=<2 workers / 1 worker>
dask1_vs_inprocess=<throughput of 1 Dask worker / in process, median of back-to-back pairs>

    python analysis/bench_processor.py --quick          # small files, seconds
    python analysis/bench_processor.py --events 12000   # >= 20k jets
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from coffea_jetimg._run_cli import WORKER_MMAP_THRESHOLD, worker_malloc_config


def _tiny_cnn_artifact(path, npix=33):
    import torch

    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.images import JetImageSpec

    class CNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 8, 4, padding=2)
            self.c2 = torch.nn.Conv2d(8, 8, 4, padding=2)
            self.fc = torch.nn.Linear(8 * 8 * 8, 2)
            self.pool = torch.nn.AdaptiveAvgPool2d(8)

        def forward(self, x):
            return self.fc(self.pool(torch.relu(self.c2(torch.relu(self.c1(x))))).flatten(1))

    spec = JetImageSpec.preset("komiske", npix=(npix, npix)).to_dict()
    torch.manual_seed(0)
    return save_artifact(path, CNN().eval(), {"name": "cnn", "architecture": "bench-cnn",
                                              "input": {"kind": "image", "image_spec": spec},
                                              "class_names": ["qcd", "top"], "signal_class": "top"},
                         torch.randn(2, 1, npix, npix), onnx=False)  # TorchScript only: its pooling does not export


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--events", type=int, default=None, help="events per sample (top and qcd)")
    ap.add_argument("--files", nargs="*", help="use these PFNano files instead of generating")
    ap.add_argument("--chunksize", type=int, default=1000,
                    help="events per chunk, the same for every measurement (enough chunks for 2 workers)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (medians reported)")
    ap.add_argument("--worker-mmap-threshold", type=int, default=WORKER_MMAP_THRESHOLD, metavar="BYTES",
                    help="MALLOC_MMAP_THRESHOLD_ for the Dask workers, as `coffea-jetimg run` sets it (0: leave "
                         "Dask's default). Dask's nanny sets "
                         "MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's dynamic mmap threshold, so every "
                         "conv activation is a fresh mmap + page faults (CNN forward ~1.4x slower in a worker)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor

    from coffea_jetimg.inference import Tagger

    work = Path(tempfile.mkdtemp(prefix="bench_proc_"))
    n_ev = args.events or (300 if args.quick else 12000)
    files = args.files
    if not files:  # generated once into analysis/data/bench (git-ignored) and reused
        from coffea_jetimg.generate import generate

        data = Path(__file__).resolve().parent / "data" / "bench"
        data.mkdir(parents=True, exist_ok=True)
        files = []
        for i, p in enumerate(("top", "qcd")):
            f = data / f"{p}_{n_ev}_s{100 + i}.root"
            if not f.exists():
                t = time.perf_counter()
                tmp = data / f"{f.stem}.part.root"
                generate(p, n_ev, 100 + i, str(tmp), pt_min=500.0, pt_max=700.0,
                         workers=min(2, os.cpu_count() or 1), progress=False)
                tmp.rename(f)
                print(f"generated {n_ev} {p} events in {time.perf_counter() - t:.1f} s -> {f}")
            files.append(str(f))
    art = _tiny_cnn_artifact(work / "cnn")
    fileset = {Path(f).stem: {"files": {str(f): "Events"}, "metadata": {"label": Path(f).stem}} for f in files}
    proc = JetTaggingProcessor({"cnn": str(art)}, selection={"pt": (200.0, None)})

    class ReadOnly(processor.ProcessorABC):
        def __init__(self, full):
            self.full = full

        def process(self, events):
            import awkward as ak

            cols = self.full._needed_columns(events)
            n = 0
            for coll, f in cols:
                a = events[coll][f]
                ak.materialize(a) if hasattr(ak, "materialize") else ak.to_packed(a)
                n += 1
            return {"columns": n, "events": len(events)}

        def postprocess(self, a):
            return a

    def run(p, executor, chunksize=None):
        r = processor.Runner(executor=executor, schema=PFNanoAODSchema, chunksize=chunksize or args.chunksize)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            out = r(fileset, processor_instance=p, treename="Events")
            return out, time.perf_counter() - t

    it = processor.IterativeExecutor(status=False)
    run(proc, it)  # warm-up: numba compilation, model load
    run(ReadOnly(proc), it)
    # ready tensors of the same jets (built outside any timing), for the bare forward
    tagger = Tagger(art, device="cpu")
    x = _ready_tensors(files, proc, tagger)
    n_jets = len(x)
    tagger.predict(x[:16])

    # interleaved repeats, medians: the machine is shared, so each quantity sees the same conditions
    t_full, t_read, t_fwd = [], [], []
    for _ in range(args.repeats):
        out, t = run(proc, it)
        t_full.append(t)
        t_read.append(run(ReadOnly(proc), it)[1])
        t = time.perf_counter()
        tagger.predict(x)
        t_fwd.append(time.perf_counter() - t)
    assert sum(v["cutflow"]["jets_scored"] for v in out.values()) == n_jets
    t_full, t_read, t_fwd = (float(np.median(v)) for v in (t_full, t_read, t_fwd))
    print(f"jets={n_jets}  chunksize={args.chunksize}  repeats={args.repeats} (medians)")
    print(f"full={t_full:.2f}s ({n_jets / t_full:.0f} jets/s/core)  read-only={t_read:.2f}s  "
          f"forward={t_fwd:.2f}s ({n_jets / t_fwd:.0f} jets/s)  beyond read+forward={t_full - t_read - t_fwd:.2f}s")
    _breakdown(files[0], proc, args.chunksize)
    _systematics_cost(art, run, it, args.repeats)

    rates = {}
    import dask
    from distributed import Client, LocalCluster

    env = worker_malloc_config(args.worker_mmap_threshold) if args.worker_mmap_threshold else {}
    paired: list[float] = []  # in-process time / 1-worker Dask time, each pair run back to back
    for nw in (1, 2):
        ts = []
        for _ in range(max(1, args.repeats - 1) if nw == 2 else args.repeats):
            # the in-process run of the same work just before each 1-worker run: the machine's speed
            # drifts between the first and the last minutes of this script (seen: 10 s and 12.5 s)
            t_in = run(proc, it)[1] if nw == 1 else None
            # a fresh cluster per timed run: a repeated run on the same cluster can come back without
            # recomputing (seen: 0.04 s), even with a slightly different chunksize (coffea splits evenly)
            with dask.config.set(env), LocalCluster(n_workers=nw, threads_per_worker=1, processes=True,
                                                    dashboard_address=None) as cl, Client(cl) as client:
                client.wait_for_workers(nw)
                # warm every worker (imports, numba, model load), as the iterative warm-up does here
                client.run(_warm_worker, proc, files[0])
                o, t = run(proc, processor.DaskExecutor(client=client, status=False))
                assert sum(v["cutflow"]["jets_scored"] for v in o.values()) == n_jets
                ts.append(t)
                if t_in is not None:
                    paired.append(t_in / t)
        t = float(np.median(ts))
        rates[nw] = n_jets / t
        print(f"dask {nw} worker(s): {t:.2f}s (runs {', '.join(f'{v:.2f}' for v in ts)}), "
              f"{rates[nw]:.0f} jets/s, {rates[nw] / nw:.0f} jets/s/worker")
    dask1 = float(np.median(paired))
    print(f"dask 1 worker / in-process, paired runs: {', '.join(f'{v:.2f}' for v in paired)} (median {dask1:.2f})")
    overhead = t_full / (t_read + t_fwd)
    print(f"RESULT overhead_vs_model={overhead:.2f} dask_scaling={rates[2] / rates[1]:.2f} "
          f"dask1_vs_inprocess={dask1:.2f}")


def _systematics_cost(art, run, executor, repeats):
    """The cost of systematic variations, as the issue asks: each configuration against the same
    processor without variations, interleaved repeats, medians. A jet variation without
    ``inputs`` re-selects and re-bins the scored jets (no network pass); with ``inputs`` it builds
    and scores the scaled jets' inputs again (one more network pass per direction); a weight
    variation is one more weighted fill."""
    from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor
    from coffea_jetimg.systematics import JetResolution, JetScale, WeightVariation

    configs = {
        "none": [],
        "jes (re-bin)": [JetScale("jes", 0.02)],
        "jes+jer (re-bin)": [JetScale("jes", 0.02), JetResolution("jer", 0.1)],
        "isr+fsr weights": [WeightVariation("isr", "PSWeight"), WeightVariation("fsr", "PSWeight")],
        "jes into inputs": [JetScale("jes", 0.02, inputs=True)],
    }
    procs = {k: JetTaggingProcessor({"cnn": str(art)}, selection={"pt": (200.0, None)}, systematics=v)
             for k, v in configs.items()}
    for p in procs.values():
        run(p, executor)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in procs}
    for _ in range(repeats):
        for k, p in procs.items():
            times[k].append(run(p, executor)[1])
    base = float(np.median(times["none"]))
    for k, ts in times.items():
        t = float(np.median(ts))
        print(f"systematics {k:18s}: {t:.2f}s  x{t / base:.2f} of no variations  ({t - base:+.2f}s)")


def _events(f, start=0, stop=None, dataset="bench"):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({f: "Events"}, schemaclass=PFNanoAODSchema, mode="eager", entry_start=start,
                                           entry_stop=stop, metadata={"dataset": dataset, "label": "top"}).events()


def _warm_worker(proc, f):
    import torch

    torch.set_num_threads(1)
    proc.process(_events(f, 0, 200))
    return os.getpid()


def _ready_tensors(files, proc, tagger):
    """The network inputs of the jets the processor scores, built as it builds them."""
    from coffea_jetimg.inputs import input_from_spec
    from coffea_jetimg.selection import select_jets

    key = input_from_spec(tagger.input_spec).key
    xs = []
    for f in files:
        ev = _events(f)
        xs.append(proc.plan.build(ev, select_jets(ev[proc.jets], **proc.selection))[key])
    return np.ascontiguousarray(np.concatenate(xs))


def _breakdown(f, proc, chunksize, repeats=3):
    """Per-stage times of one chunk (medians), the stages the processor runs in order: reading,
    selection, constituents, inputs (the plan), forward, then the whole table (which repeats the
    three before it, plus the per-jet columns and the pixel records), booking, fill and cutflow."""
    import awkward as ak

    from coffea_jetimg._bridge import fields_of
    from coffea_jetimg._constituents import constituents
    from coffea_jetimg.processors import jet_tagging as jt

    (name, tagger), = proc.taggers.items()
    st: dict[str, list] = {}

    def tick(key, t0):
        st.setdefault(key, []).append(time.perf_counter() - t0)
        return time.perf_counter()

    n_jets = 0
    for _ in range(repeats):
        ev = _events(f, 0, chunksize)
        t = time.perf_counter()
        for coll, fld in proc._needed_columns(ev):
            ak.materialize(ev[coll][fld])
        t = tick("read", t)
        classes = proc.classes_for(ev)
        fj = ev[proc.jets]
        mask, steps = jt.select_jets(fj, **proc.selection, return_steps=True)
        t = tick("select", t)
        jf = fields_of(fj)
        cands = constituents(ev, proc.jets, fields=proc.plan.constituent_fields(jf), layout=proc.plan.layout(ev))
        t = tick("constituents", t)
        x = next(iter(proc.plan.build(ev, mask, cands=cands).values()))
        t = tick("inputs (plan)", t)
        tagger.predict(x)
        t = tick("forward", t)
        table = jt.jet_table(ev, mask=mask, **proc._table_kwargs(classes, "top"))
        t = tick("table (all above + columns)", t)
        h = proc._hists(classes, jf, False)
        t = tick("hist booking", t)
        proc._fill(h, table, classes, False)
        t = tick("hist fill + pixel moments", t)
        proc._cutflow(ev, fj, steps, table, False, True)
        t = tick("cutflow", t)
        n_jets = len(x)
    med = {k: float(np.median(v)) for k, v in st.items()}
    print(f"breakdown of one chunk ({chunksize} events, {n_jets} jets), medians of {repeats}:")
    for k, v in med.items():
        print(f"  {k:30s} {1e3 * v:8.1f} ms")
    rest = med["table (all above + columns)"] - med["constituents"] - med["inputs (plan)"] - med["forward"]
    print(f"  {'table beyond cands+inputs+fwd':30s} {1e3 * rest:8.1f} ms")


if __name__ == "__main__":
    main()
