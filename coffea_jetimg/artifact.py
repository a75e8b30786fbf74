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
         "class_names": [str, ...], "signal_class": str, "output": "logits",  # or "probabilities"
         "training": {...}, "metrics": {...}}

A network trained elsewhere (TorchScript or ONNX, possibly with several named inputs) becomes an
artifact with :func:`wrap_model` (``coffea-jetimg wrap``); such an artifact may hold only
``model.onnx`` (``files`` then names no ``torchscript``), and is evaluated by ONNX Runtime.

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
    "wrap_model",
    "OUTPUTS",
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
#: what the network returns per input: logits (softmax taken by the tagger) or class probabilities
OUTPUTS = ("logits", "probabilities")


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
    if out["output"] not in OUTPUTS:
        raise ArtifactError(f"{where}: output {out['output']!r} is not supported (one of {', '.join(OUTPUTS)})")
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
    def has_torchscript(self) -> bool:
        """Whether the artifact holds ``model.ts`` (a wrapped ONNX model may hold only ``model.onnx``)."""
        return (self.path / MODEL_TS).is_file()

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
    files = spec.get("files") or {}
    if not ts.is_file() and "torchscript" not in files and files.get("onnx"):  # a wrapped ONNX model
        onnx_file = path / str(files["onnx"])
        if not onnx_file.is_file() or onnx_file.stat().st_size == 0:
            raise ArtifactError(f"{onnx_file}: missing or empty (the artifact's only model)")
        return Artifact(path=path.resolve(), spec=spec)
    if not ts.is_file():
        raise ArtifactError(f"{ts}: missing (the artifact has no TorchScript model)")
    if ts.stat().st_size == 0:
        raise ArtifactError(f"{ts}: empty file (corrupt model)")
    _check_zip(ts)
    return Artifact(path=path.resolve(), spec=spec)


# ---- networks trained elsewhere ------------------------------------------------------------------

_TS_SUFFIXES = (".pt", ".ts", ".pth", ".torchscript", ".jit")


def _read_spec(spec: Any) -> dict:
    """A spec given as a dict, a JSON file path or a JSON string."""
    if isinstance(spec, dict):
        return json.loads(json.dumps(_jsonable(spec)))  # a deep copy, JSON types only
    text = str(spec)
    if isinstance(spec, Path) or not text.lstrip().startswith("{"):
        p = Path(text)
        if not p.is_file():
            raise ArtifactError(f"{p}: spec file does not exist")
        where, text = str(p), p.read_text()
    else:
        where = "spec"
    try:
        out = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(out, dict):
        raise ArtifactError(f"{where}: expected a JSON object, got {type(out).__name__}")
    return out


