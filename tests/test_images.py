"""Jet images: physics invariants, conventions, odd inputs, eager == dask, real PFNano."""

from __future__ import annotations

import math
import warnings

import awkward as ak
import numpy as np
import pytest

from coffea_jetimg.images import PRESETS, JetImageSpec, image_mass, jet_images, transform_constituents


def _jets(list_of_jets, charge=None):
    """jets → constituents from [[(pt, eta, phi, mass), ...], ...]."""
    recs = []
    for jet in list_of_jets:
        recs.append([{"pt": float(c[0]), "eta": float(c[1]), "phi": float(c[2]), "mass": float(c[3]),
                      "charge": int(c[4]) if len(c) > 4 else 1} for c in jet])
    return ak.Array(recs)


def _random_jets(n=200, seed=3, eta0=0.5, phi0=1.0, spread=0.15, nmax=60):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, nmax, n)
    tot = counts.sum()
    rec = ak.zip({
        "pt": rng.exponential(10.0, tot).astype(np.float32) + 0.5,
        "eta": (eta0 + rng.normal(0, spread, tot)).astype(np.float32),
        "phi": (phi0 + rng.normal(0, spread, tot)).astype(np.float32),
        "mass": np.full(tot, 0.13957, np.float32),
        "charge": rng.integers(-1, 2, tot).astype(np.int32),
    })
    return ak.unflatten(rec, counts)


def _pair_mass(pt, eta, phi, m):
    pt, eta, phi, m = (np.asarray(a, np.float64) for a in (pt, eta, phi, m))
    e = np.sqrt((pt * np.cosh(eta)) ** 2 + m**2).sum()
    px = (pt * np.cos(phi)).sum()
    py = (pt * np.sin(phi)).sum()
    pz = (pt * np.sinh(eta)).sum()
    return math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


# -- normalisation ------------------------------------------------------------------------
@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_shapes_and_sums(preset):
    x = _random_jets()
    spec = PRESETS[preset]
    img, valid = jet_images(x, spec, return_mask=True)
    assert img.shape == (len(x), *spec.shape) and img.dtype == np.float32
    assert valid.all() and np.isfinite(img).all()
    sums = img.sum(axis=(1, 2, 3))
    if spec.normalize == "sum":
        np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    else:  # unnormalised pT images hold at most the jet's pT
        assert np.all(sums <= ak.to_numpy(ak.sum(x.pt, axis=1)) * (1 + 1e-5))


