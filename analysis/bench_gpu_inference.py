"""Tagger inference on CPU and GPU: same numbers, throughput, and OOM batch halving.

Builds the package's own networks (DeepTop CNN on 40x40 images, LoLa on 30 constituents,
ResNet-18 on 224x224x3 event images) with random weights, saves each as an artifact
(TorchScript + ONNX + spec.json) and evaluates it through :class:`coffea_jetimg.inference.Tagger`
(numpy in, numpy out, explicit host<->device copies, micro-batched):

* CPU (1 thread, as on a Dask worker) vs CUDA: largest absolute difference of the probabilities;
* jets (events) per second on CUDA for several micro-batch sizes vs CPU with 1 thread;
* a deliberately huge micro-batch on ResNet-18 to show the halving on CUDA out-of-memory.

Needs only torch and numpy (runs on a GPU node without coffea). Medians of --repeats runs.

    python analysis/bench_gpu_inference.py [--n 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _artifact(tmp: Path, arch: str, shape, n_classes: int, kind: str, extra: dict):
    import torch

    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, shape, n_classes).eval()
    spec = {"name": arch, "architecture": arch, "class_names": [f"c{i}" for i in range(n_classes)],
            "signal_class": f"c{n_classes - 1}", "input": {"kind": kind, "jets": "FatJet", **extra}}
    return save_artifact(tmp / arch, model, spec, torch.randn(2, *shape))


def _time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> int:
    import torch

    from coffea_jetimg.inference import Tagger, clear_cache

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000, help="jets per measurement")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--oom-images", type=int, default=30000,
                   help="event images in the OOM-halving check (4 bytes x 150k each)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, CUDA available: {cuda}"
          + (f" ({torch.cuda.get_device_name(0)})" if cuda else ""))
    rng = np.random.default_rng(0)
    cases = [
        ("deeptop", (1, 40, 40), 2, "image", {"image_spec": {"preset": "deeptop"}}, args.n),
        ("lola", (4, 30), 2, "lorentz", {"n_constituents": 30}, args.n),
        ("resnet18", (3, 224, 224), 3, "event_image", {"event_image_spec": {"canvas": 224}}, max(args.n // 20, 256)),
    ]
    results = {}
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        for arch, shape, ncls, kind, extra, n in cases:
            path = _artifact(tmp, arch, shape, ncls, kind, extra)
            x = rng.random((n, *shape), dtype=np.float32)
            if kind == "lorentz":  # physical 4-vectors: E >= |p|
                x[:, 0] = np.abs(x[:, 1:]).sum(axis=1) + 0.1
            cpu = Tagger(path, device="cpu", batch_size=512, num_threads=1)
            n_cpu = min(n, 2000 if kind != "event_image" else 64)
            t_cpu = _time(lambda: cpu.predict(x[:n_cpu]), max(1, args.repeats // 2))
            row = {"cpu_1thread_per_s": n_cpu / t_cpu}
            print(f"{arch:9s} CPU 1 thread: {n_cpu / t_cpu:10.0f} /s (median of {max(1, args.repeats // 2)})")
            if cuda:
                ref = cpu.predict(x[:n_cpu])
                for bs in (256, 1024, 4096, 16384):
                    if kind == "event_image" and bs > 1024:
                        continue
                    gpu = Tagger(path, device="cuda", batch_size=bs)
                    got = gpu.predict(x[:n_cpu])
                    diff = float(np.max(np.abs(got - ref)))
                    gpu.predict(x)  # warm-up (cuDNN autotuning, allocator)
                    torch.cuda.synchronize()
                    t = _time(lambda: gpu.predict(x), args.repeats)
                    row[f"cuda_bs{bs}_per_s"] = n / t
                    row[f"cuda_bs{bs}_maxdiff"] = diff
                    print(f"{arch:9s} CUDA batch {bs:6d}: {n / t:10.0f} /s   "
                          f"x{(n / t) / row['cpu_1thread_per_s']:7.1f} vs CPU 1 thread;"
                          f" max |p_cuda - p_cpu| = {diff:.2e}")
                if kind == "event_image":
                    free, total = torch.cuda.mem_get_info()
                    # the first convolution's output of ResNet-18 is 3.2 MB per 224x224 image in
                    # fp32: a micro-batch of all 30000 images needs ~96 GB for it alone, more than
                    # the card has, so the tagger must halve the batch until it fits
                    huge = args.oom_images
                    xs = np.full((huge, *shape), 0.5, dtype=np.float32)
                    big = Tagger(path, device="cuda", batch_size=huge)
                    t0 = time.perf_counter()
                    out = big.predict(xs)
                    dt = time.perf_counter() - t0
                    ok = bool(np.all(np.isfinite(out)) and np.allclose(out.sum(axis=1), 1, atol=1e-4))
                    print(f"{arch:9s} OOM halving: asked batch {huge}, ran with {big.last_batch_size}"
                          f" on {len(xs)} images in {dt:.1f} s; outputs valid: {ok};"
                          f" GPU memory {total / 2**30:.0f} GiB")
                    row["oom_asked"], row["oom_used"] = huge, big.last_batch_size
            results[arch] = row
            clear_cache()
    if cuda:
        best = {a: max(v for k, v in r.items() if k.endswith("_per_s") and k.startswith("cuda"))
                for a, r in results.items()}
        speed = {a: best[a] / results[a]["cpu_1thread_per_s"] for a in results}
        maxdiff = max(v for r in results.values() for k, v in r.items() if k.endswith("maxdiff"))
        print("RESULT " + " ".join(f"{a}_gpu_over_cpu1={s:.0f}" for a, s in speed.items())
              + f" max_prob_diff={maxdiff:.1e}")
    else:
        print("RESULT no CUDA device: CPU figures only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
