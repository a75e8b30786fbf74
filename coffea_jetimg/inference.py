"""Apply a saved tagger: numpy in, class probabilities out; loaded once per worker process.

:class:`Tagger` wraps an artifact (see :mod:`coffea_jetimg.artifact`). It pickles without the
network, so it can be shipped to Dask workers inside a processor; each process loads the
network on first use and keeps it in a module-level cache keyed by the artifact's *content*
(a hash of the model file and the spec), the device and the backend, so an artifact overwritten
in place is loaded again. When a network is loaded it runs once on dummy inputs of the spec's
shape, so a spec that disagrees with its network is refused there. Inputs are moved to the
device explicitly, evaluated in micro-batches under ``torch.inference_mode()`` (the batch is
halved on CUDA out-of-memory), and brought back with ``.cpu().numpy()``.

A network with several named inputs (``points``, ``features``, ``mask``: an artifact whose
``input`` lists ``inputs``, see :mod:`coffea_jetimg.model_inputs`) takes them packed in one array
(what the input plan builds) or as a dict ``{name: array}``; the tagger splits a micro-batch into
the named arrays for the network: TorchScript ``module(*arrays)`` in the spec's order, ONNX by
input name, Triton one named request input each. A network whose spec says ``"output":
"probabilities"`` (it ends in a softmax, as weaver's exports do) is not given another softmax.

With ``server="grpc://HOST:PORT"`` the tagger does not load the network: it sends the same
inputs in micro-batches to a Triton Inference Server (``coffea-jetimg serve``, or a facility's
server loading ``coffea-jetimg export-triton``'s repository) with ``tritonclient.grpc``.

This module imports only numpy and the standard library at import time (torch, onnxruntime and
tritonclient when used): the server (:mod:`coffea_jetimg.serving`) runs it in its own
environment to evaluate the served networks exactly as a worker would.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from .artifact import Artifact, ArtifactError, load_artifact
from .errors import DeviceError, ServerError
from .model_inputs import describe_layout, input_layout, pack_inputs, split_inputs

__all__ = ["Tagger", "softmax", "clear_cache", "default_device", "check_device", "run_batched",
           "artifact_fingerprint", "ServerError", "DeviceError"]

_CACHE: dict[tuple[str, str, str], object] = {}
_CACHE_LOCK = threading.Lock()
_LOAD_COUNT: dict[tuple[str, str, str], int] = {}  # how often each key was really loaded (tests)
_HASHES: dict[tuple, str] = {}  # file identity (path, device, inode, size, mtime) -> sha256 of its bytes
_SERVED: dict[tuple[str, str, str], "_ServedModel"] = {}  # (url, model, version) -> checked served model
_CLIENTS = threading.local()  # per thread: (url, pid) -> tritonclient.grpc.InferenceServerClient


def clear_cache() -> None:
    """Forget every loaded network and every checked server connection in this process."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _LOAD_COUNT.clear()
        _HASHES.clear()
        _SERVED.clear()
    _CLIENTS.__dict__.clear()


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, hashed again only when its identity (inode, size, mtime) changes."""
    st = os.stat(path)
    ident = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _HASHES.get(ident)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = _HASHES[ident] = h.hexdigest()
    return digest


def artifact_fingerprint(artifact: Artifact, backend: str = "torch") -> str:
    """Content hash of what a tagger evaluates: the model file of ``backend`` and the spec.

    Two artifacts with the same fingerprint give the same scores; an artifact overwritten in
    place (retrained into the same directory) gets a new one.

    Parameters
    ----------
    artifact : Artifact
    backend : {'torch', 'onnx'}
        Which model file is hashed (``model.ts`` or ``model.onnx``).

    Returns
    -------
    str
        Hex sha256.
    """
    model_file = artifact.onnx_path if backend == "onnx" else artifact.torchscript_path
    if model_file is None:
        raise ArtifactError(f"{artifact.path}: no {backend} model file")
    try:
        model_hash = _file_sha256(model_file)
    except OSError as err:
        raise ArtifactError(f"{model_file}: cannot be read ({err})") from err
    spec_hash = hashlib.sha256(json.dumps(artifact.spec, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(f"{model_hash}:{spec_hash}".encode()).hexdigest()


def default_device() -> str:
    """``'cuda'`` when torch sees a GPU, else ``'cpu'``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def check_device(device: str | None, backend: str = "torch", what: str | None = None,
                 instead: str = "device='cpu', or leave device out (CUDA when available)") -> str:
    """``device`` resolved (``None``/``'auto'``: :func:`default_device`), after checking that this
    machine has it.

    Parameters
    ----------
    device : str or None
        ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'auto'`` or None.
    backend : {'torch', 'onnx'}
        What will run there: torch must see the CUDA device; ONNX Runtime must have its CUDA provider.
    what : str, optional
        How the message names the setting (default ``device 'cuda'``; the CLI: ``--device cuda``).
    instead : str
        The advice the message ends with.

    Raises
    ------
    DeviceError
        ``device`` is not a device, or a CUDA device this machine does not have (no CUDA at all,
        an index past the GPUs torch sees, or ONNX Runtime without its CUDA provider).
    """
    if device is None or str(device).lower() == "auto":
        return default_device()
    what = what or f"device {device!r}"
    import torch

    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError) as err:
        raise DeviceError(f"{what}: not a device ({err}); use 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type != "cuda":
        return str(device)
    if backend == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:  # Tagger says what to install when it loads the model
            return str(device)
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError(f"{what}: ONNX Runtime (onnxruntime {ort.__version__}) has no CUDA execution "
                              f"provider on this machine (providers: {', '.join(ort.get_available_providers())}); "
                              f"use {instead}")
        return str(device)
    if not torch.cuda.is_available():
        raise DeviceError(f"{what}: torch sees no CUDA device on this machine (torch {torch.__version__}); "
                          f"use {instead}")
    n = torch.cuda.device_count()
    if dev.index is not None and dev.index >= n:
        raise DeviceError(f"{what}: torch sees {n} CUDA device(s) on this machine (cuda:0..cuda:{n - 1}); "
                          f"use one of those, or {instead}")
    return str(device)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(n, n_classes)`` logits, computed stably in float64 → float32."""
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        return z.astype(np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _is_cuda_oom(err: BaseException) -> bool:
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(err, oom):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class Tagger:
    """A trained tagger ready to score jets.

    Parameters
    ----------
    artifact : str, Path or Artifact
        Artifact directory (``model.ts``, ``model.onnx``, ``spec.json``).
    device : str, optional
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; default: CUDA when available, else CPU. A device
        the machine does not have is a :class:`~coffea_jetimg.errors.DeviceError` on first use
        (:func:`check_device`; first use, since a client without GPUs may make the tagger for workers with them).
    backend : {'torch', 'onnx'}
        TorchScript through torch, or ONNX Runtime (``model.onnx``; CUDA provider on GPU). An
        artifact holding only ``model.onnx`` (a wrapped ONNX model) is always run by ONNX Runtime.
    batch_size : int
        Micro-batch size inside one call (halved automatically on CUDA out-of-memory).
    num_threads : int or None
        torch intra-op threads set in each process before the first evaluation (default 1, so
        Dask workers do not oversubscribe cores); ``None`` leaves torch's setting alone.
    server : str or None
        ``grpc://HOST:PORT`` of a Triton Inference Server serving this artifact (``coffea-jetimg
        serve``): the inputs are sent there in micro-batches of ``batch_size`` (at most the
        server's max batch) instead of evaluating the network here; ``device``/``backend`` are
        then unused. The server is checked when the tagger is made (unless ``check=False``) and
        again once per process before the first micro-batch: it must be live, have the model,
        and serve one FP32 input of the spec's shape and one output of ``len(class_names)``.
    model_name : str or None
        The model's name on the server (default: the artifact's ``name``).
    model_version : str
        Model version on the server (``""``: the server's latest).
    timeout : float
        Seconds one request may take before it counts as failed.
    retries : int
        Further attempts of a failed request (a server that is down, restarting or overloaded),
        with back-off ``backoff * 2**k`` seconds; then :class:`~coffea_jetimg.errors.ServerError`.
    backoff : float
        First back-off in seconds.
    check : bool
        Check the server in the constructor (so a wrong URL or model fails before any chunk).

    Notes
    -----
    The network (or the server connection) is not part of the pickled state; it is loaded (or
    opened and checked) on first use in each process and cached there (:func:`clear_cache`).
    """

    def __init__(self, artifact, device: str | None = None, backend: str = "torch", batch_size: int = 512,
                 num_threads: int | None = 1, server: str | None = None, model_name: str | None = None,
                 model_version: str = "", timeout: float = 60.0, retries: int = 4, backoff: float = 0.5,
                 check: bool = True):
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")
        if int(retries) < 0 or float(backoff) < 0 or float(timeout) <= 0:
            raise ValueError("retries must be >= 0, backoff >= 0 and timeout > 0 "
                             f"(got {retries}, {backoff}, {timeout})")
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        if backend == "torch" and not self.artifact.has_torchscript and self.artifact.onnx_path is not None:
            backend = "onnx"  # a wrapped ONNX model: ONNX Runtime is the only way to run it
        if backend == "onnx" and self.artifact.onnx_path is None and server is None:
            raise ArtifactError(f"{self.artifact.path / 'model.onnx'}: missing, cannot use backend='onnx'")
        self._device = device
        self.backend = backend
        self.batch_size = int(batch_size)
        self.num_threads = num_threads
        self.last_batch_size = self.batch_size  # after OOM halving, the size that worked
        self.server = _grpc_url(server) if server is not None else None
        self.model_name = model_name or self.artifact.name
        self.model_version = str(model_version)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        if self.server is not None and check:
            self.check_server()

    # -- description ------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.artifact.path

    @property
    def spec(self) -> dict:
        return self.artifact.spec

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def input_spec(self) -> dict:
        return self.artifact.input_spec

    @property
    def class_names(self) -> list[str]:
        return self.artifact.class_names

    @property
    def signal_class(self) -> str:
        return self.artifact.signal_class

    @property
    def signal_index(self) -> int:
        return self.artifact.signal_index

    @property
    def device(self) -> str:
        return self._device or default_device()

    @property
    def layout(self) -> list[tuple[str, tuple[int, ...]]] | None:
        """The network's named inputs ``[(name, per-item shape), ...]`` in the order it takes them;
        ``None`` when it takes one array (see :mod:`coffea_jetimg.model_inputs`)."""
        return input_layout(self.input_spec)

    @property
    def output_kind(self) -> str:
        """What the network returns: ``'logits'`` or ``'probabilities'`` (the spec's ``output``)."""
        return str(self.spec.get("output", "logits"))

    def __repr__(self):
        if self.server is not None:
            return (f"Tagger({str(self.path)!r}, server={self.server!r}, model_name={self.model_name!r}, "
                    f"batch_size={self.batch_size})")
        return (f"Tagger({str(self.path)!r}, device={self._device!r}, backend={self.backend!r}, "
                f"batch_size={self.batch_size})")

    # -- pickling: never the network --------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["artifact"] = Artifact(path=self.artifact.path, spec=self.artifact.spec)
        return state

    def __setstate__(self, state):
        for name, value in (("server", None), ("model_name", state["artifact"].spec["name"]), ("model_version", ""),
                            ("timeout", 60.0), ("retries", 4), ("backoff", 0.5)):
            state.setdefault(name, value)  # pickles of taggers made before these attributes
        self.__dict__.update(state)

    # -- loading ----------------------------------------------------------------------------
    def _key(self) -> tuple[str, str, str]:
        """Cache key: the artifact's content (model file + spec), not its path, and where it runs."""
        return (artifact_fingerprint(self.artifact, self.backend), self.device, self.backend)

    def _model(self):
        key = self._key()
        model = _CACHE.get(key)
        if model is not None:
            return model
        with _CACHE_LOCK:
            model = _CACHE.get(key)
            if model is None:
                model = self._load()
                _CACHE[key] = model
                _LOAD_COUNT[key] = _LOAD_COUNT.get(key, 0) + 1
        return model

    def _load(self):
        if self._device is not None:  # on the machine that runs it (a client without GPUs may make it)
            check_device(self._device, self.backend)
        if self.backend == "onnx":
            try:
                import onnxruntime as ort
            except ImportError as err:
                raise ImportError("backend='onnx' needs onnxruntime: pip install 'coffea-jetimg[onnx]'") from err
            opts = ort.SessionOptions()
            if self.num_threads:
                opts.intra_op_num_threads = int(self.num_threads)
                opts.inter_op_num_threads = 1
            providers = ["CPUExecutionProvider"]
            if self.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            try:
                model = ort.InferenceSession(str(self.artifact.onnx_path), sess_options=opts, providers=providers)
            except Exception as err:
                raise ArtifactError(f"{self.artifact.onnx_path}: cannot be loaded by ONNX Runtime ({err})") from err
        else:
            self._set_threads()
            model = self.artifact.load_module(self.device)
        self._check_forward(model)
        return model

    def _check_forward(self, model) -> None:
        """Run the freshly loaded network once on zeros of the spec's shape: a spec that disagrees
        with its network (input shape, named inputs, number of classes) is an ArtifactError here,
        not a wrong histogram later."""
        shape = self.input_spec.get("shape")
        if shape is None:
            return
        model_file = self.artifact.onnx_path if self.backend == "onnx" else self.artifact.torchscript_path
        spec_file = self.path / "spec.json"
        layout = self.layout
        if layout is not None:
            _check_named_inputs(model, layout, self.backend, model_file, spec_file)
            declared = f"the inputs {spec_file} declares (input.inputs: {describe_layout(layout)})"
        else:
            declared = f"inputs of the shape {list(shape)} that {spec_file} declares (input.shape)"
        x = np.zeros((2, *shape), dtype=np.float32)
        try:
            out = self._forward(model, x)
        except Exception as err:
            raise ArtifactError(f"{model_file}: the network does not accept {declared}; a dummy batch failed: "
                                f"{_error_line(err)}") from err
        n_classes = len(self.class_names)
        if out.shape != (2, n_classes):
            raise ArtifactError(f"{model_file}: the network returns {list(out.shape[1:])} values per input, but "
                                f"{spec_file} declares {n_classes} classes {self.class_names}")

    def _forward(self, model, batch: np.ndarray) -> np.ndarray:
        """The network's raw outputs for one micro-batch (packed named inputs split here)."""
        layout = self.layout
        arrays = split_inputs(layout, batch) if layout is not None else [batch]
        if self.backend == "onnx":
            if layout is not None:
                feed = {name: a for (name, _), a in zip(layout, arrays)}
            else:
                feed = {model.get_inputs()[0].name: arrays[0]}
            output = (self.spec.get("files") or {}).get("onnx_output")
            return np.asarray(model.run([output] if output else None, feed)[0], dtype=np.float32)
        import torch

        device = torch.device(self.device)
        with torch.inference_mode():
            return model(*(torch.from_numpy(a).to(device) for a in arrays)).float().cpu().numpy()

    def _set_threads(self):
        if self.num_threads is None:
            return
        import torch

        if torch.get_num_threads() != int(self.num_threads):
            torch.set_num_threads(int(self.num_threads))

    @property
    def loaded(self) -> bool:
        """Whether this process holds the network for this tagger (served: has checked the server)."""
        if self.server is not None:
            return (self.server, self.model_name, self.model_version) in _SERVED
        return self._key() in _CACHE

    # -- evaluation -------------------------------------------------------------------------
    def _as_input(self, x) -> np.ndarray:
        """One float32 array of ``x``: packed from a dict of named inputs, else as given."""
        if isinstance(x, dict):
            layout = self.layout
            if layout is None:
                raise ValueError(f"{self.name}: the model takes one input array, got named inputs {list(x)}")
            return pack_inputs(layout, x, where=self.name)
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32))

    def outputs(self, x) -> np.ndarray:
        """The network's raw outputs ``(n, n_classes)`` float32 (logits, or probabilities when the
        spec's ``output`` says so) for inputs ``x`` of shape ``(n, *input.shape)``, or a dict of
        the named inputs ``{name: (n, *shape)}`` of a multi-input network."""
        x = self._as_input(x)
        n_classes = len(self.class_names)
        shape = self.input_spec.get("shape")
        if shape is not None and x.ndim >= 1 and tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"{self.name}: inputs have shape {x.shape[1:]}, the model expects {tuple(shape)}")
        if len(x) == 0:
            return np.zeros((0, n_classes), dtype=np.float32)
        if self.server is not None:
            return self._served_outputs(x)
        model = self._model()
        if self.backend == "onnx":
            outs = [self._forward(model, x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
            return np.concatenate(outs).astype(np.float32, copy=False)
        return self._torch_logits(model, x)

    def logits(self, x) -> np.ndarray:
        """Logits ``(n, n_classes)`` float32 (the log of the probabilities of a network that
        returns probabilities); ``x`` as in :meth:`outputs`."""
        y = self.outputs(x)
        if self.output_kind == "probabilities":
            return np.log(np.maximum(y, np.finfo(np.float32).tiny)).astype(np.float32)
        return y

    def _torch_logits(self, model, x: np.ndarray) -> np.ndarray:
        import torch

        self._set_threads()
        device = torch.device(self.device)

        def run(batch: np.ndarray) -> np.ndarray:
            return self._forward(model, batch)

        def on_oom(err) -> bool:
            if device.type == "cuda" and _is_cuda_oom(err):
                torch.cuda.empty_cache()
                return True
            return False

        with torch.inference_mode():
            out, self.last_batch_size = run_batched(run, x, len(self.class_names), self.batch_size, on_oom)
        return out

    def predict(self, x) -> np.ndarray:
        """Class probabilities (softmax of the logits, or the network's own probabilities),
        float32 ``(n, n_classes)``; ``x`` as in :meth:`outputs`."""
        y = self.outputs(x)
        return y.astype(np.float32, copy=False) if self.output_kind == "probabilities" else softmax(y)

    __call__ = predict

    def score(self, x) -> np.ndarray:
        """Probability of the signal class, float32 ``(n,)``."""
        return self.predict(x)[:, self.signal_index]

    def inputs_for(self, events_or_constituents, jets: str | None = None, **kwargs) -> np.ndarray:
        """The network inputs for eager events or constituents (:func:`coffea_jetimg.inputs.build_inputs`);
        packed for a multi-input network (:meth:`named_inputs` splits them)."""
        from .inputs import build_inputs

        return build_inputs(self.input_spec, events_or_constituents, jets, **kwargs)

    def named_inputs(self, x) -> dict[str, np.ndarray]:
        """The named arrays ``{name: (n, *shape)}`` of packed inputs ``x`` of a multi-input network."""
        layout = self.layout
        if layout is None:
            raise ValueError(f"{self.name}: the model takes one input array, not named inputs")
        return {name: a for (name, _), a in zip(layout, split_inputs(layout, self._as_input(x)))}

    def scores_for(self, events_or_constituents, jets: str | None = None, **kwargs) -> np.ndarray:
        """Signal-class probability per jet (per event for event-image models), ``(n,)``."""
        return self.score(self.inputs_for(events_or_constituents, jets, **kwargs))

    def predict_for(self, events_or_constituents, jets: str | None = None, **kwargs) -> np.ndarray:
        """Class probabilities per jet (per event for event-image models), ``(n, n_classes)``."""
        return self.predict(self.inputs_for(events_or_constituents, jets, **kwargs))

    # -- served by a Triton Inference Server ----------------------------------------------------
    # tritonclient is used directly rather than coffea.ml_tools.triton_wrapper: the processor
    # already builds numpy inputs per chunk (eagerly, on the worker) and only needs "array in,
    # logits out", while the wrapper adds an awkward/dask layer that (in coffea 2025.x) sends a
    # real request while the dask graph is being built and concatenates its batches in an
    # O(n^2) loop; it also neither checks the served shapes against our spec nor retries.
    def check_server(self) -> "_ServedModel":
        """Check (once per process) that the server is live and serves this artifact's model.

        Returns
        -------
        _ServedModel
            The served model's input/output names and max batch size.

        Raises
        ------
        ServerError
            Unreachable after the retries; no such model (the message lists the models the
            server has); inputs/outputs that are not one FP32 input of the spec's shape and
            one output of ``len(class_names)`` values.
        """
        key = (str(self.server), self.model_name, self.model_version)
        served = _SERVED.get(key)
        if served is None:
            served = _SERVED[key] = self._check_server()
        return served

    def _client(self):
        clients = _CLIENTS.__dict__
        key = (self.server, os.getpid())  # a forked worker (FuturesExecutor) opens its own channel
        client = clients.get(key)
        if client is None:
            try:
                import tritonclient.grpc as grpcclient
            except ImportError as err:  # pragma: no cover - a dependency of the package
                raise ImportError("server= needs tritonclient: pip install 'tritonclient[grpc]'") from err
            client = clients[key] = grpcclient.InferenceServerClient(self.server[len("grpc://"):])
        return client

    def _retrying(self, what: str, fn):
        """``fn()`` with ``self.retries`` further attempts (back-off ``backoff * 2**k``) when the
        server is unavailable; a ServerError naming ``what`` after the last one."""
        from tritonclient.utils import InferenceServerException

        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return fn()
            except InferenceServerException as err:
                last = err
                if not _retryable(err):
                    break
        # not chained to `last`: a grpc error holds locks, and Dask (tblib) pickles causes along
        raise ServerError(str(self.server), self.model_name,
                          f"{what} failed after {attempt + 1} attempt(s): {_describe(last)}")

    def _check_server(self) -> "_ServedModel":
        client = self._client()
        t = min(self.timeout, 10.0)  # small answers: an unreachable host is not waited on a full timeout each try
        self._retrying("health check (is the server running? `coffea-jetimg serve ARTIFACT` starts one)",
                       lambda: client.is_server_live(client_timeout=t) or _raise_unavailable("not live"))
        ready = self._retrying("model readiness check",
                               lambda: client.is_model_ready(self.model_name, self.model_version, client_timeout=t))
        if not ready:
            raise ServerError(str(self.server), self.model_name,
                              f"the server has no model {self.model_name!r} ready; it serves: "
                              f"{', '.join(_served_models(client, t)) or 'none visible'}")
        meta = self._retrying("model metadata", lambda: client.get_model_metadata(
            self.model_name, self.model_version, as_json=True, client_timeout=t))
        config = self._retrying("model config", lambda: client.get_model_config(
            self.model_name, self.model_version, as_json=True, client_timeout=t))["config"]
        return _ServedModel.from_server(self, meta, config)

    def _served_outputs(self, x: np.ndarray) -> np.ndarray:
        import tritonclient.grpc as grpcclient

        served = self.check_server()
        client = self._client()
        bs = min(self.batch_size, served.max_batch) if served.max_batch > 0 else self.batch_size
        n = len(x)
        n_batches = -(-n // bs)
        out = np.empty((n, len(self.class_names)), dtype=np.float32)
        requested = [grpcclient.InferRequestedOutput(served.output)]
        layout = self.layout
        for k, i in enumerate(range(0, n, bs)):
            batch = x[i:i + bs]
            inps = []
            for name, arr in zip(served.inputs, split_inputs(layout, batch) if layout is not None else [batch]):
                inp = grpcclient.InferInput(name, list(arr.shape), "FP32")
                inp.set_data_from_numpy(arr)
                inps.append(inp)
            what = f"scoring micro-batch {k + 1} of {n_batches} (inputs {i}-{i + len(batch) - 1} of {n})"
            res = self._retrying(what, lambda inps=inps: client.infer(
                self.model_name, inps, model_version=self.model_version, outputs=requested,
                client_timeout=self.timeout))
            y = res.as_numpy(served.output)
            if y is None or y.shape != (len(batch), out.shape[1]):
                raise ServerError(str(self.server), self.model_name,
                                  f"{what}: the server returned {None if y is None else y.shape}, expected "
                                  f"{(len(batch), out.shape[1])}")
            out[i:i + len(batch)] = y
        return out


def run_batched(fn, x: np.ndarray, n_out: int, batch_size: int, on_oom=lambda err: False):
    """Evaluate ``fn`` on micro-batches of ``x``; halve the batch when ``on_oom(err)`` says so.

    Parameters
    ----------
    fn : callable
        ``fn(x[i:j]) -> ndarray (j - i, n_out)``.
    x : ndarray, shape (n, ...)
    n_out : int
    batch_size : int
        Starting micro-batch size.
    on_oom : callable
        Called with an exception raised by ``fn``; returns True if it was an out-of-memory
        error worth retrying with half the batch (the memory is freed by the callee).

    Returns
    -------
    out : ndarray, float32, shape (n, n_out)
    batch_size : int
        The batch size that finally worked.
    """
    out = np.empty((len(x), n_out), dtype=np.float32)
    bs = int(batch_size)
    i = 0
    while i < len(x):
        stop = min(i + bs, len(x))
        try:
            out[i:stop] = fn(x[i:stop])
        except Exception as err:
            if bs > 1 and on_oom(err):
                bs = max(1, bs // 2)
                continue
            raise
        i = stop
    return out, bs


def _error_line(err: BaseException) -> str:
    """The telling line of an error: its first, or for the TorchScript interpreter's traceback
    ("The following operation failed ...") its last."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    return lines[-1] if "TorchScript interpreter" in lines[0] else lines[0]


def _check_named_inputs(model, layout, backend: str, model_file, spec_file) -> None:
    """Before the dummy batch: the network's inputs are the spec's named inputs (ONNX: the same
    names, FP32, the declared dims; TorchScript: as many positional arguments, every required one
    given). ArtifactError naming the spec input / model input that differ."""
    names = [name for name, _ in layout]
    if backend == "onnx":
        model_inputs = {i.name: i for i in model.get_inputs()}
        missing = [n for n in names if n not in model_inputs]
        extra = [n for n in model_inputs if n not in names]
        if missing or extra:
            raise ArtifactError(
                f"{model_file}: the ONNX model's inputs are {list(model_inputs)}, {spec_file} input.inputs "
                f"names {names}" + (f"; spec input(s) {missing} are not inputs of the model" if missing else "")
                + (f"; model input(s) {extra} are missing from input.inputs" if extra else ""))
        for name, shape in layout:
            i = model_inputs[name]
            if i.type != "tensor(float)":
                raise ArtifactError(f"{model_file}: model input {name!r} is {i.type}, the tagger sends float32")
            dims = list(i.shape)
            if dims and isinstance(dims[0], int) and dims[0] not in (-1, 0):
                raise ArtifactError(f"{model_file}: model input {name!r} has a fixed batch size {dims[0]}; export it "
                                    "with a dynamic batch axis (torch.onnx.export(..., dynamic_axes=...))")
            fixed = [(k, d) for k, d in enumerate(dims[1:]) if isinstance(d, int) and d > 0]
            if len(dims) != len(shape) + 1 or any(d != shape[k] for k, d in fixed):
                rows, length = shape
                raise ArtifactError(f"{model_file}: model input {name!r} takes {dims[1:]} per jet, but {spec_file} "
                                    f"input.inputs.{name} declares {list(shape)} ({rows} vars × length {length})")
        return
    try:
        args = list(model.forward.schema.arguments)[1:]  # without self
    except Exception:  # pragma: no cover - a module without a readable schema: the dummy batch decides
        return
    arg_names = [a.name for a in args]
    if len(layout) > len(args):
        raise ArtifactError(f"{model_file}: {spec_file} input.inputs names {len(names)} inputs {names}, the network's "
                            f"forward takes {len(args)} ({', '.join(arg_names)})")
    required = [a.name for a in args[len(layout):] if not a.has_default_value()]
    if required:
        raise ArtifactError(f"{model_file}: the network's forward({', '.join(arg_names)}) argument(s) {required} "
                            f"have no input in {spec_file} input.inputs {names} (list the inputs in the order "
                            "forward takes them)")


def _pid() -> int:  # for tests: which process evaluated
    return os.getpid()


def _grpc_url(server: str) -> str:
    """``grpc://host:port`` from ``grpc://host:port`` or ``host:port`` (other schemes refused)."""
    url = str(server).strip().rstrip("/")
    if "://" not in url:
        url = "grpc://" + url
    scheme, _, rest = url.partition("://")
    host, sep, port = rest.rpartition(":")
    if scheme != "grpc" or not sep or not host or not port.isdigit():
        raise ValueError("server must be 'grpc://HOST:PORT' (Triton's gRPC endpoint, default port 8001), "
                         f"got {server!r}")
    return url


def _retryable(err) -> bool:
    """Whether a tritonclient error may pass (server down, restarting, overloaded, timing out).
    NOT_FOUND is retried: a restarted server answers before it has loaded its models again (an
    unknown model is found out before the first batch, by the readiness check)."""
    status = str(err.status() or "")
    return not any(s in status for s in ("INVALID_ARGUMENT", "UNIMPLEMENTED", "PERMISSION_DENIED", "UNAUTHENTICATED"))


def _raise_unavailable(msg: str):
    from tritonclient.utils import InferenceServerException

    raise InferenceServerException(msg, status="StatusCode.UNAVAILABLE")


def _describe(err) -> str:
    if err is None:
        return "no answer"
    text = " ".join(str(err.message() if hasattr(err, "message") else err).split())
    status = err.status() if hasattr(err, "status") else None
    return f"{text} [{status}]" if status else text


def _served_models(client, timeout: float) -> list[str]:
    """Names of the models a server has: its repository index, else (pytriton restricts that
    endpoint) the names in its inference statistics."""
    from tritonclient.utils import InferenceServerException

    try:
        index = client.get_model_repository_index(as_json=True, client_timeout=timeout).get("models", [])
        return sorted({m["name"] for m in index})
    except InferenceServerException:
        pass
    try:
        stats = client.get_inference_statistics("", as_json=True, client_timeout=timeout).get("model_stats", [])
        return sorted({m["name"] for m in stats})
    except InferenceServerException:
        return []


class _ServedModel:
    """A model as a server serves it, checked against an artifact's spec: its input names (in the
    order of the spec's named inputs), output name and max batch size."""

    def __init__(self, inputs: list[str], output: str, max_batch: int):
        self.inputs, self.output, self.max_batch = list(inputs), output, int(max_batch)
        self.input = self.inputs[0]

    @classmethod
    def from_server(cls, tagger: Tagger, meta: dict, config: dict) -> "_ServedModel":
        def fail(reason: str):
            raise ServerError(str(tagger.server), tagger.model_name, f"{reason}; refused before the first batch "
                              f"(artifact {tagger.path})")

        inputs, outputs = meta.get("inputs", []), meta.get("outputs", [])
        layout = tagger.layout
        n_in = 1 if layout is None else len(layout)
        if len(inputs) != n_in or len(outputs) != 1:
            want = "a tagger has one of each" if layout is None else \
                f"the artifact's network takes {n_in} named inputs ({describe_layout(layout)}) and gives one output"
            fail(f"serves {len(inputs)} input(s) and {len(outputs)} output(s) "
                 f"({[t['name'] for t in inputs]} -> {[t['name'] for t in outputs]}); {want}")
        max_batch = int(config.get("max_batch_size", 0) or 0)

        def dims(t):  # without the batch axis Triton adds when the model batches
            d = [int(v) for v in t.get("shape", [])]
            return d[1:] if max_batch > 0 else d[1:] if d and d[0] == -1 else d

        (o,) = outputs
        if layout is None:
            ordered = [(inputs[0], list(tagger.input_spec.get("shape") or dims(inputs[0])), "input.shape")]
        else:
            by_name = {t["name"]: t for t in inputs}
            if all(name in by_name for name, _ in layout):  # pytriton, or onnxruntime: the spec's names
                served = [by_name[name] for name, _ in layout]
            else:  # libtorch's <name>__<index> convention: by index
                index = {}
                for t in inputs:
                    head, sep, k = t["name"].rpartition("__")
                    if sep and k.isdigit():
                        index[int(k)] = t
                if sorted(index) != list(range(n_in)):
                    fail(f"serves inputs {[t['name'] for t in inputs]}, the artifact's spec names "
                         f"{[name for name, _ in layout]} (neither the same names nor <name>__<index>)")
                served = [index[k] for k in range(n_in)]
            ordered = [(t, list(shape), f"input.inputs.{name}") for t, (name, shape) in zip(served, layout)]
        want_out = [len(tagger.class_names)]
        for i, _, _ in ordered:
            if i.get("datatype") != "FP32" or o.get("datatype") != "FP32":
                fail(f"serves {i.get('datatype')} -> {o.get('datatype')}, expected FP32 -> FP32")
        for i, want_in, key in ordered:
            if dims(i) != want_in:
                fail(f"input {i['name']!r} has shape {dims(i)} per item, the artifact's spec has {key} {want_in}")
        if dims(o) != want_out:
            fail(f"output {o['name']!r} has shape {dims(o)} per item, the artifact has {want_out[0]} classes "
                 f"{tagger.class_names}")
        return cls([i["name"] for i, _, _ in ordered], o["name"], max_batch)