def test_normalisation_modes():
    x = _random_jets(n=50)
    spec = JetImageSpec(channels=("charged", "neutral", "charged_count"))
    per = jet_images(x, spec.replace(normalize="sum"))
    n_charged = ak.to_numpy(ak.sum(x.charge != 0, axis=1))
    n_neutral = ak.to_numpy(ak.sum(x.charge == 0, axis=1))
    has = np.stack([n_charged > 0, n_neutral > 0, n_charged > 0], axis=1)
    assert 0 < has.sum() < has.size  # some jets lack a channel: those channels stay all zero
    np.testing.assert_allclose(per.sum(axis=(2, 3)), has.astype(float), rtol=1e-5)
    together = jet_images(x, spec.replace(normalize="sum_all"))
    np.testing.assert_allclose(together.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    mx = jet_images(x, spec.replace(normalize="max"))
    np.testing.assert_allclose(mx.max(axis=(2, 3)), has.astype(float), rtol=1e-6)
    raw = jet_images(x, spec.replace(normalize="none"))
    # charged + neutral = all; the count channel counts charged constituents in the window
    allc = jet_images(x, spec.replace(channels=("all",), normalize="none"))
    np.testing.assert_allclose(raw[:, 0] + raw[:, 1], allc[:, 0], rtol=1e-5, atol=1e-5)
    inside = ak.to_numpy(ak.sum(x.charge != 0, axis=1))
    assert np.all(raw[:, 2].sum(axis=(1, 2)) <= inside) and raw[:, 2].sum() > 0.9 * inside.sum()
    # the unnormalised 'all' channel holds exactly the in-window pT
    allpt = ak.to_numpy(ak.sum(x.pt, axis=1))
    assert np.all(allc.sum(axis=(1, 2, 3)) <= allpt * (1 + 1e-5))


# -- conventions ---------------------------------------------------------------------------
@pytest.mark.parametrize("npix", [33, 16, 40, 25, 1, 2])
@pytest.mark.parametrize("centre", ["jet_axis", "centroid", "leading", "hardest_pixel"])
@pytest.mark.parametrize("coordinate", ["eta", "rapidity"])
def test_one_constituent_lights_centre_pixel(npix, centre, coordinate):
    x = _jets([[(50.0, 1.7, -2.9, 3.0)], [(20.0, -0.3, 3.1, 0.0)]])
    spec = JetImageSpec(npix=npix, pixel_size=0.1, centre=centre, coordinate=coordinate, normalize="none")
    img = jet_images(x, spec)
    for j, pt in enumerate((50.0, 20.0)):
        nz = np.argwhere(img[j, 0] != 0)
        assert nz.tolist() == [[npix // 2, npix // 2]]
        assert img[j, 0, npix // 2, npix // 2] == pytest.approx(pt, rel=1e-6)


def test_pixel_edges_convention():
    # offsets of just under / over half a pixel from the centre fall into adjacent pixels
    d = 0.1
    x = _jets([[(100.0, 0.0, 0.0, 0.0), (1e-3, 0.049, 0.0, 0.0), (1e-3, 0.051, 0.0, 0.0),
                (1e-3, 0.0, -0.051, 0.0)]])
    for npix in (5, 6):
        img = jet_images(x, JetImageSpec(npix=npix, pixel_size=d, centre="leading", normalize="none"))[0, 0]
        c = npix // 2
        assert img[c, c] == pytest.approx(100.001, rel=1e-6)
        assert img[c + 1, c] == pytest.approx(1e-3, rel=1e-3)
        assert img[c, c - 1] == pytest.approx(1e-3, rel=1e-3)
    ext = JetImageSpec(npix=6, pixel_size=d).extent
    assert ext == pytest.approx((-0.35, 0.25, -0.35, 0.25))


def test_phi_wrap_gives_compact_image():
    # constituents on both sides of phi = ±π
    rng = np.random.default_rng(5)
    jet = []
    for _ in range(40):
        dphi = rng.normal(0, 0.08)
        phi = math.remainder(math.pi + dphi, 2 * math.pi)
        jet.append((rng.uniform(1, 20), 0.3 + rng.normal(0, 0.08), phi, 0.0))
    assert min(c[2] for c in jet) < -3 and max(c[2] for c in jet) > 3
    x = _jets([jet])
    for centre in ("jet_axis", "centroid", "leading", "hardest_pixel"):
        spec = JetImageSpec(npix=33, pixel_size=0.025, centre=centre, normalize="none")
        img = jet_images(x, spec)[0, 0]
        nz = np.argwhere(img > 0)
        assert img.sum() == pytest.approx(sum(c[0] for c in jet), rel=1e-5)  # nothing fell outside
        assert np.abs(nz - 16).max() <= 14  # within ±0.35 of the centre
        # and on average near the centre: a wrap bug would put the two halves ~2π/0.025 px apart
        w = img[nz[:, 0], nz[:, 1]]
        assert abs(np.average(nz[:, 1], weights=w) - 16) < 6


# -- rotation / flip / centring keep the sum ------------------------------------------------
def _three_prong(eta0=0.2, phi0=-1.0):
    return [(100.0, eta0, phi0, 0.0), (5.0, eta0 + 0.03, phi0 - 0.02, 0.0),
            (50.0, eta0 + 0.35, phi0 + 0.35, 0.0), (4.0, eta0 + 0.33, phi0 + 0.37, 0.0),
            (20.0, eta0 - 0.45, phi0 + 0.05, 0.0), (1.0, eta0 - 0.1, phi0 - 0.3, 0.0)]


@pytest.mark.parametrize("rotation", ["none", "principal_axis", "second_maximum"])
@pytest.mark.parametrize("flip", ["none", "third_maximum", "heavier_half"])
@pytest.mark.parametrize("flip_vertical", [False, True])
def test_rotation_and_flip_keep_sum(rotation, flip, flip_vertical):
    x = _random_jets(n=60, spread=0.1)
    base = JetImageSpec(npix=41, pixel_size=0.05, centre="hardest_pixel", normalize="none")
    ref = jet_images(x, base)
    spec = base.replace(rotation=rotation, flip=flip, flip_vertical=flip_vertical)
    img = jet_images(x, spec)
    np.testing.assert_allclose(img.sum(axis=(1, 2, 3)), ref.sum(axis=(1, 2, 3)), rtol=1e-6)
    if rotation != "none" or flip != "none" or flip_vertical:
        assert not np.allclose(img, ref)  # it did something
    normed = jet_images(x, spec.replace(normalize="sum"))
    np.testing.assert_allclose(normed.sum(axis=(1, 2, 3)), 1.0, rtol=1e-6)


def test_deeptop_preprocessing_geometry():
    x = _jets([_three_prong(), _three_prong(-1.0, 3.0)])
    spec = JetImageSpec.preset("deeptop", normalize="none", pixel_size=(0.1, 0.1))
    img = jet_images(x, spec)
    for j in range(2):
        im = img[j, 0]
        c = 20
        assert im[c, c] == pytest.approx(105.0, rel=1e-5)  # maximum 1 at the centre
        # maximum 2 (≈ 54 GeV at distance 0.495) straight up (+phi), maximum 3 on the right (+eta)
        up = im[c - 1:c + 2, c + 3:c + 7]
        assert up.sum() == pytest.approx(54.0, rel=1e-5)
        assert im[c + 1:, :].sum() == pytest.approx(20.0, rel=1e-5)  # maximum 3 flipped to the right
        assert im[:c, :].sum() == pytest.approx(1.0, rel=1e-5)
    # without the flip this jet has maximum 3 on the left: the flip is doing the work
    noflip = jet_images(x, spec.replace(flip="none"))[0, 0]
    assert noflip[:20, :].sum() == pytest.approx(20.0, rel=1e-5)
    for j in range(2):
        im = img[j, 0]
        assert im.sum() == pytest.approx(180.0, rel=1e-6)


def test_principal_axis_goes_vertical():
    # a jet elongated along eta becomes elongated along phi
    jet = [(10.0, 0.1 * k, 0.5 + 0.01 * k, 0.0) for k in range(-4, 5)]
    img = jet_images(_jets([jet]), JetImageSpec(npix=25, pixel_size=0.05, centre="centroid", rotation="principal_axis",
                                                normalize="none"))[0, 0]
    nz = np.argwhere(img > 0)
    assert np.ptp(nz[:, 0]) <= 1 and np.ptp(nz[:, 1]) >= 14


def test_pixel_rotation_smears():
    x = _random_jets(n=30, spread=0.1)
    spec = JetImageSpec(npix=41, pixel_size=0.05, centre="hardest_pixel", rotation="principal_axis", normalize="none")
    coords = jet_images(x, spec)
    pix = jet_images(x, spec.replace(rotation_method="pixel"))
    assert np.isfinite(pix).all()
    # bilinear interpolation spreads intensity over more pixels and does not keep the sum exactly
    assert (np.count_nonzero(pix, axis=(1, 2, 3)) > np.count_nonzero(coords, axis=(1, 2, 3))).mean() > 0.9
    rel = np.abs(pix.sum(axis=(1, 2, 3)) / coords.sum(axis=(1, 2, 3)) - 1)
    assert rel.max() < 0.2
    # the same image in pixel mode without rotation is identical
    np.testing.assert_array_equal(jet_images(x, spec.replace(rotation="none", rotation_method="pixel")),
                                  jet_images(x, spec.replace(rotation="none")))


# -- centring: boost vs translation -----------------------------------------------------------
def test_boost_centring_keeps_mass_translation_does_not():
    jet = [(6.0, 2.1, 0.3, 1.5), (4.0, 2.4, 0.5, 0.9), (8.0, 1.9, 0.1, 0.5), (3.0, 2.2, -0.2, 1.0)]
    x = _jets([jet])
    pt, eta, phi, m = (np.array([c[i] for c in jet]) for i in range(4))
    m0 = _pair_mass(pt, eta, phi, m)
    for centre in ("jet_axis", "centroid", "leading", "hardest_pixel"):
        for boost, same in ((True, True), (False, False)):
            t = transform_constituents(x, JetImageSpec(centre=centre, boost=boost, npix=65, pixel_size=0.05))[0]
            m1 = _pair_mass(t.pt, t.u, t.v, t.mass)
            if same:
                assert m1 == pytest.approx(m0, rel=1e-5)
                assert abs(np.average(t.u, weights=t.pt)) < 2.0  # it did move the jet to the centre
            else:
                assert abs(m1 / m0 - 1) > 1e-3
    # massless constituents: eta translation is a boost
    t = transform_constituents(_jets([[c[:3] + (0.0,) for c in jet]]), JetImageSpec(boost=False))[0]
    assert _pair_mass(t.pt, t.u, t.v, t.mass) == pytest.approx(_pair_mass(pt, eta, phi, 0 * m), rel=1e-5)


def test_image_mass_is_the_pixels_mass_and_a_quarter_turn_changes_it():
    # two massless prongs on pixel centres 0.4 apart in eta: the image mass is their pair mass
    # (m² = 2 pT1 pT2 (cosh Δη − cos Δφ)); the grid turned by π/2 puts them 0.4 apart in phi,
    # which is another mass (1 − cos 0.4 < cosh 0.4 − 1): the caveat of arXiv:1511.05190
    spec = JetImageSpec(npix=25, pixel_size=0.1, centre="none", normalize="none")
    x = _jets([[(100.0, -0.2, 0.0, 0.0), (50.0, 0.2, 0.0, 0.0)]])
    img = jet_images(x, spec)
    m = image_mass(img, spec)[0]
    assert m == pytest.approx(math.sqrt(2 * 100 * 50 * (math.cosh(0.4) - 1)), rel=1e-6)
    assert m == pytest.approx(_pair_mass([100, 50], [-0.2, 0.2], [0, 0], [0, 0]), rel=1e-6)
    turned = image_mass(np.rot90(img, 1, axes=(2, 3)), spec)[0]
    assert turned == pytest.approx(math.sqrt(2 * 100 * 50 * (1 - math.cos(0.4))), rel=1e-6)
    assert abs(turned / m - 1) > 0.01
    # a real jet on a fine grid: the image mass is the jet mass up to pixelisation
    rng = np.random.default_rng(5)
    jet = [(float(p), float(e), float(f), 0.0) for p, e, f in
           zip(rng.exponential(10, 40), rng.normal(0.4, 0.15, 40), rng.normal(1.0, 0.15, 40))]
    fine = JetImageSpec(npix=81, pixel_size=0.02, centre="jet_axis", normalize="none")
    pt, eta, phi, mass = (np.array([c[i] for c in jet]) for i in range(4))
    assert image_mass(jet_images(_jets([jet]), fine), fine)[0] == pytest.approx(_pair_mass(pt, eta, phi, mass),
                                                                                rel=0.02)


def test_tower_projection():
    # one neutral at the centre of a 0.1 tower on a 0.05 grid → 4 fine pixels with 1/4 each
    spec = JetImageSpec(npix=16, pixel_size=0.05, tower_size=0.1, centre="none", normalize="none")
    x = _jets([[(8.0, 0.01, 0.01, 0.0, 0)], [(8.0, 0.01, 0.01, 0.0, 1)]])
    img = jet_images(x, spec)
    nz = np.argwhere(img[0, 0] > 0)
    assert len(nz) == 4 and np.allclose(img[0, 0][img[0, 0] > 0], 2.0)
    assert np.ptp(nz[:, 0]) == 1 and np.ptp(nz[:, 1]) == 1 and nz.min() % 2 == 0  # aligned to the towers
    assert np.argwhere(img[1, 0] > 0).tolist() == [[8, 8]]  # charged: track position kept


def test_threshold_and_crop():
    x = _random_jets(n=40)
    big = jet_images(x, JetImageSpec(npix=41, pixel_size=0.03, normalize="none"))
    crop = jet_images(x, JetImageSpec(npix=33, grid=41, pixel_size=0.03, normalize="none"))
    np.testing.assert_array_equal(crop, big[:, :, 4:37, 4:37])
    thr = jet_images(x, JetImageSpec(npix=41, pixel_size=0.03, normalize="none", threshold=2.0))
    np.testing.assert_array_equal(thr, np.where(big < 2.0, 0, big))
    thr_n = jet_images(x, JetImageSpec(npix=41, pixel_size=0.03, threshold=2.0))
    ok = thr.sum(axis=(1, 2, 3)) > 0
    np.testing.assert_allclose(thr_n[ok], thr[ok] / thr[ok].sum(axis=(1, 2, 3))[:, None, None, None], rtol=1e-5)


def test_intensity_modes():
    jet = [(10.0, 1.0, 0.0, 2.0)]
    for inten, val in (("pt", 10.0), ("e", math.sqrt((10 * math.cosh(1.0)) ** 2 + 4)),
                       ("et", math.sqrt((10 * math.cosh(1.0)) ** 2 + 4) / math.cosh(1.0))):
        img = jet_images(_jets([jet]), JetImageSpec(intensity=inten, normalize="none"))
        assert img.max() == pytest.approx(val, rel=1e-5)


def test_given_jet_axis():
    x = _jets([[(10.0, 0.5, 1.0, 0.0)]])
    img = jet_images(x, JetImageSpec(npix=11, pixel_size=0.1, centre="jet_axis", normalize="none"),
                     jet_eta=np.array([0.3]), jet_phi=np.array([1.0]))
    assert np.argwhere(img[0, 0] > 0).tolist() == [[5 + 2, 5]]


# -- odd inputs -----------------------------------------------------------------------------
def test_empty_none_masked_inputs():
    spec = JetImageSpec(npix=9, pixel_size=0.1)
    # events → jets → constituents with None events, None jets, empty jets, None constituents
    arr = ak.Array([
        [[{"pt": 10.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}, None], []],
        None,
        [],
        [None, [{"pt": 5.0, "eta": 1.0, "phi": 3.0, "mass": 0.1}]],
    ])
    img, valid = jet_images(arr, spec, return_mask=True)
    assert img.shape == (4, 1, 9, 9) and np.isfinite(img).all()
    assert valid.tolist() == [True, False, False, True]
    assert img[1].sum() == 0 and img[2].sum() == 0
    np.testing.assert_allclose(img[[0, 3]].sum(axis=(1, 2, 3)), 1.0, rtol=1e-6)
    # zero jets
    empty = ak.Array([[{"pt": 1.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]])[:0]
    img0, valid0 = jet_images(empty, spec, return_mask=True)
    assert img0.shape == (0, 1, 9, 9) and valid0.shape == (0,)
    # jets that exist but whose constituents all fall outside the window, or have zero pT
    far = ak.Array([[{"pt": 0.0, "eta": 0.0, "phi": 0.0, "mass": 0.0}]])
    img2, valid2 = jet_images(far, spec, return_mask=True)
    assert not valid2[0] and img2.sum() == 0 and np.isfinite(img2).all()
    # a masked (IndexedOption) jets array behaves like the plain one
    x = _random_jets(n=10)
    masked = ak.mask(x, np.arange(10) % 3 != 0)
    imgm, vm = jet_images(masked, spec, return_mask=True)
    ref = jet_images(x, spec)
    assert vm.tolist() == [i % 3 != 0 for i in range(10)]
    np.testing.assert_array_equal(imgm[vm], ref[vm])


def test_spec_json_and_validation():
    for spec in list(PRESETS.values()) + [JetImageSpec(channels=("charged", "neutral"), tower_size=0.1,
                                                         pixel_size=0.05, grid=(40, 40), npix=(32, 30))]:
        again = JetImageSpec.from_json(spec.to_json())
        assert again == spec
        assert JetImageSpec.from_dict(spec.to_dict()) == spec
    bad = {"npix": 0, "pixel_size": -0.1, "coordinate": "theta", "centre": "middle", "rotation": "spin",
           "flip": "up", "intensity": "mass", "channels": ("gluons",), "normalize": "l2", "threshold": -1.0,
           "tower_size": 0.07, "grid": (3, 3), "maxima_dr": -1.0, "rotation_method": "fft", "boost": "yes"}
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            JetImageSpec(**{name: value})
    with pytest.raises(ValueError, match="colour"):
        JetImageSpec.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="preset"):
        JetImageSpec.preset("nope")


# -- real data, eager and dask ------------------------------------------------------------------
@pytest.fixture(scope="module")
def pfnano_constituents(pfnano_file):
    from coffea_jetimg._io import open_events
    from coffea_jetimg import constituents

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = open_events(pfnano_file)
        evd = open_events(pfnano_file, mode="dask")
        return constituents(ev), constituents(evd)


def test_real_pfnano_images_finite(pfnano_constituents):
    eager, _ = pfnano_constituents
    n_jets = int(ak.sum(ak.num(eager, axis=1)))
    has = ak.to_numpy(ak.flatten(ak.num(eager, axis=2)) > 0)
    for name in PRESETS:
        img, valid = jet_images(eager, name, return_mask=True)
        assert img.shape[0] == n_jets and np.isfinite(img).all()
        assert np.array_equal(valid, has) and has.sum() > 5
    spec = JetImageSpec(channels=("all", "charged", "neutral", "puppi", "leading_vertex", "pileup"), tower_size=0.1,
                        pixel_size=0.05, npix=32, normalize="none")
    img = jet_images(eager, spec)
    assert np.isfinite(img).all()
    np.testing.assert_allclose(img[:, 1] + img[:, 2], img[:, 0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(img[:, 4] + img[:, 5], img[:, 0], rtol=1e-4, atol=1e-3)
    assert np.all(img[:, 3].sum(axis=(1, 2)) <= img[:, 0].sum(axis=(1, 2)) * (1 + 1e-5))


@pytest.mark.parametrize("channels, tower, expect", [
    (("all",), None, ()),
    (("charged", "neutral"), None, ("charge",)),
    (("all",), 0.1, ("charge",)),
    (("puppi", "leading_vertex"), None, ("charge", "fromPV", "puppiWeight")),
])
def test_constituent_fields_suffice(pfnano_file, pfnano_constituents, channels, tower, expect):
    """Images from constituents gathered with only ``constituent_fields(spec)`` equal those from
    all fields: the list is enough, and it is no longer than the channels need."""
    from coffea_jetimg import constituents
    from coffea_jetimg._io import open_events
    from coffea_jetimg.images import constituent_fields

    spec = JetImageSpec(channels=channels, tower_size=tower, npix=24, pixel_size=0.05, normalize="none")
    assert constituent_fields(spec) == expect
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        few = constituents(open_events(pfnano_file), fields=constituent_fields(spec))
    assert set(few.fields) <= {"pt", "eta", "phi", "mass"} | set(expect)
    np.testing.assert_array_equal(jet_images(few, spec), jet_images(pfnano_constituents[0], spec))


@pytest.mark.parametrize("spec", ["deeptop", JetImageSpec(channels=("charged", "neutral"), npix=24, pixel_size=0.05)])
def test_eager_equals_dask(pfnano_constituents, spec):
    import dask_awkward as dak

    eager, lazy = pfnano_constituents
    img, valid = jet_images(eager, spec, return_mask=True)
    dimg, dvalid = jet_images(lazy, spec, return_mask=True)
    assert isinstance(dimg, dak.Array)
    got = dimg.compute()
    assert ak.to_list(ak.num(got, axis=1)) == ak.to_list(ak.num(eager, axis=1))  # events → jets kept
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(got, axis=1)), img, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(dvalid.compute(), axis=1)), valid)


@pytest.mark.parametrize("coordinate", ["eta", "rapidity"])
@pytest.mark.parametrize("normalize", ["sum", "none"])
@pytest.mark.parametrize("centre,boost,given", [
    ("centroid", False, False), ("jet_axis", False, False), ("jet_axis", True, False), ("jet_axis", True, True),
    ("leading", False, False), ("leading", True, False),
])
def test_fast_path_equals_general_path(coordinate, normalize, centre, boost, given):
    # centroid, jet-axis and leading-constituent centring have a dedicated kernel; a tiny
    # threshold sends the same spec through the general one. Zero-pT constituents and jets
    # (no usable axis: the leading constituent) and pT ties for the leading one are included.
    x = _random_jets(n=300, eta0=1.0, phi0=3.1, spread=0.2)
    pt = ak.to_numpy(ak.flatten(x.pt)).copy()
    pt[::7] = 0.0
    pt[::11] = 5.0
    x = ak.with_field(x, ak.unflatten(pt, ak.num(x)), "pt")
    zero = ak.zip({f: x[f][:3] * (0 if f == "pt" else 1) for f in x.fields})  # no pT at all
    flat = ak.zip({f: x[f][3:9] * 0 + 3 if f == "pt" else x[f][3:9] for f in x.fields})  # all tied
    x = ak.concatenate([x, zero, flat])
    spec = JetImageSpec(npix=25, pixel_size=0.04, boost=boost, coordinate=coordinate, normalize=normalize,
                        centre=centre, channels=("all", "charged", "neutral"))
    kw = {}
    if given:
        rng = np.random.default_rng(5)
        kw = dict(jet_eta=1.0 + rng.normal(0, 0.05, len(x)), jet_phi=np.pi - 0.02 + rng.normal(0, 0.05, len(x)))
    fast, vf = jet_images(x, spec, return_mask=True, **kw)
    general, vg = jet_images(x, spec.replace(threshold=1e-30), return_mask=True, **kw)
    np.testing.assert_array_equal(vf, vg)
    assert vf.sum() > 250
    np.testing.assert_array_equal(fast != 0, general != 0)
    np.testing.assert_allclose(fast, general, rtol=1e-5, atol=1e-6)


def _prong_jets(n=400, seed=7):
    """Seeded top-like jets: three prongs of Gaussian sprays around a random axis (some across
    φ = ±π), with a fifth of the jets on integer pT (ties between pixels), a seventh with zero-pT
    constituents, and a few with one or two constituents (fewer than three maxima)."""
    rng = np.random.default_rng(seed)
    jets = []
    for i in range(n):
        eta0 = rng.uniform(-2.0, 2.0)
        phi0 = rng.choice([rng.uniform(-np.pi, np.pi), np.pi - 0.05])
        nc = int(rng.integers(1, 3)) if i % 25 == 0 else int(rng.integers(10, 80))
        prong = rng.integers(0, 3, nc)
        pdeta = rng.normal(0, 0.4, 3)
        pdphi = rng.normal(0, 0.4, 3)
        pt = rng.exponential(15.0, nc) * np.array([1.0, 0.6, 0.3])[prong] + 0.2
        if i % 5 == 1:
            pt = np.round(pt) + 1.0
        if i % 7 == 3:  # zero-pT constituents, some of them the first in their pixel
            pt[::4] = 0.0
        eta = eta0 + pdeta[prong] + rng.normal(0, 0.07, nc)
        phi = phi0 + pdphi[prong] + rng.normal(0, 0.07, nc)
        phi = np.pi - np.mod(np.pi - phi, 2 * np.pi)
        mass = np.where(rng.random(nc) < 0.6, 0.13957, 0.0)
        jets.append([(pt[k], eta[k], phi[k], mass[k], int(rng.integers(-1, 2))) for k in range(nc)])
    return _jets(jets)


@pytest.mark.parametrize("changes", [
    {}, {"boost": False}, {"coordinate": "rapidity"}, {"normalize": "none"}, {"centre": "centroid"},
    {"centre": "centroid", "boost": False, "normalize": "none"}, {"flip": "none"}, {"rotation": "none"},
    {"grid": (50, 46), "npix": (33, 32), "channels": ("charged", "neutral"), "normalize": "none", "boost": False},
    {"flip": "heavier_half"}, {"flip": "heavier_half", "boost": False, "normalize": "none", "maxima_dr": 0.2},
])
def test_maxima_fast_path_equals_general_path(changes, pfnano_file):
    # the maxima-based recipes (deeptop) have a dedicated kernel; a tiny threshold sends the
    # same spec through the general loop. Same pixels: exactly equal unnormalised images.
    from coffea_jetimg._io import open_events
    from coffea_jetimg import constituents

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = ak.flatten(constituents(open_events(pfnano_file)), axis=1)
    real = ak.zip({f: real[f] for f in ("pt", "eta", "phi", "mass", "charge")})
    x = ak.concatenate([_prong_jets(), real, _random_jets(n=100, phi0=3.1, spread=0.3)])
    spec = JetImageSpec.preset("deeptop", **changes)
    fast, vf = jet_images(x, spec, return_mask=True)
    general, vg = jet_images(x, spec.replace(threshold=1e-30), return_mask=True)
    np.testing.assert_array_equal(vf, vg)
    assert vf.sum() > 400
    if spec.normalize == "none":
        np.testing.assert_array_equal(fast, general)
    else:
        np.testing.assert_array_equal(fast != 0, general != 0)
        np.testing.assert_allclose(fast, general, rtol=1e-5, atol=1e-6)


def test_dask_with_given_jet_axes(pfnano_file):
    """jet_eta/jet_phi as dask arrays beside dask constituents: the eager numbers."""
    from coffea_jetimg._io import open_events
    from coffea_jetimg import constituents
    from coffea_jetimg.lorentz import constituent_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = open_events(pfnano_file)
        evd = open_events(pfnano_file, mode="dask")
        x, xd = constituents(ev), constituents(evd)
    spec = JetImageSpec(centre="jet_axis", npix=25, pixel_size=0.05)
    want = jet_images(x, spec, jet_eta=ev.FatJet.eta, jet_phi=ev.FatJet.phi)
    got = jet_images(xd, spec, jet_eta=evd.FatJet.eta, jet_phi=evd.FatJet.phi).compute()
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(got, axis=1)), want, rtol=1e-6, atol=0)
    # the given axis is used: it differs from the constituents' own axis
    assert not np.allclose(want, jet_images(x, spec))
    f = constituent_features(x, 20, jet_eta=ev.FatJet.eta, jet_phi=ev.FatJet.phi, return_mask=False)
    fd = constituent_features(xd, 20, jet_eta=evd.FatJet.eta, jet_phi=evd.FatJet.phi, return_mask=False).compute()
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(fd, axis=1)), f, rtol=1e-6, atol=0)
    with pytest.raises(TypeError, match="dask-awkward"):
        jet_images(xd, spec, jet_eta=ev.FatJet.eta, jet_phi=ev.FatJet.phi)


