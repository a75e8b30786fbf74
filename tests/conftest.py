"""Shared fixtures: the real CMS / Delphes files and the bad-input corpus.

The files live in ``../shared/data`` beside the checkout (see its SOURCES.md). Outside this
workplace the same CMS files come with coffea's source distribution (``tests/samples``);
``COFFEA_JETIMG_DATA`` may point at a folder holding ``cms/`` and ``bad/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import hist
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path | None:
    env = os.environ.get("COFFEA_JETIMG_DATA")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data", ROOT / "shared" / "data"]:
        if (cand / "cms").is_dir():
            return cand
    return None


DATA = _data_dir()


@pytest.fixture(autouse=True)
def _fresh_coffea_metadata_cache():
    """coffea's Runner caches file metadata process-wide, keyed by (dataset, file, tree) only, and
    hands a later run the earlier run's fileset metadata (coffea#662): tests that run one file under
    one dataset name with different metadata must not see each other's."""
    from coffea.processor import executor

    executor.DEFAULT_METADATA_CACHE.clear()
    yield


@pytest.fixture(scope="session")
def cms_dir() -> Path:
    if DATA is None:
        pytest.skip("real CMS files not found (set COFFEA_JETIMG_DATA to a folder with cms/ and bad/)")
    return DATA / "cms"


@pytest.fixture(scope="session")
def bad_dir() -> Path:
    if DATA is None or not (DATA / "bad").is_dir():
        pytest.skip("bad-input corpus not found")
    return DATA / "bad"


@pytest.fixture(scope="session")
def pfnano_file(cms_dir) -> str:
    return str(cms_dir / "pfnano.root")


@pytest.fixture(scope="session")
def delphes_file(cms_dir) -> str:
    return str(cms_dir / "delphes.root")


@pytest.fixture(scope="session")
def inline_file(cms_dir) -> str:
    """The 2017 UL PFNano file in the older inline layout (SOURCES.md)."""
    path = cms_dir / "pfnano_ul2017_inline.root"
    if not path.exists():
        pytest.skip("pfnano_ul2017_inline.root not found")
    return str(path)


# ---- generated samples (coffea_jetimg.generate): made once per test session -----------------

def _generated(tmp_path_factory, process: str, n_events: int, seed: int) -> str:
    from coffea_jetimg.generate import generate

    out = tmp_path_factory.mktemp(f"generated_{process}") / f"{process}.root"
    return generate(process, n_events, seed, str(out), pt_min=500.0, pt_max=700.0, workers=1, progress=False)


@pytest.fixture(scope="session")
def generated_top(tmp_path_factory) -> str:
    """300 hadronic ttbar events (jet pT 500–700 GeV), PFNano layout; path of the ROOT file."""
    return _generated(tmp_path_factory, "top", 300, 11)


@pytest.fixture(scope="session")
def generated_qcd(tmp_path_factory) -> str:
    """300 QCD dijet events (jet pT 500–700 GeV), PFNano layout; path of the ROOT file."""
    return _generated(tmp_path_factory, "qcd", 300, 12)


@pytest.fixture(scope="session")
def generated_w(tmp_path_factory) -> str:
    """100 WZ (W → qq', Z → νν) events (jet pT 500–700 GeV), PFNano layout; path of the ROOT file."""
    return _generated(tmp_path_factory, "w", 100, 13)


# ---- the Triton server's environment (served taggers: test_serving, test_byom) ------------------

@pytest.fixture(scope="session")
def triton_venv() -> Path:
    """The server venv (.venv-triton); made here (minutes, from PyPI) when absent; the test is
    skipped only if that fails."""
    from coffea_jetimg.serving.env import ServerEnvError, find_server_env, setup_server_env

    try:
        return find_server_env()
    except ServerEnvError:
        pass
    try:
        setup_server_env(ROOT / ".venv-triton")
        return find_server_env(ROOT / ".venv-triton")
    except ServerEnvError as err:
        pytest.skip(f"the Triton server environment (.venv-triton) cannot be created here: {err}")


# ---- tiny networks and specs for artifacts (shared by the artifact, inference, processor, serving
# and fault tests) ------------------------------------------------------------------------------

def _tiny_cnn_class():
    import torch

    class TinyCNN(torch.nn.Module):
        """Conv 3×3 (3 filters) → dense: logits (batch, n_classes) of (c, n, n) images."""

        def __init__(self, c=1, n=8, n_classes=2):
            super().__init__()
            self.conv = torch.nn.Conv2d(c, 3, 3, padding=1)
            self.fc = torch.nn.Linear(3 * n * n, n_classes)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    return TinyCNN


def _compare_outputs(a, b, path="out"):
    """Every hist.Hist equal (integer storages exactly, float sums to rounding), every other leaf equal."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        return sum(_compare_outputs(a[k], b[k], f"{path}/{k}") for k in a)
    if isinstance(a, hist.Hist):
        assert isinstance(b, hist.Hist), path
        assert a.axes == b.axes, path
        va, vb = a.view(flow=True), b.view(flow=True)
        fields = va.dtype.names or (None,)
        for f in fields:
            xa, xb = (va, vb) if f is None else (va[f], vb[f])
            if np.issubdtype(np.asarray(xa).dtype, np.integer):
                np.testing.assert_array_equal(xa, xb, err_msg=path)
            else:  # tree reduction adds the chunks in another order than the iterative loop
                np.testing.assert_allclose(xa, xb, rtol=1e-12, atol=1e-12, err_msg=f"{path}:{f}")
        return 1
    assert a == b, f"{path}: {a!r} != {b!r}"
    return 0


@pytest.fixture(scope="session")
def compare_outputs():
    """``compare_outputs(a, b)``: assert two outputs (nested dicts of hist.Hist and numbers) equal;
    returns the number of histograms compared."""
    return _compare_outputs


@pytest.fixture(scope="session")
def tiny_cnn():
    """The class of a tiny image CNN, ``TinyCNN(c=1, n=8, n_classes=2)``."""
    pytest.importorskip("torch")
    return _tiny_cnn_class()


def make_spec(name="tiny", kind="image", shape=(1, 8, 8), classes=("qcd", "top")) -> dict:
    """An artifact spec for a tiny model of input ``kind`` and ``shape``."""
    inp = {"kind": kind, "jets": "FatJet", "shape": list(shape)}
    if kind == "image":
        inp["image_spec"] = {"npix": shape[-1], "channels": ["pt"]}
    elif kind == "lorentz":
        inp["n_constituents"] = shape[-1]
    elif kind == "features":
        inp["features"] = ["pt", "msoftdrop", "tau32"][: shape[0]]
    return {"name": name, "architecture": "tinycnn", "input": inp, "class_names": list(classes),
            "signal_class": classes[-1], "training": {"epochs": 0}, "metrics": {}}


@pytest.fixture(scope="session")
def tiny_spec():
    """:func:`make_spec`: ``tiny_spec(name=, kind=, shape=, classes=)`` → an artifact spec dict."""
    return make_spec
