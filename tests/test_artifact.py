"""Artifact format: round trip, exported models equal eager, clear errors naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from coffea_jetimg.artifact import ArtifactError, load_artifact, save_artifact, validate_spec  # noqa: E402


@pytest.fixture
def artifact_dir(tmp_path, tiny_cnn, tiny_spec):
    torch.manual_seed(0)
    model = tiny_cnn().eval()
    return save_artifact(tmp_path / "art", model, tiny_spec(), torch.randn(4, 1, 8, 8)), model


def test_round_trip_torchscript_and_onnx_equal_eager(artifact_dir):
    path, model = artifact_dir
    assert (path / "model.ts").is_file() and (path / "model.onnx").is_file() and (path / "spec.json").is_file()
    spec = json.loads((path / "spec.json").read_text())
    assert spec["format"] == "coffea-jetimg-artifact" and spec["version"] == 1
    assert spec["input"]["shape"] == [1, 8, 8] and spec["output"] == "logits"
    art = load_artifact(path)
    assert art.name == "tiny" and art.signal_index == 1 and art.input_spec["kind"] == "image"
    x = torch.randn(7, 1, 8, 8)  # a batch size not seen at export: the ONNX batch axis is dynamic
    with torch.no_grad():
        eager = model(x).numpy()
        ts = art.module(x).numpy()
    np.testing.assert_allclose(ts, eager, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, eager, atol=1e-5)


def test_trace_fallback_for_unscriptable_model(tmp_path, tiny_spec):
    class Unscriptable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            kw = {"start_dim": 1}  # **kwargs unpacking is not TorchScript
            return self.fc(x.flatten(**kw))

    spec = tiny_spec(kind="features", shape=(3,))
    path = save_artifact(tmp_path / "f", Unscriptable().eval(), spec, torch.randn(5, 3))
    saved = json.loads((path / "spec.json").read_text())
    assert saved["files"]["torchscript_method"] == "trace"
    assert load_artifact(path).module(torch.zeros(2, 3)).shape == (2, 2)


def test_save_rejects_wrong_output_shape(tmp_path, tiny_cnn, tiny_spec):
    with pytest.raises(ArtifactError, match="classes"):
        save_artifact(tmp_path / "x", tiny_cnn(n_classes=3).eval(), tiny_spec(), torch.randn(2, 1, 8, 8))


def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match=str(tmp_path / "nope")):
        load_artifact(tmp_path / "nope")


def test_missing_spec_and_model(artifact_dir):
    path, _ = artifact_dir
    (path / "model.ts").unlink()
    with pytest.raises(ArtifactError, match="model.ts"):
        load_artifact(path)
    (path / "spec.json").unlink()
    with pytest.raises(ArtifactError, match="spec.json"):
        load_artifact(path)


def test_corrupt_json(artifact_dir):
    path, _ = artifact_dir
    (path / "spec.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"spec\.json.*corrupt JSON"):
        load_artifact(path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "something-else"}, "format"),
        ({"version": 99}, "version"),
        ({"signal_class": "w"}, "signal_class"),
        ({"input": {"kind": "hologram"}}, "kind"),
        ({"input": {"kind": "lorentz"}}, "n_constituents"),
    ],
)
def test_bad_spec_values(artifact_dir, change, message):
    path, _ = artifact_dir
    spec = json.loads((path / "spec.json").read_text())
    spec.update(change)
    (path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match=message) as exc:
        load_artifact(path)
    assert "spec.json" in str(exc.value)


def test_missing_keys(artifact_dir):
    path, _ = artifact_dir
    spec = json.loads((path / "spec.json").read_text())
    del spec["class_names"], spec["architecture"]
    (path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="missing key.*architecture.*class_names"):
        load_artifact(path)


def test_corrupt_model_file(artifact_dir):
    path, _ = artifact_dir
    data = (path / "model.ts").read_bytes()
    (path / "model.ts").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"model\.ts.*corrupt"):
        load_artifact(path)


def test_pickled_model_is_refused(artifact_dir):
    """A torch.save'd (pickled) module is not TorchScript; refused without unpickling."""
    path, model = artifact_dir
    torch.save(model.state_dict(), path / "model.ts")
    with pytest.raises(ArtifactError, match="model.ts"):
        load_artifact(path).module


def test_validate_spec_fills_defaults(tiny_spec):
    spec = validate_spec(tiny_spec(kind="lorentz", shape=(4, 20)))
    assert spec["input"]["jets"] == "FatJet" and spec["input"]["image_spec"] is None
    assert spec["input"]["n_constituents"] == 20
