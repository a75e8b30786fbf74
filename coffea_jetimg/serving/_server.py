"""The Triton Inference Server process behind ``coffea-jetimg serve`` (runs in the server's venv).

Run as ``python -m coffea_jetimg.serving._server ARTIFACT... [options]`` by
:class:`coffea_jetimg.serving.ServerProcess` or ``coffea-jetimg serve``, with the server venv's
interpreter (``nvidia-pytriton`` needs ``numpy<2``, see :mod:`coffea_jetimg.serving.env`). It
imports only the standard library, numpy, torch, pytriton and the package's numpy-only modules
(:mod:`coffea_jetimg.inference`, the :class:`~coffea_jetimg.artifact.Artifact` holder and
:mod:`coffea_jetimg.errors`), so the served network is loaded, checked against its spec and
evaluated exactly as a worker's in-process :class:`~coffea_jetimg.inference.Tagger` does. The
specs are validated by the launcher (:func:`~coffea_jetimg.artifact.load_artifact` in the
analysis environment), and only read here.

pytriton serves Python callables through Triton's Python backend: Triton's dynamic batcher
gathers the clients' requests (up to ``--max-batch`` inputs, waiting at most
``--queue-delay-us``), hands them to :func:`_make_infer`'s callable, which concatenates them, runs
the network once and splits the logits back. A network with several named inputs (a wrapped
weaver-style model: ``points``, ``features``, ``mask``) is served with those inputs, under the
spec's names and shapes. Every ``--log-every`` seconds one line per model
says requests/s, jets/s and the batch sizes. SIGINT/SIGTERM stop the server cleanly.
"""

from __future__ import annotations

from typing import Any

import argparse
import json
import os
import signal
import sys
import sysconfig
import threading
import time
from pathlib import Path

__all__ = ["main", "READY"]

#: printed (with the addresses) once every model is loaded and the server answers
READY = "coffea-jetimg serve: ready"
INPUT_NAME = "input"    # the names save_artifact gives the ONNX graph's input and output
OUTPUT_NAME = "logits"


def _say(msg: str) -> None:
    print(f"[coffea-jetimg serve] {msg}", flush=True)


