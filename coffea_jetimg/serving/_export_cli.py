"""Write artifacts as a Triton model repository for a facility's own Triton Inference Server.

Each ARTIFACT becomes REPO/NAME/config.pbtxt with 1/model.pt (backend pytorch_libtorch) and/or
1/model.onnx (onnxruntime): input/output names and dims, max batch size, dynamic batching, the
class names as the output's labels. Start Triton with --model-repository REPO and point the
workers at it with `coffea-jetimg run --triton grpc://HOST:8001`.
"""

from __future__ import annotations

HELP = "write artifacts as a Triton model repository (config.pbtxt + model.pt/model.onnx)"


def add_arguments(parser) -> None:
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="artifact directories to export")
    parser.add_argument("-o", "--output", required=True, metavar="REPO", help="model repository directory")
    parser.add_argument("--backend", choices=("torch", "onnx", "both"), default="torch",
                        help="pytorch_libtorch (model.pt), onnxruntime (model.onnx; named NAME_onnx with both)")
    parser.add_argument("--name", default=None, help="model name (one artifact only; default: the spec's name)")
    parser.add_argument("--max-batch", type=int, default=2048, help="max_batch_size: most inputs in one batch")
    parser.add_argument("--queue-delay-us", type=int, default=200,
                        help="dynamic batching: how long a request may wait for others (microseconds)")
    parser.add_argument("--version", type=int, default=1, help="the model's version directory")
    parser.add_argument("--force", action="store_true", help="replace existing model directories")


def main(args) -> int:
    from .export import export_triton

    if args.name and len(args.artifacts) > 1:
        raise SystemExit("coffea-jetimg export-triton: --name needs exactly one ARTIFACT")
    backends = {"torch": ["pytorch_libtorch"], "onnx": ["onnxruntime"], "both": ["pytorch_libtorch", "onnxruntime"]}
    for a in args.artifacts:
        try:
            dirs = export_triton(a, args.output, backends=backends[args.backend], name=args.name,
                                 max_batch=args.max_batch, queue_delay_us=args.queue_delay_us,
                                 version=args.version, overwrite=args.force)
        except (FileExistsError, ValueError) as err:
            raise SystemExit(f"coffea-jetimg export-triton: {err}") from None
        for d in dirs:
            print(f"wrote {d}")
    return 0
