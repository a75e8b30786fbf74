"""Triton model repositories from artifacts, for a facility's own Triton Inference Server.

``export_triton(artifact, repo)`` writes, per backend, a model directory in the standard layout::

    REPO/NAME/config.pbtxt     name, backend, max_batch_size, input/output names, dims, dynamic batching
    REPO/NAME/1/model.pt       the artifact's TorchScript (backend pytorch_libtorch), or
    REPO/NAME/1/model.onnx     its ONNX graph (backend onnxruntime)
    REPO/NAME/labels.txt       the class names, one a line (the output's label file)
    REPO/NAME/spec.json        the artifact's spec, for provenance (Triton ignores it)

The libtorch backend names tensors ``<name>__<index>`` (``input__0`` → ``logits__0``); the ONNX
graph keeps the names :func:`~coffea_jetimg.artifact.save_artifact` gave it (``input`` →
``logits``). :class:`~coffea_jetimg.inference.Tagger` reads the names from the server's model
metadata, so a client works with either.

A network with several named inputs (a wrapped weaver-style model) declares each of them: for
libtorch ``<name>__<index>`` in the order ``forward`` takes them (``pf_points__0``,
``pf_features__1``, ``pf_mask__2``), for onnxruntime the graph's own input names; the output is
the graph's output name (recorded when the model was wrapped), ``probabilities__0`` for a
libtorch network whose spec says ``"output": "probabilities"``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..artifact import Artifact, ArtifactError, load_artifact
from ..model_inputs import input_layout

__all__ = ["export_triton", "BACKENDS", "config_pbtxt"]

#: Triton backend -> (model file in the version directory, input name, output name)
BACKENDS = {
    "pytorch_libtorch": ("model.pt", "input__0", "logits__0"),
    "onnxruntime": ("model.onnx", "input", "logits"),
}
_ALIASES = {"torch": "pytorch_libtorch", "libtorch": "pytorch_libtorch", "onnx": "onnxruntime"}


def config_pbtxt(name: str, backend: str, input_shape, n_classes: int, *, max_batch: int = 2048,
                 queue_delay_us: int = 200, labels: bool = True, inputs=None, output: str | None = None) -> str:
    """The ``config.pbtxt`` text (Triton's ``ModelConfig`` protobuf, text format) of one model.

    ``inputs``: ``[(name, dims), ...]`` of a model with several named inputs (replacing the one
    input of ``input_shape``); ``output``: the output's name (default the backend's)."""
    _, inp, out = BACKENDS[backend]
    out = output or out
    tensors = [(n, d) for n, d in inputs] if inputs else [(inp, input_shape)]
    blocks = ",\n".join("  {\n" f'    name: "{n}"\n    data_type: TYPE_FP32\n'
                         f'    dims: [ {", ".join(str(int(v)) for v in d)} ]\n' "  }" for n, d in tensors)
    label = '\n    label_filename: "labels.txt"' if labels else ""
    return f"""name: "{name}"
backend: "{backend}"
max_batch_size: {int(max_batch)}
input [
{blocks}
]
output [
  {{
    name: "{out}"
    data_type: TYPE_FP32
    dims: [ {int(n_classes)} ]{label}
  }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {int(queue_delay_us)}
}}
"""


def export_triton(artifact, repo, *, backends=("pytorch_libtorch",), name: str | None = None,
                  max_batch: int = 2048, queue_delay_us: int = 200, version: int = 1,
                  overwrite: bool = False) -> list[Path]:
    """Write an artifact as model(s) of a Triton model repository.

    Parameters
    ----------
    artifact : path or Artifact
    repo : path
        The repository directory (created if needed; other models in it are left alone).
    backends : sequence of str
        ``'pytorch_libtorch'`` (alias ``'torch'``) and/or ``'onnxruntime'`` (``'onnx'``). With
        both, the ONNX model is named ``NAME_onnx``.
    name : str, optional
        Model name on the server (default: the artifact's ``name``); what clients pass as
        ``model_name`` (``Tagger(..., server=URL, model_name=NAME)``).
    max_batch : int
        ``max_batch_size`` (inputs per batch the server forms).
    queue_delay_us : int
        Dynamic batching: how long a request may wait for others to fill a batch.
    version : int
        The version directory.
    overwrite : bool
        Replace existing model directories of the same names.

    Returns
    -------
    list of Path
        The model directories written.

    Raises
    ------
    ArtifactError
        The artifact has no ``model.onnx`` for ``onnxruntime``, or no input shape in its spec.
    FileExistsError
        A model directory exists and ``overwrite`` is False.
    """
    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    chosen = [_ALIASES.get(b, b) for b in ([backends] if isinstance(backends, str) else backends)]
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown or not chosen:
        raise ValueError(f"backends must be among {sorted(BACKENDS)} (or {sorted(_ALIASES)}), got {list(backends)}")
    if int(max_batch) < 1 or int(queue_delay_us) < 0 or int(version) < 1:
        raise ValueError(f"max_batch >= 1, queue_delay_us >= 0 and version >= 1 needed "
                         f"(got {max_batch}, {queue_delay_us}, {version})")
    shape = art.input_spec.get("shape")
    if not shape:
        raise ArtifactError(f"{art.path / 'spec.json'}: no input.shape, cannot declare the model's dims")
    base = name or art.name
    repo = Path(repo)
    written = []
    layout = input_layout(art.input_spec)
    files = art.spec.get("files") or {}
    for backend in dict.fromkeys(chosen):
        model_file, _, _ = BACKENDS[backend]
        if backend == "pytorch_libtorch":
            src = art.torchscript_path if art.has_torchscript else None
        else:
            src = art.onnx_path
        if src is None:
            missing, other = ("model.onnx", "torch") if backend == "onnxruntime" else ("model.ts", "onnx")
            raise ArtifactError(f"{art.path / missing}: missing, cannot export for the {backend} backend "
                                f"(--backend {other})")
        if backend == "pytorch_libtorch":
            inputs = [(f"{n}__{k}", shape) for k, (n, shape) in enumerate(layout)] if layout else None
            output = "probabilities__0" if art.spec.get("output") == "probabilities" else None
        else:
            inputs, output = (list(layout) if layout else None), files.get("onnx_output")
        model_name = base if len(chosen) == 1 or backend == "pytorch_libtorch" else f"{base}_onnx"
        d = repo / model_name
        if d.exists():
            if not overwrite:
                raise FileExistsError(f"{d}: exists (pass overwrite=True / --force to replace it)")
            shutil.rmtree(d)
        (d / str(int(version))).mkdir(parents=True)
        shutil.copyfile(src, d / str(int(version)) / model_file)
        (d / "labels.txt").write_text("".join(f"{c}\n" for c in art.class_names))
        (d / "spec.json").write_text(json.dumps(art.spec, indent=2) + "\n")
        (d / "config.pbtxt").write_text(config_pbtxt(model_name, backend, shape, len(art.class_names),
                                                     max_batch=max_batch, queue_delay_us=queue_delay_us,
                                                     inputs=inputs, output=output))
        written.append(d)
    return written