def fix_libpython() -> None:
    """Make Triton's Python-backend stub load this interpreter's libpython.

    The stub (a separate executable started by ``tritonserver``) links ``libpython3.X.so``
    dynamically; without this it can pick the system's copy of another patch release, and every
    model then fails to load (``'_thread.RLock' object has no attribute '_recursion_count'``).
    The environment is inherited by the server and its stubs.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        old = os.environ.get("LD_LIBRARY_PATH", "")
        if libdir not in old.split(":"):
            os.environ["LD_LIBRARY_PATH"] = libdir + (":" + old if old else "")


class _Stats:
    """Requests and batch sizes of one model since the last report (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset_time = time.monotonic()
        self.requests = self.batches = self.jets = self.max_batch = 0
        self.total_jets = 0

    def add(self, n_requests: int, n_jets: int) -> None:
        with self.lock:
            self.requests += n_requests
            self.batches += 1
            self.jets += n_jets
            self.total_jets += n_jets
            self.max_batch = max(self.max_batch, n_jets)

    def report(self) -> str | None:
        with self.lock:
            now = time.monotonic()
            dt, r, b, j, m = now - self.reset_time, self.requests, self.batches, self.jets, self.max_batch
            self.reset_time, self.requests, self.batches, self.jets, self.max_batch = now, 0, 0, 0, 0
        if not b:
            return None
        return (f"{r / dt:.1f} requests/s, {j / dt:.0f} jets/s; {b} batches, size mean {j / b:.0f}, max {m} "
                f"({self.total_jets} jets in all)")


def _input_tensors(tagger) -> list[tuple[str, tuple[int, ...]]]:
    """The served inputs: ``input`` of the spec's shape, or the network's named inputs (a
    multi-input network, e.g. ``points``, ``features``, ``mask``) with their shapes."""
    return tagger.layout or [(INPUT_NAME, tuple(tagger.input_spec["shape"]))]


def _make_infer(tagger, stats: _Stats):
    import numpy as np

    names = [name for name, _ in _input_tensors(tagger)]
    output = _output_name(tagger)

    def infer(requests):
        sizes = [len(r[names[0]]) for r in requests]
        cat = {n: (requests[0][n] if len(requests) == 1 else np.concatenate([r[n] for r in requests])) for n in names}
        y = tagger.outputs(cat if tagger.layout else cat[INPUT_NAME])
        stats.add(len(requests), int(sum(sizes)))
        out, i = [], 0
        for n in sizes:
            out.append({output: y[i:i + n]})
            i += n
        return out

    return infer


def _output_name(tagger) -> str:
    """``logits``, or ``probabilities`` for a network that returns them (the spec's ``output``)."""
    return "probabilities" if tagger.output_kind == "probabilities" else OUTPUT_NAME


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m coffea_jetimg.serving._server", description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--device", default=None)
    p.add_argument("--max-batch", type=int, default=2048)
    p.add_argument("--queue-delay-us", type=int, default=200)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--log-every", type=float, default=10.0)
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fix_libpython()
    import logging

    import numpy as np

    from coffea_jetimg.artifact import SPEC_JSON, Artifact
    from coffea_jetimg.inference import Tagger, default_device

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    device = args.device or default_device()
    taggers: dict[str, Any] = {}
    for path in args.artifacts:  # load and check every network before the server starts
        # the spec was validated by the launcher (load_artifact, in the analysis environment:
        # the input kinds' registry needs awkward); here it is only read
        spec = json.loads((Path(path) / SPEC_JSON).read_text())
        t = Tagger(Artifact(path=Path(path).resolve(), spec=spec), device=device, batch_size=args.max_batch,
                   num_threads=args.threads)
        if t.name in taggers:
            raise SystemExit(f"coffea-jetimg serve: two artifacts named {t.name!r} ({taggers[t.name].path}, {t.path})")
        t._model()
        taggers[t.name] = t
        shown = ", ".join(f"{n} {list(s)}" for n, s in _input_tensors(t))
        _say(f"loaded {t.name} from {t.path} on {device}: input {shown}, "
             f"{len(t.class_names)} classes {t.class_names}")

    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    config = TritonConfig(grpc_address=args.host, grpc_port=args.grpc_port, http_address=args.host,
                          http_port=args.http_port, metrics_port=args.metrics_port, exit_timeout_secs=5,
                          log_verbose=1 if args.verbose else 0)
    # the repository endpoints (load/unload) stay behind pytriton's token; statistics stay open
    # so that clients can list the models and benchmarks can read the server's batch sizes
    security = TritonSecurityConfig(restricted_endpoints=["shared-memory", "model-repository", "trace", "logging"])
    triton = Triton(config=config, security_config=security)
    stats = {}
    for name, t in taggers.items():
        stats[name] = _Stats()
        infer = [_make_infer(t, stats[name]) for _ in range(max(1, args.instances))]
        triton.bind(model_name=name, infer_func=infer if len(infer) > 1 else infer[0],
                    inputs=[Tensor(name=n, dtype=np.float32, shape=tuple(shape)) for n, shape in _input_tensors(t)],
                    outputs=[Tensor(name=_output_name(t), dtype=np.float32, shape=(len(t.class_names),))],
                    config=ModelConfig(max_batch_size=args.max_batch,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=args.queue_delay_us)))

    stop = threading.Event()

    def on_signal(signum, frame):
        _say(f"{signal.Signals(signum).name} received, stopping")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        triton.run()
        shown = "localhost" if args.host in ("0.0.0.0", "::") else args.host
        _say(f"gRPC grpc://{shown}:{args.grpc_port}  HTTP http://{shown}:{args.http_port}  "
             f"metrics http://{shown}:{args.metrics_port}/metrics  health http://{shown}:{args.http_port}/v2/health/ready")
        _say(f"models: {', '.join(taggers)} (max batch {args.max_batch}, queue delay {args.queue_delay_us} us, "
             f"{max(1, args.instances)} instance(s) each, device {device})")
        print(READY, flush=True)
        while not stop.wait(args.log_every):
            for name, s in stats.items():
                line = s.report()
                if line:
                    _say(f"{name}: {line}")
            if not triton.is_alive():
                _say("the Triton server or a model backend died; stopping")
                return 1
    finally:
        triton.stop()
        _say("stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
