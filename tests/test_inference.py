"""Tagger: pickles without the network, loads once per process, batches, ONNX equals torch."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from coffea_jetimg import inference  # noqa: E402
from coffea_jetimg.artifact import save_artifact  # noqa: E402
from coffea_jetimg.inference import Tagger, run_batched, softmax  # noqa: E402


@pytest.fixture(scope="module")
def art(tmp_path_factory, tiny_cnn, tiny_spec):
    torch.manual_seed(1)
    model = tiny_cnn().eval()
    path = save_artifact(tmp_path_factory.mktemp("inf") / "tiny", model, tiny_spec(), torch.randn(3, 1, 8, 8))
    return path, model


@pytest.fixture(autouse=True)
def _fresh_cache():
    inference.clear_cache()
    yield
    inference.clear_cache()


def test_predict_matches_eager_softmax(art):
    path, model = art
    x = np.random.default_rng(0).normal(size=(20, 1, 8, 8)).astype(np.float32)
    tagger = Tagger(path, device="cpu")
    p = tagger.predict(x)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    assert p.shape == (20, 2) and p.dtype == np.float32
    np.testing.assert_allclose(p, ref, atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(tagger.score(x), ref[:, 1], atol=1e-6)


def test_pickles_without_model_and_loads_once(art):
    path, _ = art
    tagger = Tagger(path, device="cpu")
    x = np.ones((4, 1, 8, 8), np.float32)
    tagger.score(x)
    assert tagger.loaded and tagger.artifact._module is None  # the network lives in the cache
    blob = pickle.dumps(tagger)
    assert b"model.ts" in blob and len(blob) < 5000  # path and spec only; the weights are ~2 kB of floats
    key = tagger._key()
    assert inference._LOAD_COUNT[key] == 1
    clone = pickle.loads(blob)
    clone.score(x)
    Tagger(path, device="cpu").score(x)
    assert inference._LOAD_COUNT[key] == 1  # same process: loaded once
    inference.clear_cache()
    assert not clone.loaded
    np.testing.assert_allclose(clone.score(x), tagger.score(x))
    assert inference._LOAD_COUNT[key] == 1


def test_empty_input(art):
    tagger = Tagger(art[0], device="cpu")
    out = tagger.predict(np.zeros((0, 1, 8, 8), np.float32))
    assert out.shape == (0, 2) and out.dtype == np.float32
    assert tagger.score(np.zeros((0, 1, 8, 8), np.float32)).shape == (0,)
    assert not tagger.loaded  # nothing to do, nothing loaded


def test_wrong_input_shape(art):
    with pytest.raises(ValueError, match="expects"):
        Tagger(art[0], device="cpu").predict(np.zeros((2, 1, 9, 9), np.float32))


def test_micro_batches_equal_one_batch(art):
    x = np.random.default_rng(1).normal(size=(37, 1, 8, 8)).astype(np.float32)
    one = Tagger(art[0], device="cpu", batch_size=1000).predict(x)
    small = Tagger(art[0], device="cpu", batch_size=5).predict(x)
    np.testing.assert_allclose(small, one, atol=1e-6)


def test_batch_halving_on_oom():
    calls = []

    class FakeOOM(RuntimeError):
        pass

    def fn(batch):
        calls.append(len(batch))
        if len(batch) > 3:
            raise FakeOOM("CUDA out of memory. Tried to allocate")
        return np.stack([batch.sum(axis=1), -batch.sum(axis=1)], axis=1)

    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    out, bs = run_batched(fn, x, 2, 16, on_oom=lambda e: isinstance(e, FakeOOM))
    assert bs == 2  # 16 -> 8 -> 4 -> 2
    assert calls[:4] == [10, 8, 4, 2]
    np.testing.assert_allclose(out[:, 0], x.sum(axis=1))
    with pytest.raises(FakeOOM):  # not an OOM the caller retries: raised
        run_batched(fn, x, 2, 16)


def test_onnx_backend_equals_torch(art):
    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(2).normal(size=(11, 1, 8, 8)).astype(np.float32)
    t = Tagger(art[0], device="cpu").predict(x)
    o = Tagger(art[0], device="cpu", backend="onnx", batch_size=4).predict(x)
    np.testing.assert_allclose(o, t, atol=1e-5)


def test_thread_count_set(art):
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        Tagger(art[0], device="cpu", num_threads=1).score(np.zeros((1, 1, 8, 8), np.float32))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)


def test_softmax_stable():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p, [[1, 0], [0.5, 0.5]], atol=1e-7)


def test_overwritten_artifact_is_loaded_again(tmp_path, tiny_cnn, tiny_spec):
    """The per-process cache is keyed by the artifact's content, not its path: an artifact
    retrained into the same directory is loaded again (issue 19, item 11)."""
    x = np.random.default_rng(3).normal(size=(6, 1, 8, 8)).astype(np.float32)
    torch.manual_seed(11)
    first = tiny_cnn().eval()
    path = save_artifact(tmp_path / "same", first, tiny_spec(), torch.randn(3, 1, 8, 8))
    p1 = Tagger(path, device="cpu").predict(x)
    torch.manual_seed(12)
    second = tiny_cnn().eval()
    save_artifact(path, second, tiny_spec(), torch.randn(3, 1, 8, 8))  # same directory, new weights
    p2 = Tagger(path, device="cpu").predict(x)
    with torch.no_grad():
        ref2 = torch.softmax(second(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(p2, ref2, atol=1e-6)
    assert np.abs(p2 - p1).max() > 1e-3  # really another network
    # an untouched artifact is still loaded once, whichever Tagger asks
    Tagger(path, device="cpu").predict(x)
    assert inference._LOAD_COUNT[Tagger(path, device="cpu")._key()] == 1


def test_spec_that_disagrees_with_its_network_is_refused_at_load(art, tmp_path):
    """One dummy forward when the network is loaded: a spec declaring another input shape or
    another number of classes than the network has is an ArtifactError naming the files
    (issue 19, item 17), not scores of the wrong meaning."""
    import json
    import shutil

    from coffea_jetimg.artifact import ArtifactError

    x = np.zeros((3, 1, 8, 8), np.float32)
    three = tmp_path / "three_classes"
    shutil.copytree(art[0], three)
    spec = json.loads((three / "spec.json").read_text())
    spec["class_names"] = ["qcd", "w", "top"]
    (three / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match=r"model\.ts: the network returns \[2\] values per input, but .*spec\.json "
                                            r"declares 3 classes"):
        Tagger(three, device="cpu").predict(x)

    wide = tmp_path / "wide_images"
    shutil.copytree(art[0], wide)
    spec = json.loads((wide / "spec.json").read_text())
    spec["input"]["shape"] = [1, 9, 9]
    (wide / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match=r"model\.ts: the network does not accept inputs of the shape \[1, 9, 9\]"):
        Tagger(wide, device="cpu").predict(np.zeros((3, 1, 9, 9), np.float32))
    if art[0].joinpath("model.onnx").exists() and pytest.importorskip("onnxruntime"):
        with pytest.raises(ArtifactError, match=r"model\.onnx: .*3 classes"):
            Tagger(three, device="cpu", backend="onnx").predict(x)


def test_cuda_device_without_cuda_is_a_device_error(art):
    """Tagger(device='cuda') where torch sees no GPU: a DeviceError naming the device on first use
    (not torch's deserialisation traceback, nor "the file may be corrupt"); cpu still scores."""
    from coffea_jetimg.errors import DeviceError, JetImgError
    from coffea_jetimg.inference import check_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path, _ = art
    x = np.zeros((2, 1, 8, 8), np.float32)
    for device in ("cuda", "cuda:1"):
        tagger = Tagger(path, device=device)  # may be made on a client for GPU workers
        with pytest.raises(DeviceError, match=rf"device '{device}': torch sees no CUDA device") as err:
            tagger.predict(x)
        assert isinstance(err.value, JetImgError) and "may be corrupt" not in str(err.value)
        assert err.value.__cause__ is None  # raised before torch tried to load the module
    assert inference._LOAD_COUNT == {}
    with pytest.raises(DeviceError, match="not a device"):
        Tagger(path, device="gpu").predict(x)
    assert Tagger(path, device="cpu").predict(x).shape == (2, 2)
    assert check_device(None) == check_device("auto") == "cpu" and check_device("cpu") == "cpu"
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():  # no silent fallback to the CPU
        with pytest.raises(DeviceError, match="ONNX Runtime .* has no CUDA execution provider"):
            Tagger(path, device="cuda", backend="onnx").predict(x)
