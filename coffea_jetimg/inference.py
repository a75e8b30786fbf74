"""Apply a saved tagger: numpy in, class probabilities out; loaded once per worker process.

:class:`Tagger` wraps an artifact (see :mod:`coffea_jetimg.artifact`). It pickles without the
network, so it can be shipped to Dask workers inside a processor; each process loads the
network on first use and keeps it in a module-level cache keyed by
``(artifact path, device, backend)``. Inputs are moved to the device explicitly, evaluated in
micro-batches under ``torch.inference_mode()`` (the batch is halved on CUDA out-of-memory), and
brought back with ``.cpu().numpy()``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from .artifact import Artifact, ArtifactError, load_artifact

__all__ = ["Tagger", "softmax", "clear_cache", "default_device", "run_batched"]

_CACHE: dict[tuple[str, str, str], object] = {}
_CACHE_LOCK = threading.Lock()
_LOAD_COUNT: dict[tuple[str, str, str], int] = {}  # how often each key was really loaded (tests)


def clear_cache() -> None:
    """Forget every loaded network in this process."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _LOAD_COUNT.clear()


def default_device() -> str:
    """``'cuda'`` when torch sees a GPU, else ``'cpu'``."""
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


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
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; default: CUDA when available, else CPU.
    backend : {'torch', 'onnx'}
        TorchScript through torch, or ONNX Runtime (``model.onnx``; CUDA provider on GPU).
    batch_size : int
        Micro-batch size inside one call (halved automatically on CUDA out-of-memory).
    num_threads : int or None
        torch intra-op threads set in each process before the first evaluation (default 1, so
        Dask workers do not oversubscribe cores); ``None`` leaves torch's setting alone.

    Notes
    -----
    The network is not part of the pickled state; it is loaded on first use in each process
    and cached there (:func:`clear_cache` to drop it).
    """

    def __init__(self, artifact, device: str | None = None, backend: str = "torch", batch_size: int = 512,
                 num_threads: int | None = 1):
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        if backend == "onnx" and self.artifact.onnx_path is None:
            raise ArtifactError(f"{self.artifact.path / 'model.onnx'}: missing, cannot use backend='onnx'")
        self._device = device
        self.backend = backend
        self.batch_size = int(batch_size)
        self.num_threads = num_threads
        self.last_batch_size = self.batch_size  # after OOM halving, the size that worked

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

    def __repr__(self):
        return f"Tagger({str(self.path)!r}, device={self._device!r}, backend={self.backend!r}, batch_size={self.batch_size})"

    # -- pickling: never the network --------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["artifact"] = Artifact(path=self.artifact.path, spec=self.artifact.spec)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    # -- loading ----------------------------------------------------------------------------
    def _key(self) -> tuple[str, str, str]:
        return (str(self.path), self.device, self.backend)

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
                return ort.InferenceSession(str(self.artifact.onnx_path), sess_options=opts, providers=providers)
            except Exception as err:
                raise ArtifactError(f"{self.artifact.onnx_path}: cannot be loaded by ONNX Runtime ({err})") from err
        self._set_threads()
        return self.artifact.load_module(self.device)

    def _set_threads(self):
        if self.num_threads is None:
            return
        import torch

        if torch.get_num_threads() != int(self.num_threads):
            torch.set_num_threads(int(self.num_threads))

    @property
    def loaded(self) -> bool:
        """Whether this process holds the network for this tagger."""
        return self._key() in _CACHE

    # -- evaluation -------------------------------------------------------------------------
    def logits(self, x) -> np.ndarray:
        """Logits ``(n, n_classes)`` float32 for inputs ``x`` of shape ``(n, *input.shape)``."""
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        n_classes = len(self.class_names)
        shape = self.input_spec.get("shape")
        if shape is not None and x.ndim >= 1 and tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"{self.name}: inputs have shape {x.shape[1:]}, the model expects {tuple(shape)}")
        if len(x) == 0:
            return np.zeros((0, n_classes), dtype=np.float32)
        model = self._model()
        if self.backend == "onnx":
            name = model.get_inputs()[0].name
            outs = [model.run(None, {name: x[i:i + self.batch_size]})[0] for i in range(0, len(x), self.batch_size)]
            return np.concatenate(outs).astype(np.float32, copy=False)
        return self._torch_logits(model, x)

    def _torch_logits(self, model, x: np.ndarray) -> np.ndarray:
        import torch

        self._set_threads()
        device = torch.device(self.device)

        def run(batch: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(batch).to(device)
            return model(t).float().cpu().numpy()

        def on_oom(err) -> bool:
            if device.type == "cuda" and _is_cuda_oom(err):
                torch.cuda.empty_cache()
                return True
            return False

        with torch.inference_mode():
            out, self.last_batch_size = run_batched(run, x, len(self.class_names), self.batch_size, on_oom)
        return out

    def predict(self, x) -> np.ndarray:
        """Class probabilities (softmax of the logits), float32 ``(n, n_classes)``."""
        return softmax(self.logits(x))

    __call__ = predict

    def score(self, x) -> np.ndarray:
        """Probability of the signal class, float32 ``(n,)``."""
        return self.predict(x)[:, self.signal_index]

    def inputs_for(self, events_or_constituents, jets: str | None = None, **kwargs) -> np.ndarray:
        """The network inputs for eager events or constituents (:func:`coffea_jetimg.inputs.build_inputs`)."""
        from .inputs import build_inputs

        return build_inputs(self.input_spec, events_or_constituents, jets, **kwargs)

    def scores_for(self, events_or_constituents, jets: str | None = None, **kwargs) -> np.ndarray:
        """Signal-class probability per jet (per event for event-image models), ``(n,)``."""
        return self.score(self.inputs_for(events_or_constituents, jets, **kwargs))

    def predict_for(self, events_or_constituents, jets: str | None = None, **kwargs) -> np.ndarray:
        """Class probabilities per jet (per event for event-image models), ``(n, n_classes)``."""
        return self.predict(self.inputs_for(events_or_constituents, jets, **kwargs))


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


def _pid() -> int:  # for tests: which process evaluated
    return os.getpid()
