"""Numba kernels on flat numpy buffers: jet images, event images, constituent 4-vectors.

Layer 1 of the design (see ``DESIGN.md``): every kernel takes plain numpy arrays
``(offsets, content..., out, params)``, writes into a preallocated ``out`` and returns nothing
(or small buffers). No awkward import here; the adapters in :mod:`coffea_jetimg.images`,
:mod:`coffea_jetimg.event_images` and :mod:`coffea_jetimg.lorentz` unpack the jagged arrays once
and rebuild the results.

Conventions
-----------
* ``offsets`` : int64, shape ``(n_jets + 1,)``; jet ``i`` owns candidates ``offsets[i]:offsets[i+1]``.
* pt, mass, energies in GeV; eta, rapidity dimensionless; phi in rad.
* Azimuthal differences are always wrapped to (-π, π] by :func:`wrap_phi` (or by one step of
  :func:`wrap_phi_once` where the inputs are known to lie in (-3π, 3π)).
* The kinematic helpers here (:func:`energy`, :func:`p4`, :func:`p4_sum`,
  :func:`ptetaphi_from_p3`, :func:`rapidity`, :func:`rapidity_from_ep`, :func:`wrap_phi`) are the numba side of
  :mod:`coffea_jetimg.kinematics` (the numpy side, same formulas); every kernel of the package
  (images, 4-vectors, features, substructure) uses them, inlined into its loops.
* Image parameters travel as one float64 array (:func:`image_params`, layout
  :data:`IMAGE_PARAMS`), unpacked once per kernel call by :func:`_unpack_params`.
* Jet-image pixel convention: along an axis with ``n`` pixels of size ``d`` the image centre is
  the *centre* of pixel ``n // 2`` (odd and even ``n``); a coordinate ``u`` (relative to the
  centre) falls in pixel ``floor(u / d + 0.5) + n // 2``. For odd ``n`` the grid is symmetric;
  for even ``n`` it reaches half a pixel further on the low side. (Same as EnergyFlow's
  ``pixelate``.)
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "wrap_phi",
    "wrap_phi_once",
    "energy",
    "p4",
    "p4_sum",
    "ptetaphi_from_p3",
    "rapidity",
    "rapidity_from_ep",
    "IMAGE_PARAMS",
    "image_params",
    "jet_images_kernel",
    "transform_constituents_kernel",
    "constituent_p4s_kernel",
    "constituent_features_kernel",
    "draw_rings_kernel",
    "fill_floor_kernel",
]

PI = math.pi
TWO_PI = 2.0 * math.pi
# heavier-half flips: a constituent within this distance of the axis belongs to neither half. The
# constituent that defines the centre (maximum 1) sits there up to rounding (w u / w != u in
# floating point), and its sign would otherwise decide on rounding noise.
ON_AXIS = 1e-9

# mode codes shared with the adapters
COORD_ETA, COORD_RAPIDITY = 0, 1
CENTRE_NONE, CENTRE_JET_AXIS, CENTRE_CENTROID, CENTRE_LEADING, CENTRE_HARDEST_PIXEL = 0, 1, 2, 3, 4
ROT_NONE, ROT_PRINCIPAL, ROT_SECOND_MAX = 0, 1, 2
FLIP_NONE, FLIP_THIRD_MAX, FLIP_HEAVIER_HALF = 0, 1, 2
NORM_NONE, NORM_SUM, NORM_SUM_ALL, NORM_MAX = 0, 1, 2, 3

#: Layout of the packed image parameters (``params`` of :func:`jet_images_kernel` and
#: :func:`transform_constituents_kernel`): a float64 array, ``params[i]`` the value of
#: ``IMAGE_PARAMS[i]`` (codes and counts as whole numbers, flags as 0/1). ``fast_paths`` 0 sends
#: every recipe through the general loop (for benchmarks of the fast paths).
IMAGE_PARAMS = ("coord", "centre", "boost", "rotation", "pixel_rotation", "flip", "flip_vertical", "norm",
                "threshold", "n_eta", "n_phi", "d_eta", "d_phi", "n_oe", "n_op", "tower_k", "maxima_dr", "fast_paths")
(P_COORD, P_CENTRE, P_BOOST, P_ROTATION, P_PIXEL_ROTATION, P_FLIP, P_FLIP_VERTICAL, P_NORM, P_THRESHOLD, P_N_ETA,
 P_N_PHI, P_D_ETA, P_D_PHI, P_N_OE, P_N_OP, P_TOWER_K, P_MAXIMA_DR, P_FAST_PATHS) = range(len(IMAGE_PARAMS))
_PARAM_DEFAULTS = {"norm": NORM_NONE, "threshold": 0.0, "tower_k": 0, "fast_paths": 1}


def image_params(**values) -> np.ndarray:
    """The packed parameter array of the image kernels, from ``IMAGE_PARAMS`` names.

    ``norm``, ``threshold``, ``tower_k`` (unused by :func:`transform_constituents_kernel`) and
    ``fast_paths`` have defaults (none, 0, 0, on); ``n_oe``, ``n_op`` default to ``n_eta``,
    ``n_phi``. Unknown or missing names raise ``ValueError``.
    """
    vals: dict = dict(_PARAM_DEFAULTS)
    vals.setdefault("n_oe", values.get("n_eta"))
    vals.setdefault("n_op", values.get("n_phi"))
    unknown = sorted(set(values) - set(IMAGE_PARAMS))
    if unknown:
        raise ValueError(f"image_params: unknown parameter(s) {unknown}; the layout is {IMAGE_PARAMS}")
    vals.update(values)
    missing = [k for k in IMAGE_PARAMS if vals.get(k) is None]
    if missing:
        raise ValueError(f"image_params: missing parameter(s) {missing}")
    return np.array([float(vals[k]) for k in IMAGE_PARAMS], dtype=np.float64)


@numba.njit(cache=True, inline="always")
def _unpack_params(params):
    """The typed values of a packed parameter array (see :data:`IMAGE_PARAMS`), in its order."""
    return (np.int64(params[P_COORD]), np.int64(params[P_CENTRE]), params[P_BOOST] != 0.0,
            np.int64(params[P_ROTATION]), params[P_PIXEL_ROTATION] != 0.0, np.int64(params[P_FLIP]),
            params[P_FLIP_VERTICAL] != 0.0, np.int64(params[P_NORM]), params[P_THRESHOLD],
            np.int64(params[P_N_ETA]), np.int64(params[P_N_PHI]), params[P_D_ETA], params[P_D_PHI],
            np.int64(params[P_N_OE]), np.int64(params[P_N_OP]), np.int64(params[P_TOWER_K]), params[P_MAXIMA_DR],
            params[P_FAST_PATHS] != 0.0)


# feature codes for constituent_features_kernel
F_DETA, F_DPHI, F_LOG_PT, F_LOG_E, F_LOG_PT_REL, F_LOG_E_REL, F_DR, F_CHARGE, F_PT, F_E, F_ETA, F_PHI = range(12)


# ----------------------------------------------------------------------------- kinematics
@numba.njit(cache=True, inline="always")
def wrap_phi_once(d):
    """One branch-free step of :func:`wrap_phi`: ``d ∓ 2π`` where ``d`` is outside (-π, π].

    Exact (the same value as :func:`wrap_phi`) for ``d`` in (-3π, 3π), e.g. a difference of two
    wrapped angles; vectorises. Callers that cannot promise the range test the result
    (``d > PI or d <= -PI``) and fall back to :func:`wrap_phi`."""
    d = d - TWO_PI if d > PI else d
    return d + TWO_PI if d <= -PI else d


@numba.njit(cache=True, inline="always")
def wrap_phi(d):
    """Wrap an azimuthal angle or difference (rad) into (-π, π], for any value."""
    d = wrap_phi_once(d)  # differences of two wrapped angles: done
    if d > PI or d <= -PI:
        d = d - TWO_PI * math.floor((d + PI) / TWO_PI)  # [-π, π)
        if d <= -PI:
            d += TWO_PI
    return d


@numba.njit(cache=True, inline="always")
def _sinh(x):
    """sinh with one exp (absolute error ~1e-16 near 0, which is all pixel coordinates need)."""
    ex = math.exp(x)
    return 0.5 * (ex - 1.0 / ex)


@numba.njit(cache=True, inline="always")
def _asinh(x):
    """asinh with one log and one sqrt, odd by construction (absolute error ~1e-16)."""
    a = abs(x)
    r = math.log(a + math.sqrt(a * a + 1.0))
    return r if x >= 0.0 else -r


@numba.njit(cache=True, inline="always")
def rapidity(pt, eta, m):
    """Rapidity of a (pt, eta, m) particle: asinh(pt sinh(eta) / mT), mT = sqrt(pt² + m²);
    eta itself for massless particles and where mT = 0."""
    if m == 0.0:
        return np.float64(eta)
    mt = math.sqrt(pt * pt + m * m)
    if mt <= 0.0:
        return np.float64(eta)
    return _asinh(pt * _sinh(eta) / mt)


@numba.njit(cache=True, inline="always")
def rapidity_from_ep(e, pz):
    """Rapidity ½ ln((E + pz) / (E - pz)) of a 4-vector (e.g. a jet's sum); where E <= |pz|
    (no rapidity) ±1e5 with the sign of pz (0 for pz = 0). Callers that need to know test
    ``e > abs(pz)`` themselves."""
    if e - abs(pz) <= 0.0:
        return 0.0 if pz == 0.0 else math.copysign(1e5, pz)
    return 0.5 * math.log((e + pz) / (e - pz))


@numba.njit(cache=True, inline="always")
def energy(pt, eta, m):
    """Energy sqrt((pt cosh eta)² + m²) (GeV), cosh from one exp (as :func:`p4`)."""
    ex = math.exp(np.float64(eta))
    ch = 0.5 * (ex + 1.0 / ex)
    w = np.float64(pt)
    return math.sqrt(w * w * ch * ch + np.float64(m) * m)


@numba.njit(cache=True, inline="always")
def p4(pt, eta, phi, m):
    """(E, px, py, pz) (GeV, float64) of a (pt, eta, phi, m) particle.

    cosh and sinh of eta come from one exp: pz = pt (e - 1/e) / 2 has an absolute error of
    ~1e-16 pt near eta = 0 (a relative one of ~1e-16 elsewhere), which nothing downstream sees."""
    ex = math.exp(np.float64(eta))
    rex = 1.0 / ex
    ch = 0.5 * (ex + rex)
    w = np.float64(pt)
    return (math.sqrt(w * w * ch * ch + np.float64(m) * m), w * math.cos(phi), w * math.sin(phi),
            w * (0.5 * (ex - rex)))


@numba.njit(cache=True, inline="always")
def ptetaphi_from_p3(px, py, pz):
    """(pT, eta, phi) of a momentum, e.g. a jet's sum; eta is 0 where pT = 0 (no direction:
    callers that must know test pT). The numba side of ``kinematics.ptetaphim_from_p4``."""
    ptj = math.sqrt(px * px + py * py)
    return ptj, (math.asinh(pz / ptj) if ptj > 0.0 else 0.0), math.atan2(py, px)


@numba.njit(cache=True, inline="always")
def p4_sum(o, n, pt, eta, phi, mass):
    """(E, px, py, pz) summed over particles ``o .. o+n-1`` (``o`` a ``np.uint64`` offset: see the
    note on indexing above :func:`_centroid_sums`)."""
    en = 0.0
    px = 0.0
    py = 0.0
    pz = 0.0
    for k in range(n):
        j = o + np.uint64(k)
        e, x, y, z = p4(pt[j], eta[j], phi[j], mass[j])
        en += e
        px += x
        py += y
        pz += z
    return en, px, py, pz


@numba.njit(cache=True, inline="always")
def _cell(x, y, n_x, n_y):
    """Pixel ``floor(x) * n_y + floor(y)`` (int32) of a grid of ``n_x`` × ``n_y`` pixels, or -1 when outside.

    ``x``, ``y`` are pixel coordinates with every offset already added (``u / d + 0.5 + h``).
    All in float64 until one final conversion: the window test is ``0 <= x < n_x`` (the same as
    ``0 <= floor(x) < n_x``; NaN is outside), the index ``floor(x) * n_y + floor(y)`` is exact in
    float64, and the -1 is selected before the conversion to int32. Numba types int32 arithmetic
    as int64, which AVX2 has no vector multiply for, so an integer form (``int32(x + 1) - 1``
    per axis) would spend part of the binning pass emulating it. Branch-free; inlined."""
    inside = (x >= 0.0) & (x < n_x) & (y >= 0.0) & (y < n_y)
    q = np.floor(x) * n_y + np.floor(y)
    return np.int32(q if inside else -1.0)


@numba.njit(cache=True, inline="always")
def _to_twelve(u, v):
    """(cos θ, sin θ) of the rotation that takes (u, v) ≠ 0 to 12 o'clock (+v):
    θ = π/2 − atan2(v, u), so cos θ = v / r and sin θ = u / r, with no atan2, cos or sin."""
    r = math.sqrt(u * u + v * v)
    return v / r, u / r


@numba.njit(cache=True, inline="always")
def _eta_after_boost(pt, eta, m, ch_dy, sh_dy, dy):
    """Pseudorapidity after a longitudinal boost that shifts rapidities by ``-dy``.

    pT and mass are unchanged; sinh(eta') = pz'/pT = (mT/pT) sinh(y - dy)
    = sinh(eta) cosh(dy) - sqrt(m²/pT² + cosh²(eta)) sinh(dy). Massless: eta' = eta - dy.
    ``ch_dy, sh_dy`` are cosh(dy), sinh(dy) (per jet). One exp, one log, two sqrt per massive
    constituent.
    """
    if m == 0.0 or pt <= 0.0:
        return eta - dy
    she = _sinh(eta)
    r = m / pt
    return _asinh(she * ch_dy - math.sqrt(r * r + 1.0 + she * she) * sh_dy)


@numba.njit(cache=True)
def _leading(o, n, pt):
    """Position k (``np.uint64``) of the hardest of constituents ``o .. o+n-1``, the first one on
    ties (n >= 1)."""
    lead = np.uint64(0)
    for k in range(1, n):
        kk = np.uint64(k)
        lead = kk if pt[o + kk] > pt[o + lead] else lead
    return lead


@numba.njit(cache=True)
def _constituent_axis(o, n, pt, eta, phi, mass, coord, phi_ref):
    """Jet axis from the 4-vector sum of constituents ``o .. o+n-1``: (ok, x, dphi) with x the
    axis eta (or rapidity) and dphi = phi_axis - phi_ref wrapped. ok = 2: both valid; 1: only
    dphi (rapidity of a sum with E <= |pz|); 0: neither (zero pT sum). The callers then take the
    leading constituent's coordinates. Shared by the general and the fast path: same centre."""
    en, px, py, pz = p4_sum(o, n, pt, eta, phi, mass)
    ptj, etaj, phij = ptetaphi_from_p3(px, py, pz)
    if not ptj > 0.0:
        return 0, 0.0, 0.0
    cp = wrap_phi(phij - phi_ref)
    if coord == COORD_ETA:
        return 2, etaj, cp
    if en > abs(pz):
        return 2, rapidity_from_ep(en, pz), cp
    return 1, 0.0, cp


@numba.njit(cache=True, inline="always")
def _coords_and_centre(s, n, pt, eta, phi, mass, coord, centre, axis_eta, axis_phi, i, su, sv):
    """Fill su (eta or rapidity), sv (phi - phi_ref, wrapped); return (cx, cp, phi_ref).

    (cx, cp) is the centre in (coordinate, phi - phi_ref) for the centring modes that do not need
    pixel maxima (hardest_pixel starts from the jet axis).
    """
    lead = s + np.int64(_leading(np.uint64(s), n, pt))
    # any constituent is a good reference to unwrap the jet's phi (jets are narrower than π)
    phi_ref = phi[s] if centre != CENTRE_NONE else 0.0
    for k in range(n):
        j = s + k
        if coord == COORD_ETA:
            su[k] = eta[j]
        else:
            su[k] = rapidity(pt[j], eta[j], mass[j])
        sv[k] = wrap_phi(phi[j] - phi_ref)
    cx = 0.0
    cp = 0.0
    if centre == CENTRE_JET_AXIS or centre == CENTRE_HARDEST_PIXEL:
        if axis_eta.shape[0] > 0:
            cx = axis_eta[i]
            cp = wrap_phi(axis_phi[i] - phi_ref)
        else:
            ok, cx, cp = _constituent_axis(np.uint64(s), n, pt, eta, phi, mass, coord, phi_ref)
            if ok == 0:
                cx = su[lead - s]
                cp = sv[lead - s]
            elif ok == 1:
                cx = su[lead - s]
    elif centre == CENTRE_CENTROID:
        sw = 0.0
        for k in range(n):
            w = pt[s + k]
            sw += w
            cx += w * su[k]
            cp += w * sv[k]
        if sw > 0.0:
            cx /= sw
            cp /= sw
        else:
            cx = su[lead - s]
            cp = sv[lead - s]
    elif centre == CENTRE_LEADING:
        cx = su[lead - s]
        cp = sv[lead - s]
    return cx, cp, phi_ref


@numba.njit(cache=True, inline="always")
def _shift(s, n, pt, mass, coord, boost, su, sv, cx, cp):
    """Move the centre (cx, cp) to (0, 0): a longitudinal boost or a plain translation."""
    ch_dy = math.cosh(cx)
    sh_dy = math.sinh(cx)
    for k in range(n):
        j = s + k
        if coord == COORD_ETA and boost:
            su[k] = _eta_after_boost(pt[j], su[k], mass[j], ch_dy, sh_dy, cx)
        else:
            su[k] = su[k] - cx
        sv[k] = wrap_phi(sv[k] - cp)


@numba.njit(cache=True, inline="always")
def _maxima(i, s, n, pt, su, sv, n_eta, n_phi, d_eta, d_phi, min_dr, gacc, gtouched, res):
    """Up to three maxima of the pT image on the computation grid.

    Pixels are binned as in the image; the position of a maximum is the pT-weighted mean
    position of the constituents in that pixel. Maximum 1 is the hardest pixel, maximum 2 the
    hardest pixel farther than ``min_dr`` from maximum 1, maximum 3 the hardest farther than
    ``min_dr`` from both. ``res`` (3, 3) receives (found, u, v); returns the number found.
    """
    nt = 0
    be = 0.5 + n_eta // 2
    bp = 0.5 + n_phi // 2
    inv_de = 1.0 / d_eta
    inv_dp = 1.0 / d_phi
    for k in range(n):
        p = _cell(su[k] * inv_de + be, sv[k] * inv_dp + bp, n_eta, n_phi)
        if p < 0:
            continue
        w = pt[s + k]
        if gacc[p, 0] != i:
            gacc[p, 0] = i
            gacc[p, 1] = w
            gacc[p, 2] = w * su[k]
            gacc[p, 3] = w * sv[k]
            gtouched[nt] = p
            nt += 1
        else:
            gacc[p, 1] += w
            gacc[p, 2] += w * su[k]
            gacc[p, 3] += w * sv[k]
    # positions once: the pT-weighted mean position of each touched pixel
    best = -1
    bw = 0.0
    for t in range(nt):
        p = gtouched[t]
        w = gacc[p, 1]
        d = w if w != 0.0 else 1.0  # a zero-pT pixel (zero-pT constituents) is never a maximum
        gacc[p, 2] /= d
        gacc[p, 3] /= d
        if w > bw:
            best = p
            bw = w
    for m in range(3):
        res[m, 0] = 0.0
    if best < 0:
        return 0
    res[0, 0] = 1.0
    res[0, 1] = gacc[best, 2]
    res[0, 2] = gacc[best, 3]
    nfound = 1
    dr2 = min_dr * min_dr
    for m in range(1, 3):
        best = -1
        bw = 0.0
        for t in range(nt):
            p = gtouched[t]
            w = gacc[p, 1]
            if w <= bw:
                continue
            ok = True
            for q in range(nfound):
                du = gacc[p, 2] - res[q, 1]
                dv = gacc[p, 3] - res[q, 2]
                if du * du + dv * dv <= dr2:
                    ok = False
            if ok:
                best = p
                bw = w
        if best < 0:
            break
        res[m, 0] = 1.0
        res[m, 1] = gacc[best, 2]
        res[m, 2] = gacc[best, 3]
        nfound += 1
    return nfound


@numba.njit(cache=True, inline="always")
def _prepare_jet(i, s, n, pt, eta, phi, mass, axis_eta, axis_phi, su, sv, params, gacc, gtouched, res):
    """Centre, rotate (coordinates) and flip one jet in place in su, sv (``params``: see
    :data:`IMAGE_PARAMS`).

    Returns the angle (rad) still to apply to the *image* when ``pixel_rotation`` (else 0).
    """
    (coord, centre, boost, rotation, pixel_rotation, flip, flip_vertical, _, _, n_eta, n_phi, d_eta, d_phi,
     _, _, _, maxima_dr, _) = _unpack_params(params)
    hardest = centre == CENTRE_HARDEST_PIXEL
    # hardest_pixel: search the maxima around the pT centroid (moved there by translation), then
    # move maximum 1 to the centre with one boost (or translation) by the total shift
    c0 = CENTRE_CENTROID if hardest else centre
    cx, cp, _ = _coords_and_centre(s, n, pt, eta, phi, mass, coord, c0, axis_eta, axis_phi, i, su, sv)
    if hardest:
        _shift(s, n, pt, mass, coord, False, su, sv, cx, cp)
    elif centre != CENTRE_NONE:
        _shift(s, n, pt, mass, coord, boost, su, sv, cx, cp)
    need_max = hardest or rotation == ROT_SECOND_MAX or flip == FLIP_THIRD_MAX
    nmax = 0
    if need_max:
        nmax = _maxima(i, s, n, pt, su, sv, n_eta, n_phi, d_eta, d_phi, maxima_dr, gacc, gtouched, res)
    if hardest:
        mu = res[0, 1] if nmax > 0 else 0.0
        mv = res[0, 2] if nmax > 0 else 0.0
        if coord == COORD_ETA and boost:
            dy = cx + mu
            ch_dy = math.cosh(dy)
            sh_dy = math.sinh(dy)
            for k in range(n):
                j = s + k
                su[k] = _eta_after_boost(pt[j], eta[j], mass[j], ch_dy, sh_dy, dy)
                sv[k] = wrap_phi(sv[k] - mv)
        else:
            _shift(s, n, pt, mass, coord, False, su, sv, mu, mv)
        for m in range(nmax):
            res[m, 1] -= mu
            res[m, 2] = wrap_phi(res[m, 2] - mv)
    theta = 0.0
    if rotation == ROT_PRINCIPAL:
        sw = 0.0
        mu = 0.0
        mv = 0.0
        for k in range(n):
            w = pt[s + k]
            sw += w
            mu += w * su[k]
            mv += w * sv[k]
        if sw > 0.0:
            mu /= sw
            mv /= sw
            suu = 0.0
            svv = 0.0
            suv = 0.0
            for k in range(n):
                w = pt[s + k]
                du = su[k] - mu
                dv = sv[k] - mv
                suu += w * du * du
                svv += w * dv * dv
                suv += w * du * dv
            if suu + svv > 0.0:
                alpha = 0.5 * math.atan2(2.0 * suv, suu - svv)  # major axis angle from +u
                theta = 0.5 * PI - alpha
    c = math.cos(theta)
    sn = math.sin(theta)
    if rotation == ROT_SECOND_MAX:
        if nmax >= 2 and (res[1, 1] != 0.0 or res[1, 2] != 0.0):
            c, sn = _to_twelve(res[1, 1], res[1, 2])
            theta = math.atan2(sn, c)  # for the pixel-space rotation
    # flip decisions are taken in the rotated frame
    flip_u = False
    flip_v = False
    if flip == FLIP_THIRD_MAX:
        if nmax >= 3:
            u3 = c * res[2, 1] - sn * res[2, 2]
            flip_u = u3 < 0.0
    if flip == FLIP_HEAVIER_HALF or flip_vertical:
        left = 0.0
        right = 0.0
        down = 0.0
        up = 0.0
        for k in range(n):
            w = pt[s + k]
            u = c * su[k] - sn * sv[k]
            v = sn * su[k] + c * sv[k]
            if u < -ON_AXIS:
                left += w
            elif u > ON_AXIS:
                right += w
            if v < -ON_AXIS:
                down += w
            elif v > ON_AXIS:
                up += w
        if flip == FLIP_HEAVIER_HALF:
            flip_u = left > right
        if flip_vertical:
            flip_v = down > up
    fu = -1.0 if flip_u else 1.0
    fv = -1.0 if flip_v else 1.0
    if not pixel_rotation:
        if theta != 0.0 or flip_u or flip_v:
            for k in range(n):
                u = c * su[k] - sn * sv[k]
                v = sn * su[k] + c * sv[k]
                su[k] = fu * u
                sv[k] = fv * v
        return 0.0
    # pixel mode: reflect the coordinates now, rotate the image later. F R(θ) = R(-θ) F for a
    # single reflection, R(θ) F for none or both.
    if flip_u or flip_v:
        for k in range(n):
            su[k] = fu * su[k]
            sv[k] = fv * sv[k]
    if flip_u != flip_v:
        return -theta
    return theta


@numba.njit(cache=True)
def _rotate_image(out, i, n_ch, n_e, n_p, d_eta, d_phi, theta, tmp):
    """Rotate image ``out[i]`` by ``theta`` about the centre pixel with bilinear interpolation."""
    npx = n_e * n_p
    for ch in range(n_ch):
        for p in range(npx):
            tmp[ch, p] = out[i, ch, p]
            out[i, ch, p] = 0.0
    c = math.cos(theta)
    sn = math.sin(theta)
    h_e = n_e // 2
    h_p = n_p // 2
    for a in range(n_e):
        du = (a - h_e) * d_eta
        for b in range(n_p):
            dv = (b - h_p) * d_phi
            # source point = R(-theta) (du, dv)
            su = c * du + sn * dv
            sv = -sn * du + c * dv
            fa = su / d_eta + h_e
            fb = sv / d_phi + h_p
            a0 = int(math.floor(fa))
            b0 = int(math.floor(fb))
            ta = fa - a0
            tb = fb - b0
            for da in range(2):
                aa = a0 + da
                if aa < 0 or aa >= n_e:
                    continue
                wa = ta if da == 1 else 1.0 - ta
                for db in range(2):
                    bb = b0 + db
                    if bb < 0 or bb >= n_p:
                        continue
                    wb = tb if db == 1 else 1.0 - tb
                    wgt = wa * wb
                    if wgt == 0.0:
                        continue
                    for ch in range(n_ch):
                        out[i, ch, a * n_p + b] += wgt * tmp[ch, aa * n_p + bb]


# Indexing in the fast kernels below. Numba wraps negative indices, so ``pt[s + k]`` (a signed
# ``s`` that LLVM cannot prove >= 0) costs a select per access and turns every vector load into
# four scalar loads; and a per-jet view (``pt[s:e]``) handed to another function costs an atomic
# reference-count increment and decrement per jet. So the per-jet loops take the whole arrays
# with an unsigned offset ``o`` (``np.uint64``: no wrap, contiguous vector loads) and index
# scratch arrays with the loop counter (see also the scatters' note on reference counts).
@numba.njit(cache=True, fastmath={"reassoc", "nsz"})
def _centroid_sums(x, xo, pt, phi, o, n, ref, dphi):
    """pT sums of constituents ``o .. o+n-1`` of one jet (coordinate ``x[xo + k]``): (sum w,
    sum w x, sum w dphi, n_bad); dphi = phi - ref wrapped by one step (exact for wrapped inputs),
    also stored in ``dphi[k]`` for the binning pass; n_bad counts constituents that one step does
    not wrap (the caller then redoes the jet with :func:`wrap_phi`). Branch-free: vectorises."""
    sw = 0.0
    sx = 0.0
    sp = 0.0
    nbad = 0
    for k in range(n):
        kk = np.uint64(k)
        w = np.float64(pt[o + kk])
        d = wrap_phi_once(np.float64(phi[o + kk]) - ref)
        nbad += 1 if (d > PI or d <= -PI) else 0
        dphi[k] = d
        sw += w
        sx += w * x[xo + kk]
        sp += w * d
    return sw, sx, sp, nbad


@numba.njit(cache=True, fastmath={"reassoc", "nsz"})
def _pixels_fast(x, xo, dphi, n, cx, cp, inv_de, inv_dp, be, bp, n_oe, n_op, pix, weights, o):
    """Output pixel of each constituent of one jet (-1: outside the window), branch-free; returns
    the sum of the first channel's weights (``weights[0, o + k]``) over the constituents inside.

    u = x[xo + k] - cx, v = dphi[k] - cp wrapped by one step (``dphi``: phi - ref wrapped, from
    :func:`_centroid_sums`; exact for wrapped inputs, the caller checked), pixel =
    floor(u / d + be), floor(v / d + bp) on the output grid (:func:`_cell`)."""
    t = 0.0
    for k in range(n):
        kk = np.uint64(k)
        u = x[xo + kk] - cx
        v = wrap_phi_once(dphi[k] - cp)
        q = _cell(u * inv_de + be, v * inv_dp + bp, n_oe, n_op)
        pix[k] = q
        t += np.float64(weights[0, o + kk]) if q >= 0 else 0.0
    return t


@numba.njit(cache=True, fastmath={"reassoc", "nsz"})
def _pixels_slow(x, xo, phi, o, n, ref, cx, cp, inv_de, inv_dp, be, bp, n_oe, n_op, pix, weights):
    """As :func:`_pixels_fast` with a full phi wrap, from ``phi`` (inputs not wrapped to (-π, π])."""
    t = 0.0
    for k in range(n):
        kk = np.uint64(k)
        u = x[xo + kk] - cx
        v = wrap_phi(wrap_phi(phi[o + kk] - ref) - cp)
        q = _cell(u * inv_de + be, v * inv_dp + bp, n_oe, n_op)
        pix[k] = q
        t += np.float64(weights[0, o + kk]) if q >= 0 else 0.0
    return t


@numba.njit(cache=True, fastmath={"reassoc", "nsz"})
def _pixels_rotated(u, v, n, mu, mv, c, sn, fu, inv_de, inv_dp, be, bp, n_oe, n_op, pix, weights, o):
    """As :func:`_pixels_fast` for coordinates (``u[k] - mu``, ``v[k] - mv`` wrapped by one step)
    rotated by (cos, sin) = (c, sn) and flipped in u by ``fu`` (±1)."""
    t = 0.0
    for k in range(n):
        uu = u[k] - mu
        vv = wrap_phi_once(v[k] - mv)
        ru = c * uu - sn * vv
        rv = sn * uu + c * vv
        q = _cell(fu * ru * inv_de + be, rv * inv_dp + bp, n_oe, n_op)
        pix[k] = q
        t += np.float64(weights[0, o + np.uint64(k)]) if q >= 0 else 0.0
    return t


@numba.njit(cache=True, fastmath={"reassoc", "nsz"})
def _channel_sum(weights, ch, o, n, pix):
    t = 0.0
    for k in range(n):
        t += np.float64(weights[ch, o + np.uint64(k)]) if pix[k] >= 0 else 0.0
    return t


@numba.njit(cache=True)
def _channel_scales(weights, o, n, pix, n_ch, norm, scale, t0):
    """Per-channel sums over the constituents ``o .. o+n-1`` of one jet that landed (``pix >= 0``;
    ``t0``: the first channel's, taken in the binning pass) → ``scale[ch]`` (1 / sum for 'sum'
    normalisation, else 1). Returns the sum of their absolute values: 0 means nothing to draw
    (no constituent inside the window, or zero weights)."""
    tot = 0.0
    for ch in range(n_ch):
        t = t0 if ch == 0 else _channel_sum(weights, ch, o, n, pix)
        tot += abs(t)
        scale[ch] = 1.0 / t if (norm == NORM_SUM and t != 0.0) else 1.0
    return tot


# The scatters below are plain calls, not inlined, and have one loop and no early return: numba
# then hands their array arguments over borrowed. Inlined (``inline="always"``), or with the
# early exits of one combined function, each array argument cost an atomic reference-count
# increment and decrement per call, i.e. per jet (10 atomics per jet: a large share of the time
# of a one-constituent jet).
@numba.njit(cache=True)
def _scatter1(out, i, weights, o, n, pix, sc):
    """One channel: ``out[i, 0, pix[k]] += weights[0, o + k] * sc`` for the constituents inside."""
    for k in range(n):
        p = pix[k]
        if p >= 0:
            out[i, 0, p] += weights[0, o + np.uint64(k)] * sc


@numba.njit(cache=True)
def _scatter(out, i, weights, o, n, pix, n_ch, scale):
    """As :func:`_scatter1` for every channel, with the per-channel ``scale``."""
    for k in range(n):
        p = pix[k]
        if p >= 0:
            j = o + np.uint64(k)
            for ch in range(n_ch):
                out[i, ch, p] += weights[ch, j] * scale[ch]


@numba.njit(cache=True)
def _images_centroid(offsets, pt, eta, phi, mass, weights, axis_eta, axis_phi, out, valid, params, su, sv, pix):
    """The common case of :func:`jet_images_kernel`: move the pT centroid, the jet axis (given,
    or the constituents' 4-vector sum, as :func:`_coords_and_centre`), the leading constituent
    (or nothing) to the centre by a translation (or, with ``boost``, a longitudinal boost),
    normalise each channel to unit sum (or not). Same results, fewer and lighter passes: (1)
    centroid (branch-free, vectorised), (2) output pixel of each constituent with the first channel's sum
    (branch-free), (3) one scaled write per constituent into the zero-filled image. ``su``,
    ``sv`` (float64) and ``pix`` (int32) are scratch of the largest jet's size."""
    (coord, centre, boost, _, _, _, _, norm, _, n_eta, n_phi, d_eta, d_phi, n_oe, n_op, _, _,
     _) = _unpack_params(params)
    n_jets = offsets.shape[0] - 1
    n_ch = weights.shape[0]
    h_e = n_eta // 2
    h_p = n_phi // 2
    off_e = h_e - n_oe // 2
    off_p = h_p - n_op // 2
    inv_de = 1.0 / d_eta
    inv_dp = 1.0 / d_phi
    # pixel = floor(u / d + 0.5) + h - off
    be = 0.5 + (h_e - off_e)
    bp = 0.5 + (h_p - off_p)
    scale = np.ones(n_ch, np.float32)  # float32 products: no conversions in the scatter
    use_eta = coord == COORD_ETA
    do_boost = use_eta and boost and centre != CENTRE_NONE
    given_axis = axis_eta.shape[0] > 0
    zero = np.uint64(0)
    for i in range(n_jets):
        n = offsets[i + 1] - offsets[i]
        valid[i] = False
        if n <= 0:
            continue
        o = np.uint64(offsets[i])
        ref = np.float64(phi[o]) if centre != CENTRE_NONE else 0.0
        if not use_eta:
            for k in range(n):
                j = o + np.uint64(k)
                su[k] = rapidity(pt[j], eta[j], mass[j])
            sw, sx, sp, nbad = _centroid_sums(su, zero, pt, phi, o, n, ref, sv)
        else:
            sw, sx, sp, nbad = _centroid_sums(eta, o, pt, phi, o, n, ref, sv)
        if nbad > 0:  # phi not wrapped to (-π, π]: full wrap
            sp = 0.0
            for k in range(n):
                j = o + np.uint64(k)
                sp += pt[j] * wrap_phi(phi[j] - ref)
        if centre == CENTRE_CENTROID and sw > 0.0:
            cx = sx / sw
            cp = sp / sw
        elif centre == CENTRE_CENTROID:  # no pT: the leading (first) constituent, as the general path
            cx = su[0] if not use_eta else np.float64(eta[o])
            cp = 0.0
        elif centre == CENTRE_JET_AXIS or centre == CENTRE_LEADING:
            # as _coords_and_centre: the given axis, the constituents' 4-vector sum, or (leading
            # centring, or no usable sum) the hardest constituent, the first one on ties
            ok = 0
            cx = 0.0
            cp = 0.0
            if centre == CENTRE_JET_AXIS and given_axis:
                ok = 2
                cx = axis_eta[i]
                cp = wrap_phi(axis_phi[i] - ref)
            elif centre == CENTRE_JET_AXIS:
                ok, cx, cp = _constituent_axis(o, n, pt, eta, phi, mass, coord, ref)
            if ok < 2:
                lead = _leading(o, n, pt)
                cx = np.float64(eta[o + lead]) if use_eta else su[lead]
                if ok == 0:
                    cp = wrap_phi(phi[o + lead] - ref)
        else:
            cx = 0.0
            cp = 0.0
        if do_boost:
            # boost by cx: the new eta of each constituent; then u = su (no further shift)
            ch_dy = math.cosh(cx)
            sh_dy = math.sinh(cx)
            for k in range(n):
                j = o + np.uint64(k)
                su[k] = _eta_after_boost(pt[j], eta[j], mass[j], ch_dy, sh_dy, cx)
            cx = 0.0
        if nbad > 0:
            if use_eta and not do_boost:
                t0 = _pixels_slow(eta, o, phi, o, n, ref, cx, cp, inv_de, inv_dp, be, bp, n_oe, n_op, pix, weights)
            else:
                t0 = _pixels_slow(su, zero, phi, o, n, ref, cx, cp, inv_de, inv_dp, be, bp, n_oe, n_op, pix, weights)
        elif use_eta and not do_boost:
            t0 = _pixels_fast(eta, o, sv, n, cx, cp, inv_de, inv_dp, be, bp, n_oe, n_op, pix, weights, o)
        else:
            t0 = _pixels_fast(su, zero, sv, n, cx, cp, inv_de, inv_dp, be, bp, n_oe, n_op, pix, weights, o)
        if _channel_scales(weights, o, n, pix, n_ch, norm, scale, t0) <= 0.0:
            continue
        if n_ch == 1:
            _scatter1(out, i, weights, o, n, pix, scale[0])
        else:
            _scatter(out, i, weights, o, n, pix, n_ch, scale)
        valid[i] = True


@numba.njit(cache=True)
def _first_max(key, n):
    """Index of the first maximum of ``key[:n]`` if that maximum is > 0, else -1: the same pick
    as a running ``if key[t] > best`` scan (first one wins ties), without its loop-carried
    compare-and-select chain: the max over four interleaved running maxima (max is exact in any
    order; LLVM here does not vectorise a float max reduction, so the four chains are written
    out), then a branch-free backward search for its first index (the early-exit search it
    replaces mispredicted on its exit)."""
    m0 = 0.0
    m1 = 0.0
    m2 = 0.0
    m3 = 0.0
    n4 = n - n % 4
    for t in range(0, n4, 4):
        k0 = key[t]
        k1 = key[t + 1]
        k2 = key[t + 2]
        k3 = key[t + 3]
        m0 = k0 if k0 > m0 else m0
        m1 = k1 if k1 > m1 else m1
        m2 = k2 if k2 > m2 else m2
        m3 = k3 if k3 > m3 else m3
    for t in range(n4, n):
        k0 = key[t]
        m0 = k0 if k0 > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    mx = m2 if m2 > m0 else m0
    idx = -1
    for t in range(n - 1, -1, -1):  # branch-free: the first t with key[t] == mx
        idx = t if key[t] == mx else idx
    return idx if mx > 0.0 else -1


@numba.njit(cache=True)
def _images_maxima(offsets, pt, eta, phi, mass, weights, out, valid, params, su, sv, pix):
    """The maxima-based recipes of :func:`jet_images_kernel` (e.g. the ``deeptop`` preset): centre
    on the pT centroid or on maximum 1 (``hardest_pixel``), maximum 2 to 12 o'clock, maximum 3 (or
    the heavier half: ``wtag``) to the right, 'sum'/'none' normalisation; coordinate rotation, no
    towers, threshold or vertical flip. The same arithmetic as :func:`_prepare_jet` +
    :func:`_maxima` + the general scatter (so the same pixels; the normalisation differs by float
    rounding: channel sums are taken over constituents, as in :func:`_images_centroid`), in light
    passes per jet: (1) coordinates and centroid, (2) shift fused with the grid pixel (branch-free),
    the pT sums on a dense grid with the touched pixels listed in first-touch order, then the
    maxima search over the touched pixels only, (3) final shift, then rotation and flip fused with
    the output pixel, channel sums, (4) one scaled write per constituent. ``su, sv`` (float64) and
    ``pix`` (int32) are scratch of the largest jet's size."""
    (coord, centre, boost, rotation, _, flip, _, norm, _, n_eta, n_phi, d_eta, d_phi, n_oe, n_op, _, maxima_dr,
     _) = _unpack_params(params)
    n_jets = offsets.shape[0] - 1
    n_ch = weights.shape[0]
    ng = n_eta * n_phi
    # per grid pixel (one 32-byte row, the 4th slot padding: one cache line per touch): w, w u,
    # w v; gt lists the touched pixels in first-touch order, and per listed pixel tkey (pT), tu,
    # tv hold the sums gathered from the grid. A pixel is listed when its w sum is 0.0 before the
    # add: its first touch (a pixel touched first by zero-pT constituents is listed again; its
    # later entries gather the zeros that the first one left, and a zero-pT pixel is never a
    # maximum, so the maxima are those of the general path's per-jet marker). Grid pixel ng is the
    # sink for constituents outside the grid: its w sum is NaN, never 0.0, so it is never listed.
    nl = max(ng + 1, su.shape[0] + 1)  # listed entries: at most one per pixel, or per constituent
    gt = np.empty(nl, np.int32)
    gacc = np.zeros((ng + 1, 4), np.float64)
    gacc[ng, 0] = np.nan
    tu = np.zeros(nl, np.float64)
    tv = np.zeros(nl, np.float64)
    tkey = np.zeros(nl, np.float64)
    ng_i = np.int32(ng)
    res = np.zeros((3, 2), np.float64)
    h_e = n_eta // 2
    h_p = n_phi // 2
    off_e = h_e - n_oe // 2
    off_p = h_p - n_op // 2
    inv_de = 1.0 / d_eta
    inv_dp = 1.0 / d_phi
    gbe = 0.5 + n_eta // 2  # as _maxima
    gbp = 0.5 + n_phi // 2
    dr2 = maxima_dr * maxima_dr
    ce = 0.5 + np.float64(h_e - off_e)
    cp_ = 0.5 + np.float64(h_p - off_p)
    hardest = centre == CENTRE_HARDEST_PIXEL
    use_eta = coord == COORD_ETA
    do_boost = use_eta and boost
    scale = np.ones(n_ch, np.float32)  # float32 products: no conversions in the scatter
    for i in range(n_jets):
        s = offsets[i]
        n = offsets[i + 1] - s
        valid[i] = False
        if n <= 0:
            continue
        o = np.uint64(s)  # unsigned offset: no negative-index wrap (see the note above _centroid_sums)
        # (1) coordinates relative to phi_ref and the pT centroid (as _coords_and_centre)
        phi_ref = np.float64(phi[s])
        if use_eta:
            for k in range(n):
                su[k] = eta[o + np.uint64(k)]
        else:
            for k in range(n):
                j = o + np.uint64(k)
                su[k] = rapidity(pt[j], eta[j], mass[j])
        # sums with one branch-free wrap step (the same value as wrap_phi unless one step is not
        # enough: nbad), vectorised; the wrapped dphi lands in sv
        sw, cx, cp, nbad = _centroid_sums(su, np.uint64(0), pt, phi, o, n, phi_ref, sv)
        if nbad > 0:  # phi not wrapped to (-π, π]: full wrap
            cp = 0.0
            for k in range(n):
                j = o + np.uint64(k)
                y = wrap_phi(phi[j] - phi_ref)
                sv[k] = y
                cp += pt[j] * y
        if sw > 0.0:
            cx /= sw
            cp /= sw
        else:
            lead = _leading(o, n, pt)
            cx = su[lead]
            cp = sv[lead]
        # (2) shift to the centroid (translation; boost for centroid centring with boost) and bin
        # the pT image on the computation grid (as _shift + _maxima)
        boost_now = do_boost and not hardest
        if boost_now:
            ch_dy = math.cosh(cx)
            sh_dy = math.sinh(cx)
        else:
            ch_dy = 1.0
            sh_dy = 0.0
        nt = 0
        if boost_now:
            for k in range(n):
                j = o + np.uint64(k)
                su[k] = _eta_after_boost(pt[j], su[k], mass[j], ch_dy, sh_dy, cx)
        sx = 0.0 if boost_now else cx  # the translation, fused with the binning (x - 0.0 == x)
        nbad = 0
        for k in range(n):
            u = su[k] - sx
            su[k] = u
            v = wrap_phi_once(sv[k] - cp)
            nbad += 1 if (v > PI or v <= -PI) else 0
            sv[k] = v
            q = _cell(u * inv_de + gbe, v * inv_dp + gbp, n_eta, n_phi)
            pix[k] = q if q >= 0 else ng_i
        if nbad > 0:  # one step was not enough somewhere: the full wrap, from phi, as _shift
            for k in range(n):
                v = wrap_phi(wrap_phi(phi[o + np.uint64(k)] - phi_ref) - cp)
                sv[k] = v
                q = _cell(su[k] * inv_de + gbe, v * inv_dp + gbp, n_eta, n_phi)
                pix[k] = q if q >= 0 else ng_i
        for k in range(n):
            # accumulate on the dense grid (first touch: 0 + w, the same values as _maxima) and
            # list each pixel on its first touch, in first-touch order; the sink is never listed.
            # Dense sums instead of per-slot sums: no dependent load of the slot before the sums
            # (and one grid row per pixel keeps each pixel's sums together)
            p = np.uint64(pix[k])  # >= 0 here (the sink is ng): unsigned, no negative-index wrap
            w = np.float64(pt[o + np.uint64(k)])
            g0 = gacc[p, 0]
            gt[nt] = p
            nt += 1 if g0 == 0.0 else 0
            gacc[p, 0] = g0 + w
            gacc[p, 1] += w * su[k]
            gacc[p, 2] += w * sv[k]
        # maxima over the touched pixels, first-touched first on ties (as _maxima): gather each
        # touched pixel's sums and clear the dense grid, with maximum 1 found in the same pass;
        # positions (pT-weighted means) in a loop of their own (the divisions vectorise), then
        # maxima 2 and 3 (a candidate-by-candidate search with a data-dependent branch is slower)
        nmax = 0
        best = -1
        bw = 0.0
        for t in range(nt):
            p = np.uint64(gt[t])
            w = gacc[p, 0]
            tkey[t] = w  # the pixel's pT: the key of maxima 2 and 3 below
            tu[t] = gacc[p, 1]
            tv[t] = gacc[p, 2]
            gacc[p, 0] = 0.0
            gacc[p, 1] = 0.0
            gacc[p, 2] = 0.0
            big = w > bw
            best = t if big else best
            bw = w if big else bw
        gacc[ng, 0] = np.nan
        gacc[ng, 1] = 0.0
        gacc[ng, 2] = 0.0
        if best >= 0:
            for t in range(nt):  # positions: a separate loop, so that the divisions vectorise
                w = tkey[t]
                d = w if w != 0.0 else 1.0  # a zero-pT pixel is never a maximum
                tu[t] = tu[t] / d
                tv[t] = tv[t] / d
            res[0, 0] = tu[best]
            res[0, 1] = tv[best]
            nmax = 1
            # maximum m (2, 3): the hardest pixel farther than min_dr from every maximum before it
            # (``tkey``: the pixel's pT while it is far from all maxima so far, else 0): a
            # vectorisable pass zeroing the pixels near maximum m - 1, then _first_max (a
            # separate bool "far" array and a max reduction do not vectorise).
            for m in range(1, 3):
                ru = res[m - 1, 0]
                rv = res[m - 1, 1]
                for t in range(nt):
                    du = tu[t] - ru
                    dv = tv[t] - rv
                    tkey[t] = 0.0 if du * du + dv * dv <= dr2 else tkey[t]
                best = _first_max(tkey, nt)
                if best < 0:
                    break
                res[m, 0] = tu[best]
                res[m, 1] = tv[best]
                nmax = m + 1
        mu = 0.0
        mv = 0.0
        if hardest:
            mu = res[0, 0] if nmax > 0 else 0.0
            mv = res[0, 1] if nmax > 0 else 0.0
            for m in range(nmax):
                res[m, 0] -= mu
                res[m, 1] = wrap_phi(res[m, 1] - mv)
        c = 1.0
        sn = 0.0
        if rotation == ROT_SECOND_MAX:
            if nmax >= 2 and (res[1, 0] != 0.0 or res[1, 1] != 0.0):
                c, sn = _to_twelve(res[1, 0], res[1, 1])
        hboost = hardest and do_boost
        if hboost:
            dy = cx + mu
            ch_dy = math.cosh(dy)
            sh_dy = math.sinh(dy)
        else:
            dy = 0.0
        # (3) final coordinates → output pixel (as the general scatter), channel sums. The shift
        # to maximum 1 (hardest pixel) is fused with the binning: u - mu, and v - mv wrapped by
        # one step, which is exact here (sv and mv lie in (-π, π], so v - mv lies in (-2π, 2π)).
        su_shift = 0.0
        sv_shift = 0.0
        if hardest:
            if hboost:
                for k in range(n):
                    j = o + np.uint64(k)
                    su[k] = _eta_after_boost(pt[j], eta[j], mass[j], ch_dy, sh_dy, dy)
            else:
                su_shift = mu
            sv_shift = mv
        # flip decision in the rotated frame (as _prepare_jet)
        flip_u = False
        if flip == FLIP_THIRD_MAX and nmax >= 3:
            u3 = c * res[2, 0] - sn * res[2, 1]
            flip_u = u3 < 0.0
        elif flip == FLIP_HEAVIER_HALF:
            # pT left and right of the (rotated) vertical axis, summed in constituent order
            # with the general loop's arithmetic: the same decision
            left = 0.0
            right = 0.0
            for k in range(n):
                w = pt[o + np.uint64(k)]
                uu = su[k] - su_shift
                vv = wrap_phi_once(sv[k] - sv_shift)
                u = c * uu - sn * vv
                if u < -ON_AXIS:
                    left += w
                elif u > ON_AXIS:
                    right += w
            flip_u = left > right
        fu = -1.0 if flip_u else 1.0
        transform = c != 1.0 or sn != 0.0 or flip_u
        if transform:
            t0 = _pixels_rotated(su, sv, n, su_shift, sv_shift, c, sn, fu, inv_de, inv_dp, ce, cp_, n_oe, n_op,
                                 pix, weights, o)
        else:
            t0 = _pixels_fast(su, np.uint64(0), sv, n, su_shift, sv_shift, inv_de, inv_dp, ce, cp_, n_oe, n_op,
                              pix, weights, o)
        if _channel_scales(weights, o, n, pix, n_ch, norm, scale, t0) <= 0.0:
            continue
        if n_ch == 1:
            _scatter1(out, i, weights, o, n, pix, scale[0])
        else:
            _scatter(out, i, weights, o, n, pix, n_ch, scale)
        valid[i] = True


@numba.njit(cache=True)
def jet_images_kernel(offsets, pt, eta, phi, mass, weights, tower_mask, axis_eta, axis_phi, out, valid, params):
    """Jet images from flat constituents.

    Parameters
    ----------
    offsets : int64 (n_jets + 1,)
    pt, eta, phi, mass : float (n_cands,)
        GeV, -, rad, GeV. ``pt`` weights centring, maxima and rotation.
    weights : float (n_channels, n_cands)
        What each candidate adds to each channel (intensity x channel selector).
    tower_mask : bool (n_cands,) or (0,)
        Candidates spread over their coarse tower (used when ``tower_k > 1``).
    axis_eta, axis_phi : float (n_jets,) or (0,)
        Given jet axes for ``jet_axis``/``hardest_pixel`` centring; empty: from the constituents.
    out : float32 (n_jets, n_channels, n_oe * n_op), zero-filled
        The images (pixel ``(a, b)`` at ``a * n_op + b``), written in place.
    valid : bool (n_jets,)
        Set True where the image is not all zero.
    params : float64 (len(IMAGE_PARAMS),)
        The recipe, packed by :func:`image_params`: mode codes (coord, centre, rotation, flip,
        norm), flags (boost, pixel_rotation, flip_vertical, fast_paths), threshold, maxima_dr;
        ``n_eta, n_phi, d_eta, d_phi`` the computation grid (pixel counts, sizes in eta/rapidity
        and rad; maxima are searched on it), ``n_oe, n_op`` the output pixel counts (its central
        crop); ``tower_k`` the coarse tower edge in fine pixels (0 or 1: off; towers are aligned
        to the computation grid: tower ``T`` covers fine pixels ``T*k .. T*k+k-1``).

    Notes
    -----
    pT-centroid, jet-axis, leading-constituent (or no) centring, without rotation, flips, towers
    or threshold and with 'sum'/'none' normalisation, runs in :func:`_images_centroid` (three
    light passes per jet); centroid or hardest-pixel centring with maximum 2 to 12 o'clock and/or
    maximum 3 (or the heavier half) to the right (the ``deeptop`` and ``wtag`` recipes),
    coordinate rotation, no towers, threshold or vertical flip, 'sum'/'none' normalisation, in
    :func:`_images_maxima` (same pixels as the general loop); everything else (and everything
    with ``fast_paths`` 0) in the general loop below.
    """
    (coord, centre, boost, rotation, pixel_rotation, flip, flip_vertical, norm, threshold, n_eta, n_phi, d_eta,
     d_phi, n_oe, n_op, tower_k, maxima_dr, fast_paths) = _unpack_params(params)
    n_jets = offsets.shape[0] - 1
    n_ch = out.shape[1]
    npx = n_oe * n_op
    max_n = 0
    for i in range(n_jets):
        m = offsets[i + 1] - offsets[i]
        if m > max_n:
            max_n = m
    su = np.empty(max_n, np.float64)
    sv = np.empty(max_n, np.float64)
    mark = np.full(npx, -1, np.int64)
    touched = np.empty(npx, np.int64)
    need_max = centre == CENTRE_HARDEST_PIXEL or rotation == ROT_SECOND_MAX or flip == FLIP_THIRD_MAX
    ng = n_eta * n_phi if need_max else 1
    gacc = np.full((ng, 4), -1.0, np.float64)  # per pixel: (jet index that touched it, w, w u, w v)
    gtouched = np.empty(ng, np.int64)
    res = np.zeros((3, 3), np.float64)
    tmp = np.empty((n_ch, npx if pixel_rotation else 1), np.float64)
    use_tower = tower_k > 1 and tower_mask.shape[0] > 0
    tk_frac = 1.0 / (tower_k * tower_k) if tower_k > 1 else 1.0
    h_e = n_eta // 2
    h_p = n_phi // 2
    off_e = h_e - n_oe // 2
    off_p = h_p - n_op // 2
    inv_de = 1.0 / d_eta
    inv_dp = 1.0 / d_phi
    sums = np.zeros(n_ch, np.float64)
    # fast path: centroid, jet-axis, leading (or no) centring, nothing else on the coordinates
    if (fast_paths and (centre == CENTRE_CENTROID or centre == CENTRE_NONE or centre == CENTRE_JET_AXIS
                        or centre == CENTRE_LEADING)
            and rotation == ROT_NONE and flip == FLIP_NONE and not flip_vertical and not use_tower
            and threshold <= 0.0 and (norm == NORM_NONE or norm == NORM_SUM)):
        _images_centroid(offsets, pt, eta, phi, mass, weights, axis_eta, axis_phi, out, valid, params, su, sv,
                         np.empty(max_n, np.int32))
        return
    # fast path: maxima-based recipes (deeptop): centroid or hardest-pixel centring, maximum 2 up,
    # maximum 3 (or the heavier half) right, coordinate rotation
    if (fast_paths and (centre == CENTRE_CENTROID or centre == CENTRE_HARDEST_PIXEL) and need_max
            and (rotation == ROT_NONE or rotation == ROT_SECOND_MAX)
            and (flip == FLIP_NONE or flip == FLIP_THIRD_MAX or flip == FLIP_HEAVIER_HALF)
            and not pixel_rotation and not flip_vertical and not use_tower and threshold <= 0.0
            and (norm == NORM_NONE or norm == NORM_SUM)):
        _images_maxima(offsets, pt, eta, phi, mass, weights, out, valid, params, su, sv, np.empty(max_n, np.int32))
        return
    for i in range(n_jets):
        s = offsets[i]
        n = offsets[i + 1] - s
        valid[i] = False
        if n <= 0:
            continue
        theta = _prepare_jet(i, s, n, pt, eta, phi, mass, axis_eta, axis_phi, su, sv, params, gacc, gtouched, res)
        # scatter: one pass over the constituents into the zero-filled image
        nt = 0
        for k in range(n):
            j = s + k
            ice = int(math.floor(su[k] * inv_de + 0.5)) + h_e
            icp = int(math.floor(sv[k] * inv_dp + 0.5)) + h_p
            if use_tower and tower_mask[j]:
                te = (ice // tower_k) * tower_k
                tp = (icp // tower_k) * tower_k
                for a in range(tower_k):
                    oe = te + a - off_e
                    if oe < 0 or oe >= n_oe:
                        continue
                    for b in range(tower_k):
                        op = tp + b - off_p
                        if op < 0 or op >= n_op:
                            continue
                        p = oe * n_op + op
                        if mark[p] != i:
                            mark[p] = i
                            touched[nt] = p
                            nt += 1
                        for ch in range(n_ch):
                            out[i, ch, p] += weights[ch, j] * tk_frac
            else:
                oe = ice - off_e
                op = icp - off_p
                if oe < 0 or oe >= n_oe or op < 0 or op >= n_op:
                    continue
                p = oe * n_op + op
                if mark[p] != i:
                    mark[p] = i
                    touched[nt] = p
                    nt += 1
                for ch in range(n_ch):
                    out[i, ch, p] += weights[ch, j]
        full = False
        if pixel_rotation and theta != 0.0:
            _rotate_image(out, i, n_ch, n_oe, n_op, d_eta, d_phi, theta, tmp)
            full = True
        npass = npx if full else nt
        # threshold, sums, maxima over the touched pixels (all pixels after a pixel rotation)
        for ch in range(n_ch):
            sums[ch] = 0.0
        tot = 0.0
        for t in range(npass):
            p = t if full else touched[t]
            for ch in range(n_ch):
                x = out[i, ch, p]
                if x < threshold:
                    out[i, ch, p] = 0.0
                    x = 0.0
                if norm == NORM_MAX:
                    if x > sums[ch]:
                        sums[ch] = x
                else:
                    sums[ch] += x
                tot += abs(x)
        if tot <= 0.0:
            continue
        valid[i] = True
        if norm == NORM_NONE:
            continue
        if norm == NORM_SUM_ALL:
            st = 0.0
            for ch in range(n_ch):
                st += sums[ch]
            for ch in range(n_ch):
                sums[ch] = st
        for ch in range(n_ch):
            if sums[ch] != 0.0:
                sc = 1.0 / sums[ch]
                for t in range(npass):
                    p = t if full else touched[t]
                    out[i, ch, p] *= sc


@numba.njit(cache=True)
def transform_constituents_kernel(offsets, pt, eta, phi, mass, axis_eta, axis_phi, u_out, v_out, theta_out, params):
    """The constituent coordinates the image kernel pixelises: centred, rotated and flipped
    (``params``: see :data:`IMAGE_PARAMS`; norm, threshold, towers and the output crop unused).

    ``u_out, v_out`` (n_cands,) get the (eta or rapidity, phi) coordinates relative to the image
    centre; ``theta_out`` (n_jets,) the angle left for the pixel rotation (0 in coordinate mode).
    """
    n_jets = offsets.shape[0] - 1
    max_n = 0
    for i in range(n_jets):
        m = offsets[i + 1] - offsets[i]
        if m > max_n:
            max_n = m
    su = np.empty(max_n, np.float64)
    sv = np.empty(max_n, np.float64)
    ng = np.int64(params[P_N_ETA]) * np.int64(params[P_N_PHI])
    gacc = np.full((ng, 4), -1.0, np.float64)  # per pixel: (jet index that touched it, w, w u, w v)
    gtouched = np.empty(ng, np.int64)
    res = np.zeros((3, 3), np.float64)
    for i in range(n_jets):
        s = offsets[i]
        n = offsets[i + 1] - s
        theta_out[i] = 0.0
        if n <= 0:
            continue
        theta_out[i] = _prepare_jet(i, s, n, pt, eta, phi, mass, axis_eta, axis_phi, su, sv, params, gacc, gtouched,
                                    res)
        for k in range(n):
            u_out[s + k] = su[k]
            v_out[s + k] = sv[k]


@numba.njit(cache=True)
def fill_floor_kernel(out):
    """Write every element of ``out`` (n_jets, n_pix) once: the memory floor for the benchmark."""
    n, m = out.shape
    for i in range(n):
        for p in range(m):
            out[i, p] = 0.0


@numba.njit(cache=True)
def constituent_p4s_kernel(offsets, pt, eta, phi, mass, out, mask, sort):
    """(E, px, py, pz) of the first N constituents (pT-descending if ``sort``), zero-padded.

    out : float32 (n_jets, 4, N), zero-filled; mask : bool (n_jets, N), False-filled.
    """
    n_jets = offsets.shape[0] - 1
    nmax = out.shape[2]
    for i in range(n_jets):
        s = offsets[i]
        n = offsets[i + 1] - s
        if n <= 0:
            continue
        if sort:
            order = np.argsort(-pt[s:s + n], kind="mergesort")
        else:
            order = np.arange(n)
        for k in range(min(n, nmax)):
            j = s + order[k]
            e, px, py, pz = p4(pt[j], eta[j], phi[j], mass[j])
            out[i, 0, k] = e
            out[i, 1, k] = px
            out[i, 2, k] = py
            out[i, 3, k] = pz
            mask[i, k] = True


@numba.njit(cache=True)
def constituent_features_kernel(offsets, pt, eta, phi, mass, charge, axis_eta, axis_phi, codes, out, mask, sort):
    """Per-constituent features relative to the jet axis, pT-sorted, zero-padded.

    The jet axis (eta, phi), jet pT and E come from the 4-vector sum of all the jet's
    constituents unless ``axis_eta/axis_phi`` (n_jets,) are given (then pT and E still come from
    the constituent sum). ``codes`` (n_features,) selects the rows of ``out`` (n_jets, n_features, N).
    """
    n_jets = offsets.shape[0] - 1
    nmax = out.shape[2]
    nf = codes.shape[0]
    for i in range(n_jets):
        s = offsets[i]
        n = offsets[i + 1] - s
        if n <= 0:
            continue
        ejet, px, py, pz = p4_sum(np.uint64(s), n, pt, eta, phi, mass)
        ptjet, jeta, jphi = ptetaphi_from_p3(px, py, pz)
        if axis_eta.shape[0] > 0:
            jeta = axis_eta[i]
            jphi = axis_phi[i]
        if sort:
            order = np.argsort(-pt[s:s + n], kind="mergesort")
        else:
            order = np.arange(n)
        for k in range(min(n, nmax)):
            j = s + order[k]
            p = pt[j]
            e = energy(p, eta[j], mass[j])
            de = eta[j] - jeta
            dp = wrap_phi(phi[j] - jphi)
            mask[i, k] = True
            for f in range(nf):
                c = codes[f]
                if c == F_DETA:
                    x = de
                elif c == F_DPHI:
                    x = dp
                elif c == F_LOG_PT:
                    x = math.log(p) if p > 0.0 else 0.0
                elif c == F_LOG_E:
                    x = math.log(e) if e > 0.0 else 0.0
                elif c == F_LOG_PT_REL:
                    x = math.log(p / ptjet) if p > 0.0 and ptjet > 0.0 else 0.0
                elif c == F_LOG_E_REL:
                    x = math.log(e / ejet) if e > 0.0 and ejet > 0.0 else 0.0
                elif c == F_DR:
                    x = math.sqrt(de * de + dp * dp)
                elif c == F_CHARGE:
                    x = charge[j]
                elif c == F_PT:
                    x = p
                elif c == F_E:
                    x = e
                elif c == F_ETA:
                    x = eta[j]
                else:
                    x = phi[j]
                out[i, f, k] = x


@numba.njit(cache=True)
def draw_rings_kernel(out, offsets, eta, phi, energy, colour, c_radius, eta_min, eta_max, antialias):
    """Draw one object type as rings on event canvases.

    Parameters
    ----------
    out : float32 (n_events, 3, n_phi_pix, n_eta_pix)
        RGB canvases in [0, 1], painted over in place (row = phi from -π, column = eta from eta_min).
    offsets : int64 (n_events + 1,)
    eta, phi, energy : float (n_objects,)
        Centre (rad for phi) and energy (GeV) of each object.
    colour : float (3,)
        RGB of this object type.
    c_radius : float
        Ring radius R = c_radius * ln(E / GeV) in pixels (0 for E <= 1 GeV: a dot).
    antialias : bool
        Coverage ``max(0, 1 - |d - R|)`` (rings ~2 px, soft) instead of ``|d - R| <= 0.5`` (1 px),
        d the distance of a pixel centre to the object's centre (phi wrapped). Rings with R < 1
        also paint the pixel that holds the centre.
    """
    n_ev = out.shape[0]
    h = out.shape[2]
    w = out.shape[3]
    deta = (eta_max - eta_min) / w
    dphi = TWO_PI / h
    for ev in range(n_ev):
        for o in range(offsets[ev], offsets[ev + 1]):
            e = energy[o]
            r = c_radius * math.log(e) if e > 1.0 else 0.0
            cx = (eta[o] - eta_min) / deta
            cy = (wrap_phi(phi[o]) + PI) / dphi
            reach = r + 1.5
            x0 = max(0, int(math.floor(cx - reach)))
            x1 = min(w - 1, int(math.ceil(cx + reach)))
            y0 = int(math.floor(cy - reach))
            y1 = int(math.ceil(cy + reach))
            if y1 - y0 + 1 > h:  # the ring is taller than the canvas: each row once, nearest image
                y0 = int(math.floor(cy - 0.5 * h))
                y1 = y0 + h - 1
            for yy in range(y0, y1 + 1):
                dy = yy + 0.5 - cy
                row = yy % h
                for xx in range(x0, x1 + 1):
                    dx = xx + 0.5 - cx
                    dist = abs(math.sqrt(dx * dx + dy * dy) - r)
                    if antialias:
                        a = 1.0 - dist
                        if a <= 0.0:
                            continue
                    else:
                        if dist > 0.5:
                            continue
                        a = 1.0
                    for ch in range(3):
                        out[ev, ch, row, xx] = (1.0 - a) * out[ev, ch, row, xx] + a * colour[ch]
            if r < 1.0:  # a dot: make sure the pixel holding the centre is painted
                xx = int(math.floor(cx))
                if 0 <= xx < w:
                    row = int(math.floor(cy)) % h
                    for ch in range(3):
                        out[ev, ch, row, xx] = colour[ch]
