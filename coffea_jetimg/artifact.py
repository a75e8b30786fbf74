"""Model artifacts: a trained tagger and the preprocessing spec it was trained with, on disk.

An artifact is a directory holding

``model.ts``
    The network as TorchScript (``torch.jit.save``). Loading it never unpickles arbitrary
    Python objects.
``model.onnx``
    The same network exported to ONNX with a dynamic batch axis (absent only if the export
    failed, with a warning at save time).
``spec.json``
    What the network expects and returns::

        {"format": "coffea-jetimg-artifact", "version": 1,
         "name": str, "architecture": str,
         "input": {"kind": str, ..., "jets": "FatJet", "shape": [...]},
         "class_names": [str, ...], "signal_class": str, "output": "logits",
         "training": {...}, "metrics": {...}}

``input`` is read through the input kinds' registry (:mod:`coffea_jetimg.inputs`: one class per
kind knows its keys, e.g. ``image_spec`` for images, ``n_constituents`` for 4-vectors); the
processor rebuilds the network inputs from it, never from a second copy of the settings.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArtifactError, InputsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ArtifactError",
    "Artifact",
    "save_artifact",
    "load_artifact",
    "validate_spec",
    "FORMAT",
    "VERSION",
    "MODEL_TS",
    "MODEL_ONNX",
    "SPEC_JSON",
]

FORMAT = "coffea-jetimg-artifact"
VERSION = 1
MODEL_TS = "model.ts"
MODEL_ONNX = "model.onnx"
SPEC_JSON = "spec.json"

_REQUIRED = ("name", "architecture", "input", "class_names", "signal_class")


def validate_spec(spec: dict, where: str = "spec") -> dict:
    """Check a spec dictionary and return a normalised copy (defaults filled in).

    Parameters
    ----------
    spec : dict
        The content of ``spec.json`` (``format``/``version`` may be absent when saving).
    where : str
        Named in error messages (the file path when loading).

    Raises
    ------
    ArtifactError
        Wrong format or version, missing keys, unknown input kind, signal class not among
        the class names.
    """
    if not isinstance(spec, dict):
        raise ArtifactError(f"{where}: expected a JSON object, got {type(spec).__name__}")
    out = dict(spec)
    fmt = out.setdefault("format", FORMAT)
    if fmt != FORMAT:
        raise ArtifactError(f"{where}: format is {fmt!r}, expected {FORMAT!r} (not a coffea-jetimg artifact?)")
    ver = out.setdefault("version", VERSION)
    if ver != VERSION:
        raise ArtifactError(f"{where}: artifact version {ver!r} is not supported "
                            f"(this coffea-jetimg reads version {VERSION})")
    missing = [k for k in _REQUIRED if k not in out]
    if missing:
        raise ArtifactError(f"{where}: missing key(s) {', '.join(missing)}")
    from .inputs import normalise_input  # the input kinds' registry checks and fills the block

    try:
        inp = normalise_input(out["input"])
    except InputsError as err:
        raise ArtifactError(f"{where}: {err}") from None
    out["input"] = inp
    names = out["class_names"]
    if not isinstance(names, (list, tuple)) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ArtifactError(f"{where}: 'class_names' must be a list of at least two strings, got {names!r}")
    out["class_names"] = list(names)
    if out["signal_class"] not in names:
        raise ArtifactError(f"{where}: signal_class {out['signal_class']!r} is not among class_names {names}")
    out.setdefault("output", "logits")
    if out["output"] != "logits":
        raise ArtifactError(f"{where}: output {out['output']!r} is not supported (expected 'logits')")
    out.setdefault("training", {})
    out.setdefault("metrics", {})
    return out


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and tuples to JSON types."""
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _to_torchscript(model: torch.nn.Module, example_input: torch.Tensor) -> tuple[Any, str]:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.script(model), "script"
        except Exception as err_script:
            try:
                with torch.no_grad():
                    return torch.jit.trace(model, (example_input,), check_trace=False), "trace"
            except Exception as err_trace:
                raise ArtifactError(
                    f"cannot convert {type(model).__name__} to TorchScript: script failed ({err_script}); "
                    f"trace failed ({err_trace})"
                ) from err_trace