def _onnx_info(path: Path) -> tuple[list[str], str]:
    """The input names and the first output name of an ONNX graph (without onnxruntime)."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - the onnx extra
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return [i.name for i in sess.get_inputs()], sess.get_outputs()[0].name
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ArtifactError(f"{path}: not an ONNX model ({type(err).__name__}: {err})") from None
    init = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in init]
    if not model.graph.output:
        raise ArtifactError(f"{path}: the ONNX graph has no output")
    return inputs, model.graph.output[0].name


def wrap_model(model_path: str | os.PathLike[str], spec: Any, out_dir: str | os.PathLike[str], *,
               onnx_path: str | os.PathLike[str] | None = None, overwrite: bool = False,
               atol: float = 1e-4) -> Path:
    """Make an artifact of a network trained elsewhere (weaver-core, a collaborator, an ONNX file).

    The network is checked against the spec with a dummy forward of the shapes the spec
    declares (each named input of a ``weaver`` input, see :mod:`coffea_jetimg.inputs.weaver`),
    then written as a normal artifact directory, which ``coffea-jetimg run``,
    :class:`~coffea_jetimg.inference.Tagger`, ``export-triton`` and ``serve`` (TorchScript) take
    like one trained here.

    Parameters
    ----------
    model_path : path
        TorchScript (``torch.jit.save``; ``.pt``, ``.ts``, ...) or ONNX (``.onnx``). Its inputs
        are the spec's, in the spec's order (TorchScript: positional arguments; ONNX: by name).
    spec : dict, path of a JSON file, or JSON text
        The artifact spec: ``input`` (e.g. ``{"kind": "weaver", ...}``), ``class_names``,
        ``signal_class``; optional ``name`` (default: ``out_dir``'s name), ``architecture``
        (default ``"external"``), ``output`` (``"logits"``, default, or ``"probabilities"`` for a
        network that ends in a softmax, as weaver's exported models do).
    out_dir : path
        The artifact directory written (``model.ts`` and/or ``model.onnx``, ``spec.json``).
    onnx_path : path, optional
        The same network as ONNX besides a TorchScript ``model_path`` (``backend='onnx'``); the two
        must agree within ``atol`` on a random batch.
    overwrite : bool
        Replace an existing ``out_dir``.

    Returns
    -------
    Path
        The artifact directory.

    Raises
    ------
    ArtifactError
        A missing or unreadable model, a spec that is invalid (names the key), inputs the network
        does not take (names the spec input / model input), outputs that are not one value per
        class, or TorchScript and ONNX that disagree. Nothing is written then.
    """
    import hashlib
    import shutil
    import tempfile

    model_path, out = Path(model_path), Path(out_dir)
    if not model_path.is_file():
        raise ArtifactError(f"{model_path}: model file does not exist")
    is_onnx = model_path.suffix.lower() == ".onnx"
    if not is_onnx and model_path.suffix.lower() not in _TS_SUFFIXES:
        raise ArtifactError(f"{model_path}: expected a TorchScript file ({', '.join(_TS_SUFFIXES)}) or an ONNX "
                            "file (.onnx)")
    if onnx_path is not None and (is_onnx or Path(onnx_path).suffix.lower() != ".onnx"):
        raise ArtifactError("onnx_path is the ONNX copy of a TorchScript model_path (a .onnx file)")
    ts_src = None if is_onnx else model_path
    onnx_src = model_path if is_onnx else (Path(onnx_path) if onnx_path is not None else None)
    if onnx_src is not None and not onnx_src.is_file():
        raise ArtifactError(f"{onnx_src}: model file does not exist")
    if ts_src is not None:
        _check_zip(ts_src)  # a torch.save pickle is refused here, unread
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out}: exists (pass overwrite=True / --force to replace it)")

    spec = _read_spec(spec)
    spec.setdefault("name", out.resolve().name)
    spec.setdefault("architecture", "external")
    where = "spec passed to wrap_model"
    spec = validate_spec(spec, where=where)
    sources = {k: str(p.resolve()) for k, p in (("torchscript", ts_src), ("onnx", onnx_src)) if p is not None}
    spec["training"] = {**spec.get("training", {}), "external": True, "wrapped_from": sources,
                        "sha256": {k: hashlib.sha256(Path(p).read_bytes()).hexdigest() for k, p in sources.items()}}
    files: dict[str, str] = {}
    if ts_src is not None:
        files.update(torchscript=MODEL_TS, torchscript_method="external")
    if onnx_src is not None:
        names, output = _onnx_info(onnx_src)
        from .model_inputs import input_layout

        layout = input_layout(spec["input"])
        want = [n for n, _ in layout] if layout else None
        if want is not None:
            missing = [n for n in want if n not in names]
            extra = [n for n in names if n not in want]
            if missing or extra:
                raise ArtifactError(
                    f"{onnx_src}: the ONNX model's inputs are {names}, the spec's input.inputs are {want}"
                    + (f"; spec input(s) {missing} are not inputs of the model" if missing else "")
                    + (f"; model input(s) {extra} have no entry in input.inputs" if extra else ""))
        elif len(names) != 1:
            raise ArtifactError(f"{onnx_src}: the ONNX model takes {len(names)} inputs {names}; a spec with one "
                                "input array takes one (use input kind 'weaver' for named inputs)")
        files.update(onnx=MODEL_ONNX, onnx_output=output)
    spec["files"] = files

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if ts_src is not None:
            shutil.copyfile(ts_src, tmp / MODEL_TS)
        if onnx_src is not None:
            shutil.copyfile(onnx_src, tmp / MODEL_ONNX)
        (tmp / SPEC_JSON).write_text(json.dumps(spec, indent=2) + "\n")
        shown = {str(tmp / SPEC_JSON): "the spec", str(tmp / MODEL_TS): str(ts_src),
                 str(tmp / MODEL_ONNX): str(onnx_src)}
        _check_wrapped(tmp, spec, atol, shown)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_wrapped(directory: Path, spec: dict, atol: float, shown: dict[str, str]) -> None:
    """Load each model of a freshly written artifact as a tagger does (its dummy forward of the
    spec's shapes), and compare TorchScript with ONNX on a random batch."""
    import numpy as np

    from .inference import Tagger

    art = Artifact(path=directory, spec=spec)
    backends = [b for b, present in (("torch", art.has_torchscript), ("onnx", art.onnx_path is not None)) if present]
    outs = {}
    x = np.random.default_rng(0).normal(size=(4, *spec["input"]["shape"])).astype(np.float32)
    for b in backends:
        t = Tagger(art, device="cpu", backend=b, num_threads=None)
        try:
            t._model()  # the dummy forward: ArtifactError naming the spec / model inputs
        except ArtifactError as err:  # named after the files given (nothing is written)
            msg = str(err)
            for tmp_name, name in shown.items():
                msg = msg.replace(tmp_name, name)
            raise ArtifactError(msg) from None
        outs[b] = t.outputs(x)
    if len(outs) == 2:
        diff = _max_abs_diff(outs["torch"], outs["onnx"])
        if not diff <= atol:
            raise ArtifactError(f"the TorchScript and ONNX models disagree by {diff:.3g} > {atol} on the same random "
                                "inputs: are they the same network?")
