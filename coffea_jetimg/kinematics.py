"""Lorentz kinematics on arrays, outside numba: the one numpy home of E, p4, φ wrapping, rapidity.

Every function works elementwise on numpy arrays and scalars and broadcasts; :func:`energy` and
:func:`wrap_phi` also take awkward arrays of any jaggedness (numpy's ufunc dispatch), the others
convert to float64 numpy arrays.
Names follow the coordinates they take and give, as EnergyFlow's ``p4s_from_ptyphims`` does:

* :func:`energy` ``E(pT, η, m) = sqrt((pT cosh η)² + m²)``;
* :func:`p4_from_ptetaphim` ``(pT, η, φ, m) → (E, px, py, pz)`` and its inverse
  :func:`ptetaphim_from_p4`;
* :func:`wrap_phi` into (-π, π], :func:`delta_phi` and :func:`delta_r` (ΔR in the coordinates
  given: pass rapidities for FastJet's ΔR, pseudorapidities for NanoAOD's);
* :func:`rapidity` ``y(pT, η, m)`` and :func:`rapidity_from_p4` ``y(E, pz)``.

Units: GeV for momenta, energies and masses, rad for φ. The numba kernels
(:mod:`coffea_jetimg._kernels`) have their own scalar versions of the same formulas
(``energy``, ``p4``, ``wrap_phi``, ``rapidity``, ``rapidity_from_ep`` there), inlined into the
per-constituent loops; ``tests/test_kinematics.py`` checks both sides against each other and
against ``vector`` (through coffea's behaviours).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "energy", "p4_from_ptetaphim", "ptetaphim_from_p4", "wrap_phi", "delta_phi", "delta_r",
    "rapidity", "rapidity_from_p4",
]

ArrayLike = Any  # numpy or awkward arrays, or scalars


def energy(pt: ArrayLike, eta: ArrayLike, mass: ArrayLike) -> ArrayLike:
    """Energy ``sqrt((pT cosh η)² + m²)`` (GeV) of particles given by (pT, η, m)."""
    return np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)


def p4_from_ptetaphim(pt: ArrayLike, eta: ArrayLike, phi: ArrayLike, mass: ArrayLike):
    """Cartesian 4-momenta ``(E, px, py, pz)`` (GeV) from (pT, η, φ, m).

    Inputs are converted to float64 (a float32 branch gives float64 4-vectors, as FastJet
    needs). ``E = sqrt((pT cosh η)² + m²)``, so a massless particle has ``E = |p|`` up to rounding.
    """
    pt = np.asarray(pt, np.float64)
    eta = np.asarray(eta, np.float64)
    phi = np.asarray(phi, np.float64)
    mass = np.asarray(mass, np.float64)
    return energy(pt, eta, mass), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)


def ptetaphim_from_p4(e: ArrayLike, px: ArrayLike, py: ArrayLike, pz: ArrayLike):
    """``(pT, η, φ, m)`` from Cartesian 4-momenta (numpy arrays, GeV).

    A particle along the beam (pT = 0) gets η = ±10⁴ (the sign of pz; 0 for pz = 0); a
    negative m² (rounding of a massless particle) gives m = 0.
    """
    e, px, py, pz = (np.asarray(a, np.float64) for a in (e, px, py, pz))
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), np.sign(pz) * 1e4))
    phi = np.arctan2(py, px)
    m2 = e * e - px * px - py * py - pz * pz
    return pt, eta, phi, np.sqrt(np.maximum(m2, 0.0))


def wrap_phi(phi: ArrayLike) -> ArrayLike:
    """Azimuthal angles (or differences) wrapped into (-π, π] (rad), for any finite input value."""
    w = np.pi - np.mod(np.pi - phi, 2 * np.pi)
    # mod rounds to 2π for π - phi just below 0 (phi one ulp above π): that gives -π, moved to π
    return np.where(w <= -np.pi, w + 2 * np.pi, w) if not hasattr(w, "layout") else w + 2 * np.pi * (w <= -np.pi)


def delta_phi(phi1: ArrayLike, phi2: ArrayLike) -> ArrayLike:
    """``φ1 - φ2`` wrapped into (-π, π]; broadcasts."""
    return wrap_phi(np.asarray(phi1) - np.asarray(phi2))


def delta_r(y1: ArrayLike, phi1: ArrayLike, y2: ArrayLike, phi2: ArrayLike) -> ArrayLike:
    """``ΔR = sqrt(Δy² + Δφ²)`` with Δφ wrapped; ``y`` is η or rapidity, as given; broadcasts."""
    dy = np.asarray(y1) - np.asarray(y2)
    dphi = delta_phi(phi1, phi2)
    return np.sqrt(dy * dy + dphi * dphi)


def rapidity(pt: ArrayLike, eta: ArrayLike, mass: ArrayLike) -> ArrayLike:
    """Rapidity ``y = asinh(pT sinh η / mT)``, ``mT = sqrt(pT² + m²)``, of (pT, η, m) particles.

    Exactly η for massless particles and where ``mT = 0`` (pT = m = 0), as in the kernels.
    """
    pt = np.asarray(pt, np.float64)
    eta = np.asarray(eta, np.float64)
    mass = np.asarray(mass, np.float64)
    mt = np.sqrt(pt * pt + mass**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.arcsinh(pt * np.sinh(eta) / mt)
    return np.where((mass != 0) & (mt > 0), y, eta)


def rapidity_from_p4(e: ArrayLike, pz: ArrayLike) -> ArrayLike:
    """Rapidity ``y = ½ ln((E + pz) / (E - pz))`` from energy and pz (GeV).

    Where ``E <= |pz|`` (no rapidity: along the beam, or rounding) ±1e5 with the sign of pz (0
    for pz = 0), as the kernels' ``rapidity_from_ep``.
    """
    e = np.asarray(e, np.float64)
    pz = np.asarray(pz, np.float64)
    ok = e - np.abs(pz) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log((e + pz) / (e - pz))
    return np.where(ok, y, np.copysign(1e5, pz) * (pz != 0))
