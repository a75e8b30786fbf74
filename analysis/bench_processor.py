"""Throughput of JetTaggingProcessor on generated PFNano files (CPU inference).

Measures, in one run and on the same files:
  full     the processor (selection, constituents, images, CNN forward, hist fills), IterativeExecutor
  read     a processor that only reads the same columns (ak.materialize of them)
  forward  the bare TorchScript forward on ready tensors of the same jets
and Dask LocalCluster throughput with 2 workers vs 1 (threads_per_worker=1).

Ends with: RESULT overhead_vs_model=<full/(read+forward)> dask_scaling=<2 workers / 1 worker>

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
                         torch.randn(2, 1, npix, npix))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--events", type=int, default=None, help="events per sample (top and qcd)")
    ap.add_argument("--files", nargs="*", help="use these PFNano files instead of generating")
    ap.add_argument("--chunksize", type=int, default=2000)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    from coffea_jetimg.inference import Tagger
    from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor

    work = Path(tempfile.mkdtemp(prefix="bench_proc_"))
    n_ev = args.events or (300 if args.quick else 12000)
    files = args.files
    if not files:
        from coffea_jetimg.generate import generate

        t = time.perf_counter()
        files = [generate(p, n_ev, 100 + i, str(work / f"{p}.root"), pt_min=500.0, pt_max=700.0,
                          workers=min(2, os.cpu_count() or 1), progress=False) for i, p in enumerate(("top", "qcd"))]
        print(f"generated {2 * n_ev} events in {time.perf_counter() - t:.1f} s")
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
    out, t_full = run(proc, it)
    n_jets = sum(v["cutflow"]["jets_scored"] for v in out.values())
    _, t_read = run(ReadOnly(proc), it)
    # bare forward on ready tensors of the same number of jets
    tagger = Tagger(art, device="cpu")
    x = np.random.default_rng(0).random((n_jets, *tagger.input_spec["shape"]), dtype=np.float32)
    tagger.predict(x[:16])
    t = time.perf_counter()
    tagger.predict(x)
    t_fwd = time.perf_counter() - t
    print(f"jets={n_jets}  full={t_full:.2f}s ({n_jets / t_full:.0f} jets/s/core)  read-only={t_read:.2f}s  "
          f"forward={t_fwd:.2f}s ({n_jets / t_fwd:.0f} jets/s)")

    rates = {}
    from distributed import Client, LocalCluster

    for nw in (1, 2):
        with LocalCluster(n_workers=nw, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
                Client(cl) as client:
            ex = processor.DaskExecutor(client=client, status=False)
            run(proc, ex, args.chunksize // 3 + 1)  # warm-up (different chunks, so no cached dask results are reused)
            _, t = run(proc, ex)
            rates[nw] = n_jets / t
            print(f"dask {nw} worker(s): {t:.2f}s, {rates[nw]:.0f} jets/s")
    overhead = t_full / (t_read + t_fwd)
    print(f"RESULT overhead_vs_model={overhead:.2f} dask_scaling={rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
