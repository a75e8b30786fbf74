"""Serve artifacts from a Triton Inference Server, shared by every Dask worker of a cluster.

Each ARTIFACT's TorchScript network is served under its spec's name, with its input/output
shapes, dynamic batching (--max-batch, --queue-delay-us), on CUDA when the machine has a GPU.
The server prints its gRPC/HTTP addresses when every model is loaded, answers Triton's health
checks (HTTP /v2/health/ready), logs requests/s and batch sizes, and stops cleanly on
SIGINT/SIGTERM. Point the workers at it with `coffea-jetimg run --triton grpc://HOST:PORT` or
Tagger(artifact, server="grpc://HOST:PORT"). The server runs in its own environment
(nvidia-pytriton needs numpy<2): make it once with `coffea-jetimg serve --setup`.
"""

from __future__ import annotations

import os
import sys

HELP = "serve artifacts from a Triton Inference Server (GPU-served taggers); --setup makes its venv"


def add_arguments(parser) -> None:
    parser.add_argument("artifacts", nargs="*", metavar="ARTIFACT", help="artifact directories to serve")
    parser.add_argument("--setup", action="store_true",
                        help="create/complete the server's venv (nvidia-pytriton, numpy<2, torch==2.13.0) and exit")
    parser.add_argument("--venv", default=None,
                        help="the server venv (default: $COFFEA_JETIMG_TRITON_VENV, else ./.venv-triton)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8001, help="gRPC port (what clients use)")
    parser.add_argument("--http-port", type=int, default=None, help="HTTP port (default: --port - 1)")
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics port (default: --port + 1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: CUDA when available)")
    parser.add_argument("--max-batch", type=int, default=2048, help="most inputs the dynamic batcher puts in one batch")
    parser.add_argument("--queue-delay-us", type=int, default=200,
                        help="how long a request may wait for others to fill a batch (microseconds)")
    parser.add_argument("--instances", type=int, default=1, help="model instances (parallel batches) per model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the server (default: torch's)")
    parser.add_argument("--log-every", type=float, default=10.0, help="seconds between requests/s lines")
    parser.add_argument("--verbose", action="store_true", help="Triton's and pytriton's own logs")


def main(args) -> int:
    from .serving.env import DEFAULT_VENV, ServerEnvError, server_command, setup_server_env
    from .serving.launch import server_args

    if args.setup:
        try:
            py = setup_server_env(args.venv or DEFAULT_VENV)
        except ServerEnvError as err:
            raise SystemExit(f"coffea-jetimg serve --setup: {err}") from None
        print(f"server environment ready: {py}")
        if not args.artifacts:
            return 0
    if not args.artifacts:
        raise SystemExit("coffea-jetimg serve: give one or more ARTIFACT directories (or --setup)")
    from .artifact import load_artifact
    from .serving.launch import check_servable

    for a in args.artifacts:  # a bad artifact fails here, in words, before the server starts
        check_servable(load_artifact(a))
    try:
        cmd, env = server_command(server_args(
            args.artifacts, host=args.host, grpc_port=args.port, http_port=args.http_port,
            metrics_port=args.metrics_port, device=args.device, max_batch=args.max_batch,
            queue_delay_us=args.queue_delay_us, instances=args.instances, threads=args.threads,
            log_every=args.log_every, verbose=args.verbose), args.venv)
    except (ServerEnvError, ValueError) as err:
        raise SystemExit(f"coffea-jetimg serve: {err}") from None
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)  # the server takes this process over: signals go straight to it
    return 0  # pragma: no cover
