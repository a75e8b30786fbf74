"""The one set of kinematic helpers: numpy (coffea_jetimg.kinematics) and numba (_kernels) sides,
both checked against scikit-hep ``vector`` (the library under coffea's Lorentz behaviours)."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
import vector

from coffea_jetimg import _kernels as K
from coffea_jetimg import kinematics as kin


def _particles(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    pt = rng.exponential(30.0, n) + 0.1
    eta = rng.uniform(-4.5, 4.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mass = rng.choice([0.0, 0.000511, 0.13957, 0.4937, 0.938, 5.0, 80.0], n)
    return pt, eta, phi, mass


def _vec(pt, eta, phi, mass):
    return vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": mass})


def test_energy_and_p4_match_vector():
    pt, eta, phi, mass = _particles()
    v = _vec(pt, eta, phi, mass)
    e, px, py, pz = kin.p4_from_ptetaphim(pt, eta, phi, mass)
    np.testing.assert_allclose(e, v.E, rtol=1e-12)
    np.testing.assert_allclose(kin.energy(pt, eta, mass), v.E, rtol=1e-12)
    np.testing.assert_allclose(px, v.px, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(py, v.py, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(pz, v.pz, rtol=1e-12, atol=1e-10)
    # the numba side: the same numbers (one exp for cosh and sinh: ~1e-16 pt absolute in pz)
    for i in range(0, len(pt), 97):
        ke, kx, ky, kz = K.p4(pt[i], eta[i], phi[i], mass[i])
        assert ke == pytest.approx(v.E[i], rel=1e-13)
        assert K.energy(pt[i], eta[i], mass[i]) == pytest.approx(v.E[i], rel=1e-13)
        assert (kx, ky) == pytest.approx((v.px[i], v.py[i]), rel=1e-13, abs=1e-13 * pt[i])
        assert kz == pytest.approx(v.pz[i], rel=1e-12, abs=1e-14 * pt[i])


def test_round_trip_ptetaphim_p4():
    pt, eta, phi, mass = _particles(seed=1)
    back = kin.ptetaphim_from_p4(*kin.p4_from_ptetaphim(pt, eta, phi, mass))
    np.testing.assert_allclose(back[0], pt, rtol=1e-12)
    np.testing.assert_allclose(back[1], eta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(back[2], phi, rtol=1e-12, atol=1e-12)
    heavy = mass > 0.1  # m from E² - p²: the cancellation loses ~1e-16 E² absolute in m²
    np.testing.assert_allclose(back[3][heavy], mass[heavy], rtol=1e-4)
    assert np.all(back[3] >= 0)
    # along the beam: pT = 0 gives the ±1e4 convention, not a NaN
    pt0, eta0, _, _ = kin.ptetaphim_from_p4(np.array([5.0, 5.0]), np.zeros(2), np.zeros(2), np.array([5.0, -5.0]))
    assert pt0.tolist() == [0.0, 0.0] and eta0.tolist() == pytest.approx([math.asinh(1e4), -math.asinh(1e4)])


def test_rapidity_matches_vector_numpy_and_numba():
    pt, eta, phi, mass = _particles(seed=2)
    v = _vec(pt, eta, phi, mass)
    np.testing.assert_allclose(kin.rapidity(pt, eta, mass), v.rapidity, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(kin.rapidity_from_p4(v.E, v.pz), v.rapidity, rtol=1e-8, atol=1e-8)
    massless = mass == 0
    assert np.array_equal(kin.rapidity(pt, eta, mass)[massless], eta[massless])
    for i in range(0, len(pt), 89):
        assert K.rapidity(pt[i], eta[i], mass[i]) == pytest.approx(v.rapidity[i], rel=1e-10, abs=1e-10)
        assert K.rapidity_from_ep(v.E[i], v.pz[i]) == pytest.approx(v.rapidity[i], rel=1e-8, abs=1e-8)
    # no rapidity (E <= |pz|): the kernels' ±1e5 convention, 0 for pz = 0
    assert K.rapidity_from_ep(1.0, 1.0) == 1e5 and K.rapidity_from_ep(1.0, -2.0) == -1e5
    assert K.rapidity_from_ep(0.0, 0.0) == 0.0
    assert kin.rapidity_from_p4(np.array([1.0, 1.0, 0.0]), np.array([1.0, -2.0, 0.0])).tolist() == [1e5, -1e5, 0.0]


@pytest.mark.parametrize("x", [0.0, np.pi, -np.pi, 3 * np.pi, -3 * np.pi, 2 * np.pi, 1e-17, 7.5, -7.5, 1e3, -1e3,
                               np.nextafter(np.pi, 4), np.nextafter(-np.pi, -4)])
def test_wrap_phi_range_numpy_and_numba(x):
    w = kin.wrap_phi(np.float64(x))
    assert -np.pi < w <= np.pi
    assert math.isclose(math.cos(w), math.cos(x), abs_tol=1e-9) and math.isclose(math.sin(w), math.sin(x), abs_tol=1e-9)
    # the same angle (at the ±π cut the two sides may land on opposite ends, one ulp apart)
    assert abs(kin.wrap_phi(K.wrap_phi(x) - float(w))) < 1e-12
    assert -np.pi < K.wrap_phi(x) <= np.pi
    if -3 * np.pi < x < 3 * np.pi:  # one step is exact there
        assert K.wrap_phi_once(x) == K.wrap_phi(x)


def test_wrap_phi_on_awkward_and_delta_r_matches_vector():
    jag = ak.Array([[0.5, 4.0], [], [-4.0]])
    out = kin.wrap_phi(jag)
    assert ak.to_list(ak.num(out)) == [2, 0, 1]
    assert ak.all((out > -np.pi) & (out <= np.pi))
    pt, eta, phi, _ = _particles(seed=3)
    a = _vec(pt[:1000], eta[:1000], phi[:1000], 0 * pt[:1000])
    b = _vec(pt[1000:], eta[1000:], phi[1000:], 0 * pt[1000:])
    np.testing.assert_allclose(kin.delta_phi(phi[:1000], phi[1000:]), a.deltaphi(b), atol=1e-12)
    np.testing.assert_allclose(kin.delta_r(eta[:1000], phi[:1000], eta[1000:], phi[1000:]), a.deltaR(b), rtol=1e-12)


def test_p4_sum_matches_vector_sum():
    pt, eta, phi, mass = _particles(50, seed=4)
    v = _vec(pt, eta, phi, mass)
    tot = v.sum()
    e, px, py, pz = K.p4_sum(np.uint64(0), len(pt), pt, eta, phi, mass)
    assert (e, px, py, pz) == pytest.approx(tuple(float(a) for a in (tot.E, tot.px, tot.py, tot.pz)),
                                            rel=1e-12, abs=1e-9)
    e, px, py, pz = K.p4_sum(np.uint64(10), 5, pt, eta, phi, mass)  # an offset slice
    part = v[10:15].sum()
    assert (e, px, py, pz) == pytest.approx(tuple(float(a) for a in (part.E, part.px, part.py, part.pz)), rel=1e-12,
                                            abs=1e-9)


def test_ptetaphi_from_p3_matches_vector():
    pt, eta, phi, mass = _particles(200, seed=6)
    v = _vec(pt, eta, phi, mass)
    for i in range(len(pt)):
        got = K.ptetaphi_from_p3(v.px[i], v.py[i], v.pz[i])
        assert got == pytest.approx((pt[i], eta[i], phi[i]), rel=1e-9, abs=1e-9)
    assert K.ptetaphi_from_p3(0.0, 0.0, 5.0)[:2] == (0.0, 0.0)  # no direction: eta 0


def test_image_params_layout_and_errors():
    p = K.image_params(coord=0, centre=2, boost=True, rotation=0, pixel_rotation=False, flip=0, flip_vertical=False,
                       n_eta=33, n_phi=31, d_eta=0.1, d_phi=0.2, maxima_dr=0.3)
    assert p.dtype == np.float64 and p.shape == (len(K.IMAGE_PARAMS),)
    assert p[K.P_N_OE] == 33 and p[K.P_N_OP] == 31 and p[K.P_FAST_PATHS] == 1 and p[K.P_BOOST] == 1
    assert p[K.P_D_PHI] == 0.2
    with pytest.raises(ValueError, match="unknown parameter.*'npix'"):
        K.image_params(npix=3)
    with pytest.raises(ValueError, match="missing parameter.*coord"):
        K.image_params(centre=2)
