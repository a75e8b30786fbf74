"""Served taggers: processor throughput and worker CPU per jet, with and without a Triton server.

CPU mode (default), one run, side by side on the same generated PFNano files and the small CNN of
``bench_processor.py`` (33x33 images):

  (a) no model    read + constituents + images + fills; the tagger returns zeros (no forward)
  (b) in-process  the network evaluated in the worker (torch, 1 thread)
  (c) served      the network on a local Triton server (``coffea-jetimg serve``, CPU, 1 thread);
                  the worker builds the inputs and sends them over gRPC

each with the IterativeExecutor (one process) and Dask LocalClusters of 1 and 2 workers
(threads_per_worker=1). For each: wall-clock jets/s (medians of --repeats) and the *worker-side*
CPU seconds per jet (user + sys of the worker processes, the gRPC client threads included, the
server excluded). Ends with

    RESULT served_worker_cpu_vs_no_model=<(c)/(a)> served_vs_in_process=<jets/s (c)/(b)>

(goal of issue 20: (c)/(a) <= 1.25, i.e. the tagger's cost leaves the workers). On a machine
with fewer cores than workers + server, wall-clock rates of (c) share the cores with the server;
the CPU-per-jet ratio is the figure that carries over to a remote GPU server.

GPU mode (``--gpu``, on a machine with a CUDA GPU, a few minutes): the server on the GPU serves
DeepTop (1x40x40 images) and LoLa (4x30), and --clients processes send ready inputs in
micro-batches for --seconds each; prints jets/s from the clients per model (goal >= 1e5 per GPU).

    python analysis/bench_served.py --quick            # small files, about a minute
    python analysis/bench_served.py --events 4000
    python analysis/bench_served.py --gpu --clients 8 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from coffea_jetimg.inference import Tagger  # noqa: E402


class NoModel(Tagger):
    """(a): everything the processor does but the forward (zeros as logits)."""

    def logits(self, x):
        return np.zeros((len(x), len(self.class_names)), dtype=np.float32)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _files(n_ev: int) -> list[str]:
    """The generated files of bench_processor.py (same names, so they are shared and reused)."""
    from coffea_jetimg.generate import generate

    data = HERE / "data" / "bench"
    data.mkdir(parents=True, exist_ok=True)
    files = []
    for i, p in enumerate(("top", "qcd")):
        f = data / f"{p}_{n_ev}_s{100 + i}.root"
        if not f.exists():
            tmp = data / f"{f.stem}.part.root"
            generate(p, n_ev, 100 + i, str(tmp), pt_min=500.0, pt_max=700.0, workers=min(2, os.cpu_count() or 1),
                     progress=False)
            tmp.rename(f)
        files.append(str(f))
    return files


def cpu_mode(args) -> int:
    import dask
    import torch
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from distributed import Client, LocalCluster

    from bench_processor import _tiny_cnn_artifact, _warm_worker
    from coffea_jetimg._run_cli import WORKER_MMAP_THRESHOLD, worker_malloc_config
    from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor
    from coffea_jetimg.serving import ServerProcess

    torch.set_num_threads(1)
    files = args.files or _files(args.events or (300 if args.quick else 4000))
    fileset = {Path(f).stem: {"files": {f: "Events"}, "metadata": {"label": Path(f).stem}} for f in files}
    work = Path(tempfile.mkdtemp(prefix="bench_served_"))
    art = _tiny_cnn_artifact(work / "cnn")
    sel = {"pt": (200.0, None)}

    def run(proc, executor):
        r = processor.Runner(executor=executor, schema=PFNanoAODSchema, chunksize=args.chunksize)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), _cpu_seconds()
            out = r(fileset, processor_instance=proc, treename="Events")
            return out, time.perf_counter() - t0, _cpu_seconds() - c0

    rows = {}
    with ServerProcess([art], device="cpu", threads=args.server_threads, max_batch=args.max_batch,
                       queue_delay_us=args.queue_delay_us, log_every=30.0) as srv:
        procs = {
            "a no model": JetTaggingProcessor({"cnn": NoModel(art, device="cpu")}, selection=sel),
            "b in-process": JetTaggingProcessor({"cnn": str(art)}, selection=sel),
            "c served": JetTaggingProcessor({"cnn": Tagger(art, server=srv.url, batch_size=args.max_batch)},
                                            selection=sel),
        }
        it = processor.IterativeExecutor(status=False)
        n_jets = None
        for name, proc in procs.items():  # warm-up: numba, model load, server check
            out, _, _ = run(proc, it)
            n = sum(v["cutflow"]["jets_scored"] for v in out.values())
            assert n_jets in (None, n), (name, n, n_jets)
            n_jets = n
        ts = {k: [] for k in procs}
        for _ in range(args.repeats):  # interleaved repeats, medians
            for name, proc in procs.items():
                _, t, c = run(proc, it)
                ts[name].append((t, c))
        for name, v in ts.items():
            rows[(name, "iterative")] = tuple(float(np.median(x)) for x in zip(*v))

        env = worker_malloc_config(WORKER_MMAP_THRESHOLD)
        for nw in args.workers:
            for name, proc in procs.items():
                vals = []
                for _ in range(max(1, args.repeats - 1)):
                    with dask.config.set(env), LocalCluster(n_workers=nw, threads_per_worker=1, processes=True,
                                                            dashboard_address=None) as cl, Client(cl) as client:
                        client.wait_for_workers(nw)
                        client.run(_warm_worker, proc, files[0])
                        c0 = sum(client.run(_cpu_seconds).values())
                        o, t, _ = run(proc, processor.DaskExecutor(client=client, status=False))
                        c = sum(client.run(_cpu_seconds).values()) - c0
                        assert sum(v["cutflow"]["jets_scored"] for v in o.values()) == n_jets
                        vals.append((t, c))
                rows[(name, f"dask {nw}w")] = tuple(float(np.median(x)) for x in zip(*vals))
        log = srv.log_text()

    print(f"jets={n_jets}  chunksize={args.chunksize}  repeats={args.repeats} (medians)  cores={os.cpu_count()}")
    print(f"{'':14s} {'executor':10s} {'wall s':>8s} {'jets/s':>9s} {'worker CPU s':>13s} {'CPU us/jet':>11s}")
    for (name, ex), (t, c) in rows.items():
        print(f"{name:14s} {ex:10s} {t:8.2f} {n_jets / t:9.0f} {c:13.2f} {1e6 * c / n_jets:11.1f}")
    ratios = {}
    for ex in ["iterative"] + [f"dask {nw}w" for nw in args.workers]:
        (ta, ca), (tb, cb), (tc, cc) = (rows[(k, ex)] for k in procs)
        ratios[ex] = (cc / ca, tb / tc, cb / ca)
        print(f"{ex:10s} worker CPU/jet: served/no-model {cc / ca:.2f}, in-process/no-model {cb / ca:.2f}; "
              f"jets/s served/in-process {tb / tc:.2f}")
    served_lines = [ln for ln in log.splitlines() if "requests/s" in ln]
    if served_lines:
        print("server:", served_lines[-1].split("] ", 1)[-1])
    key = f"dask {args.workers[0]}w" if args.workers else "iterative"
    print(f"RESULT served_worker_cpu_vs_no_model={ratios[key][0]:.2f} served_vs_in_process={ratios[key][1]:.2f} "
          f"({key})")
    return 0


def _client_loop(url: str, path: str, shape, batch: int, seconds: float, seed: int, q) -> None:
    """One client process: send ready inputs in micro-batches for ``seconds``; put the jet count."""
    import numpy as np

    from coffea_jetimg.inference import Tagger

    t = Tagger(path, server=url, batch_size=batch)
    x = np.random.default_rng(seed).random((4 * batch, *shape), dtype=np.float32)
    t.predict(x[:batch])  # connect and check, untimed
    n, t_end = 0, time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < t_end:
        t.predict(x)
        n += len(x)
    q.put((n, time.perf_counter() - t0))


def gpu_mode(args) -> int:
    import multiprocessing as mp

    import torch

    from bench_gpu_inference import _artifact
    from coffea_jetimg.serving import ServerProcess

    if not torch.cuda.is_available():
        print("--gpu: no CUDA device visible to torch here (the server needs one); nothing measured")
        return 2
    print(f"GPU {torch.cuda.get_device_name(0)}; {args.clients} client processes x {args.seconds:.0f} s, "
          f"micro-batch {args.batch}, server max batch {args.max_batch}, {args.instances} instance(s)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_served_gpu_"))
    cases = {"deeptop": ((1, 40, 40), _artifact(tmp, "deeptop", (1, 40, 40), 2, "image",
                                                {"image_spec": {"preset": "deeptop"}})),
             "lola": ((4, 30), _artifact(tmp, "lola", (4, 30), 2, "lorentz", {"n_constituents": 30}))}
    rates = {}
    with ServerProcess([p for _, p in cases.values()], device="cuda", max_batch=args.max_batch,
                       queue_delay_us=args.queue_delay_us, instances=args.instances, log_every=10.0) as srv:
        ctx = mp.get_context("spawn")
        for name, (shape, path) in cases.items():
            q = ctx.Queue()
            ps = [ctx.Process(target=_client_loop, args=(srv.url, str(path), shape, args.batch, args.seconds, i, q))
                  for i in range(args.clients)]
            for p in ps:
                p.start()
            got = [q.get(timeout=args.seconds + 300) for _ in ps]
            for p in ps:
                p.join()
            jets = sum(n for n, _ in got)
            wall = max(t for _, t in got)
            rates[name] = jets / wall
            print(f"{name:8s} {jets} jets in {wall:.1f} s from {args.clients} clients: {rates[name]:.3g} jets/s "
                  f"({rates[name] / args.clients:.3g} per client)")
        for ln in srv.log_text().splitlines():
            if "requests/s" in ln:
                print("server:", ln.split("] ", 1)[-1])
    print("RESULT " + " ".join(f"{k}_jets_per_s={v:.3g}" for k, v in rates.items()))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 events per sample")
    ap.add_argument("--events", type=int, default=None, help="events per sample (top and qcd; default 4000)")
    ap.add_argument("--files", nargs="*", help="PFNano files instead of generated ones")
    ap.add_argument("--chunksize", type=int, default=1000, help="events per chunk")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (medians)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="Dask worker counts")
    ap.add_argument("--max-batch", type=int, default=2048, help="server max batch and client micro-batch")
    ap.add_argument("--queue-delay-us", type=int, default=200, help="server dynamic-batching delay")
    ap.add_argument("--server-threads", type=int, default=1, help="torch threads of the CPU server")
    ap.add_argument("--gpu", action="store_true", help="GPU mode: the server on CUDA, --clients processes")
    ap.add_argument("--clients", type=int, default=8, help="GPU mode: client processes")
    ap.add_argument("--seconds", type=float, default=20.0, help="GPU mode: seconds each client sends")
    ap.add_argument("--batch", type=int, default=1024, help="GPU mode: client micro-batch")
    ap.add_argument("--instances", type=int, default=2, help="GPU mode: model instances on the server")
    args = ap.parse_args(argv)
    return gpu_mode(args) if args.gpu else cpu_mode(args)


if __name__ == "__main__":
    sys.exit(main())