def test_spec_axis_jet_takes_the_stored_jet_axes(pfnano_file):
    """axis='jet': build_inputs centres on the jets' stored eta (rapidity) and phi, for the
    selected jets only; without axes jet_images refuses; specs without the field keep the
    constituent-sum axis."""
    from coffea_jetimg import constituents, open_events
    from coffea_jetimg.inputs import InputsError, build_inputs
    from coffea_jetimg.train import make_input_spec

    assert JetImageSpec.from_dict(
        {k: v for k, v in PRESETS["qg"].to_dict().items() if k != "axis"}).axis == "constituents"
    with pytest.raises(ValueError, match="axis"):
        JetImageSpec(axis="fatjet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = open_events(pfnano_file)
        cands = constituents(ev, "FatJet")
    fj = ev.FatJet
    mask = fj.pt > 200
    sel = ak.flatten(fj[mask])
    for coordinate in ("eta", "rapidity"):
        spec = make_input_spec("qg", jets="FatJet", image_overrides={"axis": "jet", "coordinate": coordinate})
        img_spec = JetImageSpec.from_dict(spec["image_spec"])
        assert img_spec.axis == "jet" and JetImageSpec.from_dict(img_spec.to_dict()) == img_spec
        got = build_inputs(spec, ev, "FatJet", jet_mask=mask, cands=cands)
        x = ak.flatten(cands[mask], axis=1)
        y_jet = np.asarray(sel.eta) if coordinate == "eta" else np.asarray(sel.rapidity)
        want = jet_images(x, img_spec, jet_eta=y_jet, jet_phi=np.asarray(sel.phi))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        own = build_inputs(make_input_spec("qg", jets="FatJet", image_overrides={"coordinate": coordinate}),
                           ev, "FatJet", jet_mask=mask, cands=cands)
        # CMS's stored axes differ from the candidates' sums by up to ~0.01: some images move
        assert 0 < int((np.abs(got - own).reshape(len(got), -1).max(axis=1) > 1e-6).sum()) < len(got)
        np.testing.assert_allclose(got.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
        with pytest.raises(ValueError, match="jet_eta"):
            jet_images(x, img_spec)
        with pytest.raises(InputsError, match="axis 'jet'"):
            build_inputs(spec, cands, "FatJet")
