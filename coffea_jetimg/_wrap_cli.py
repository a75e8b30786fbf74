"""Make an artifact of a network trained elsewhere (weaver-core, a collaborator, an ONNX file).

MODEL is TorchScript (torch.jit.save: .pt, .ts, ...) or ONNX (.onnx); SPEC.json says what it
takes and returns: "input" (e.g. {"kind": "weaver", "n_constituents": 100, "inputs": {"pf_points":
{"vars": [["part_deta", null], ["part_dphi", null]]}, ...}}), "class_names", "signal_class", and
optionally "name", "output" ("logits" or "probabilities"). The network is checked against the
spec with a dummy forward of the declared shapes; then ARTIFACT is written, which `coffea-jetimg
run --model`, Tagger, `export-triton` and `serve` take like an artifact trained here.
"""

from __future__ import annotations

HELP = "make an artifact of an external TorchScript / ONNX model and its spec (bring your own model)"


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="TorchScript (.pt, .ts) or ONNX (.onnx) file")
    parser.add_argument("--spec", required=True, metavar="SPEC.json", help="the model's spec (JSON)")
    parser.add_argument("-o", "--output", required=True, metavar="ARTIFACT", help="artifact directory to write")
    parser.add_argument("--onnx", default=None, metavar="MODEL.onnx",
                        help="the same network as ONNX, besides a TorchScript MODEL (for --backend onnx)")
    parser.add_argument("--force", action="store_true", help="replace an existing ARTIFACT")


def main(args) -> int:
    from .artifact import load_artifact, wrap_model
    from .errors import JetImgError

    try:
        out = wrap_model(args.model, args.spec, args.output, onnx_path=args.onnx, overwrite=args.force)
    except JetImgError as err:
        raise SystemExit(f"coffea-jetimg wrap: {err}") from None
    art = load_artifact(out)
    files = ", ".join(f for f in ("model.ts", "model.onnx") if (out / f).is_file())
    print(f"wrote {out} ({files}): {art.name}, input {art.input_spec['kind']}, classes {art.class_names}")
    return 0