def _max_abs_diff(a: Any, b: Any) -> float:
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def save_artifact(directory: str | os.PathLike[str], model: torch.nn.Module, spec: dict, example_input: Any, *,
                  atol: float = 1e-5, onnx: bool = True, opset_version: int = 17) -> Path:
    """Save ``model`` with its spec as an artifact directory.

    Parameters
    ----------
    directory : str or Path
        Created if needed; ``model.ts``, ``model.onnx`` and ``spec.json`` are (over)written.
    model : torch.nn.Module
        The eager network, returning logits ``(batch, n_classes)``. Put in eval mode here.
    spec : dict
        The spec (see module docstring); ``format``/``version``/``output`` are filled in, and
        ``input.shape`` from ``example_input`` when absent.
    example_input : torch.Tensor
        A batch ``(batch, *input.shape)`` used for tracing, the ONNX export and verification.
        A batch of at least 2 is advised (the ONNX batch axis is declared dynamic anyway).
    atol : float
        Maximum absolute difference allowed between eager, TorchScript and ONNX outputs.
    onnx : bool
        Export ``model.onnx`` (skipped with a warning if the export fails).

    Returns
    -------
    Path
        The artifact directory.

    Raises
    ------
    ArtifactError
        If the spec is invalid, the TorchScript conversion fails, or an exported model does
        not reproduce the eager output within ``atol``.
    """
    import torch

    directory = Path(directory)
    spec = validate_spec(_jsonable(spec), where="spec passed to save_artifact")
    example_input = torch.as_tensor(example_input).detach().to("cpu", torch.float32)
    if spec["input"].get("shape") is None:
        spec["input"]["shape"] = list(example_input.shape[1:])
    elif list(spec["input"]["shape"]) != list(example_input.shape[1:]):
        raise ArtifactError(
            f"spec input.shape {spec['input']['shape']} does not match the example input "
            f"{list(example_input.shape[1:])}"
        )
    model = model.to("cpu").eval()
    directory.mkdir(parents=True, exist_ok=True)

    with torch.no_grad():
        eager = model(example_input)
    if eager.ndim != 2 or eager.shape[1] != len(spec["class_names"]):
        raise ArtifactError(
            f"model returns shape {tuple(eager.shape)}; expected (batch, {len(spec['class_names'])}) logits "
            f"for classes {spec['class_names']}"
        )
    eager = eager.numpy()

    scripted, how = _to_torchscript(model, example_input)
    ts_path = directory / MODEL_TS
    torch.jit.save(scripted, str(ts_path))
    reloaded = torch.jit.load(str(ts_path), map_location="cpu")
    with torch.no_grad():
        ts_out = reloaded(example_input).numpy()
    diff = _max_abs_diff(eager, ts_out)
    if not diff <= atol:
        raise ArtifactError(f"{ts_path}: TorchScript ({how}) output differs from eager by {diff:.3g} > {atol}")

    onnx_path = directory / MODEL_ONNX
    spec.setdefault("files", {})
    spec["files"] = {"torchscript": MODEL_TS, "torchscript_method": how}
    if onnx:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, (example_input,), str(onnx_path), dynamo=False, input_names=["input"],
                    output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                    opset_version=opset_version,
                )
        except Exception as err:
            warnings.warn(f"ONNX export of {spec['name']} failed, {onnx_path} not written: {type(err).__name__}: {err}")
            if onnx_path.exists():
                onnx_path.unlink()
        else:
            try:
                import onnxruntime as ort
            except ImportError:
                warnings.warn("onnxruntime is not installed (pip install 'coffea-jetimg[onnx]'); "
                              "ONNX output not verified")
            else:
                sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
                onnx_out = sess.run(None, {sess.get_inputs()[0].name: example_input.numpy()})[0]
                diff = _max_abs_diff(eager, onnx_out)
                if not diff <= atol:
                    raise ArtifactError(f"{onnx_path}: ONNX output differs from eager by {diff:.3g} > {atol}")
            spec["files"]["onnx"] = MODEL_ONNX
    elif onnx_path.exists():
        onnx_path.unlink()

    tmp = directory / (SPEC_JSON + ".tmp")
    tmp.write_text(json.dumps(spec, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, directory / SPEC_JSON)
    return directory


@dataclass
class Artifact:
    """A loaded artifact. The TorchScript module is loaded on first access of :attr:`module`.

    Attributes
    ----------
    path : Path
        The artifact directory.
    spec : dict
        The validated ``spec.json``.
    """

    path: Path
    spec: dict
    _module: Any = field(default=None, repr=False, compare=False)
    _device: str = field(default="cpu", repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def input_spec(self) -> dict:
        return self.spec["input"]

    @property
    def class_names(self) -> list[str]:
        return list(self.spec["class_names"])

    @property
    def signal_class(self) -> str:
        return self.spec["signal_class"]

    @property
    def signal_index(self) -> int:
        return self.class_names.index(self.signal_class)

    @property
    def torchscript_path(self) -> Path:
        return self.path / MODEL_TS

    @property
    def onnx_path(self) -> Path | None:
        p = self.path / MODEL_ONNX
        return p if p.is_file() else None

    def load_module(self, device: str = "cpu") -> torch.jit.ScriptModule:
        """Load the TorchScript module onto ``device`` (``torch.jit.load``; no pickle)."""
        import torch

        p = self.torchscript_path
        try:
            mod = torch.jit.load(str(p), map_location=device)
        except Exception as err:
            raise ArtifactError(f"{p}: cannot be loaded as TorchScript, the file may be corrupt ({type(err).__name__}: "
                                f"{str(err).splitlines()[0] if str(err) else ''})") from err
        mod.eval()
        return mod

    @property
    def module(self) -> torch.jit.ScriptModule:
        """The TorchScript module on CPU, loaded once."""
        if self._module is None:
            self._module = self.load_module("cpu")
        return self._module

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "spec": self.spec, "_module": None, "_device": self._device}


def _check_zip(path: Path) -> None:
    """A TorchScript file is a zip archive: check its directory and CRCs without unpickling."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ArtifactError(f"{path}: corrupt model file, not a TorchScript archive ({err})") from err
    if bad is not None:
        raise ArtifactError(f"{path}: corrupt model file (member {bad!r} fails its CRC check)")
    if not any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names):
        raise ArtifactError(f"{path}: not a TorchScript model (no code/ in the archive; saved with torch.save?)")


def load_artifact(directory: str | os.PathLike[str]) -> Artifact:
    """Open an artifact directory (reads and validates ``spec.json``; the model loads lazily).

    Raises
    ------
    ArtifactError
        Naming the file: missing directory, ``spec.json`` or ``model.ts``; corrupt JSON; wrong
        format or version; missing keys; a ``model.ts`` that is not an intact TorchScript archive.
    """
    path = Path(directory)
    if not path.exists():
        raise ArtifactError(f"{path}: artifact directory does not exist")
    if not path.is_dir():
        raise ArtifactError(f"{path}: an artifact is a directory (with {MODEL_TS}, {MODEL_ONNX}, {SPEC_JSON}), "
                            "got a file")
    spec_path = path / SPEC_JSON
    if not spec_path.is_file():
        raise ArtifactError(f"{spec_path}: missing (is {path} a coffea-jetimg artifact?)")
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{spec_path}: corrupt JSON ({err})") from err
    spec = validate_spec(spec, where=str(spec_path))
    from .training.provenance import check_versions

    check_versions(spec, str(spec_path))  # warns when trained with another torch / coffea-jetimg
    ts = path / MODEL_TS
    if not ts.is_file():
        raise ArtifactError(f"{ts}: missing (the artifact has no TorchScript model)")
    if ts.stat().st_size == 0:
        raise ArtifactError(f"{ts}: empty file (corrupt model)")
    _check_zip(ts)
    return Artifact(path=path.resolve(), spec=spec)
