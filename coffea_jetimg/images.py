"""Jet images from per-jet constituents, eager or dask, with numba kernels.

The preprocessing is described by one serialisable object, :class:`JetImageSpec`; a saved
model carries it, and :func:`jet_images` rebuilds the same images from it.

Conventions (all documented on :class:`JetImageSpec`)
-----------------------------------------------------
* Output ``(n_jets, n_channels, n_eta, n_phi)`` float32; axis 2 is eta (or rapidity), axis 3 is
  phi. "Up" / "12 o'clock" is +phi, "right" is +eta; show with ``plt.imshow(img[c].T,
  origin="lower")``.
* Pixel convention: the image centre is the centre of pixel ``n // 2`` on each axis, for odd
  and even ``n`` (for even ``n`` the grid reaches half a pixel further on the low side); a
  coordinate ``u`` relative to the centre falls into pixel ``floor(u / d + 0.5) + n // 2``.
* Azimuthal differences are wrapped to (-π, π] before anything else, so jets across φ = ±π
  give compact images.
* Centring, rotation and flips act on the constituent coordinates before pixelisation, so
  they keep the pixel sum exactly (up to constituents leaving the window); the ``'pixel'``
  rotation method instead rotates the finished image with bilinear interpolation (kept to
  show the damage it does to e.g. the jet mass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import awkward as ak
import numpy as np

from . import _kernels as K
from ._bridge import axis_arrays, dask_axes, fields_of, flat, is_dask, per_jet
from ._util import JsonSpec
from .kinematics import energy, p4_from_ptetaphim

__all__ = ["JetImageSpec", "PRESETS", "jet_images", "transform_constituents", "image_mass", "CHANNELS",
           "constituent_fields"]

#: Channel names and what a candidate contributes (``I`` = the spec's intensity).
CHANNELS = {
    "all": "I of every constituent",
    "charged": "I of charged constituents (charge != 0): tracks",
    "neutral": "I of neutral constituents (charge == 0)",
    "charged_count": "1 per charged constituent (a count, not an intensity)",
    "count": "1 per constituent",
    "leading_vertex": "I of constituents from the leading vertex: neutrals, and charged with fromPV >= pv_min; "
    "without a fromPV field, constituents with puppiWeight >= puppi_cut",
    "pileup": "the complement of 'leading_vertex'",
    "puppi": "I x puppiWeight",
}
_CENTRES = {"none": K.CENTRE_NONE, "jet_axis": K.CENTRE_JET_AXIS, "centroid": K.CENTRE_CENTROID,
            "leading": K.CENTRE_LEADING, "hardest_pixel": K.CENTRE_HARDEST_PIXEL}
_ROTATIONS = {"none": K.ROT_NONE, "principal_axis": K.ROT_PRINCIPAL, "second_maximum": K.ROT_SECOND_MAX}
_FLIPS = {"none": K.FLIP_NONE, "third_maximum": K.FLIP_THIRD_MAX, "heavier_half": K.FLIP_HEAVIER_HALF}
_NORMS = {"none": K.NORM_NONE, "sum": K.NORM_SUM, "sum_all": K.NORM_SUM_ALL, "max": K.NORM_MAX}
_COORDS = {"eta": K.COORD_ETA, "rapidity": K.COORD_RAPIDITY}
_INTENSITIES = ("pt", "et", "e")
_AXES = ("constituents", "jet")


def _pair(value, name, kind):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{name} must be one value or a pair (eta, phi), got {value!r}")
        out = tuple(kind(v) for v in value)
    else:
        out = (kind(value), kind(value))
    return out


@dataclass(frozen=True)
class JetImageSpec(JsonSpec):
    """How to make a jet image: grid, centring, rotation, flip, intensity, channels, normalisation.

    Parameters
    ----------
    npix : int or (int, int)
        Output pixels along (eta, phi).
    pixel_size : float or (float, float)
        Pixel edge along (eta or rapidity, phi); phi in rad.
    coordinate : {'eta', 'rapidity'}
        Longitudinal image coordinate.
    centre : {'jet_axis', 'centroid', 'leading', 'hardest_pixel', 'none'}
        What goes to the centre of pixel ``npix // 2``: the direction of the constituents'
        4-vector sum (or given jet axes), the pT-weighted centroid in (coordinate, phi), the
        hardest constituent, the hardest pixel (maximum 1, see ``maxima_dr``; searched on the
        grid around the pT centroid) or nothing (absolute coordinates: the grid is centred at
        (0, 0)). With ``boost`` the shift is a boost by the centre's eta taken as a rapidity,
        so massive constituents land at the centre only up to O(m²/pT²) (< 0.01 for a pion
        above 1 GeV).
    boost : bool
        With ``coordinate='eta'``: centre longitudinally with a Lorentz boost (rapidities shift,
        each constituent's mass and the jet mass are kept; eta moves by a pT- and mass-dependent
        amount) instead of a plain eta translation (which changes the mass of massive
        constituent systems). With ``'rapidity'`` the translation is a boost anyway.
    rotation : {'none', 'principal_axis', 'second_maximum'}
        ``principal_axis``: the major axis of the pT-weighted second-moment tensor (about the
        centroid) goes to vertical (+phi). ``second_maximum``: maximum 2 goes to 12 o'clock.
    rotation_method : {'coords', 'pixel'}
        Rotate the constituent coordinates before pixelisation (keeps the pixel sum exactly), or
        rotate the finished image with bilinear interpolation (smears it; only to show the damage).
    flip : {'none', 'third_maximum', 'heavier_half'}
        Mirror eta so that maximum 3, or the half with more pT, lies at +eta (right), after rotation.
    flip_vertical : bool
        Also mirror phi so that the half with more pT lies at +phi.
    intensity : {'pt', 'et', 'e'}
        Pixel intensity in GeV: transverse momentum, transverse energy E/cosh(eta), or energy,
        all of the constituent before the centring boost (lab frame).
    channels : tuple of str
        Channel names from :data:`CHANNELS`.
    pv_min, puppi_cut : int, float
        Thresholds of the 'leading_vertex' / 'pileup' selection (see :data:`CHANNELS`).
    tower_size : float or None
        If set, neutral constituents are spread uniformly over the fine pixels of the coarse
        tower (edge ``tower_size``, a whole number of pixels on both axes, aligned to the
        computation grid) that contains them, as in ATLAS tower images; charged ones stay at
        their track position.
    threshold : float
        Pixels below this value (before normalisation, in the intensity unit) are set to 0.
    grid : (int, int) or None
        Computation grid (pixels) for the maxima search and towers; the output is its central
        ``npix`` crop. None: the same as ``npix``. Must not be smaller than ``npix``.
    normalize : {'sum', 'sum_all', 'none', 'max'}
        ``sum``: each channel sums to 1 (count channels included); ``sum_all``: all channels
        together sum to 1; ``max``: each channel's brightest pixel is 1. Applied after crop and
        threshold. An empty image stays all zero. For colour images split by charge, ``sum``
        drops each jet's charged/neutral pT shares and ``sum_all`` keeps them.
    axis : {'constituents', 'jet'}
        Where the jet axis of ``centre='jet_axis'`` (and the starting point of the
        ``'hardest_pixel'`` search) comes from when images are built from events
        (:func:`coffea_jetimg.inputs.build_inputs`: the processor and training):
        ``'constituents'``, the direction of the constituents' 4-vector sum (the default,
        and what artifacts without this field used), or ``'jet'``, the jet collection's stored
        eta (rapidity with ``coordinate='rapidity'``) and phi. They differ where the stored
        jet is not the plain sum of its stored constituents (the FatJets of the shared CMS
        pfnano.root: by up to 0.01 in eta and phi, median 0.0005; generated jets: not at all).
        With ``'jet'``, :func:`jet_images` needs ``jet_eta``/``jet_phi``.
    maxima_dr : float
        Maxima are pixels of the pT image on the computation grid, at the pT-weighted mean
        position of their constituents: maximum 1 is the hardest pixel, maximum 2 the hardest
        pixel farther than ``maxima_dr`` from maximum 1, maximum 3 the hardest farther than
        ``maxima_dr`` from both. (A coarse pixel-maxima search, not kT subjets.)
    """

    npix: tuple[int, int] = (33, 33)
    pixel_size: tuple[float, float] = (0.8 / 33, 0.8 / 33)
    coordinate: str = "eta"
    centre: str = "centroid"
    boost: bool = True
    rotation: str = "none"
    rotation_method: str = "coords"
    flip: str = "none"
    flip_vertical: bool = False
    intensity: str = "pt"
    channels: tuple[str, ...] = ("all",)
    pv_min: int = 2
    puppi_cut: float = 0.5
    tower_size: float | None = None
    threshold: float = 0.0
    grid: tuple[int, int] | None = None
    normalize: str = "sum"
    maxima_dr: float = 0.2
    axis: str = "constituents"

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        npix = _pair(self.npix, "npix", int)
        if min(npix) < 1:
            raise ValueError(f"npix must be >= 1, got {self.npix!r}")
        put("npix", npix)
        ps = _pair(self.pixel_size, "pixel_size", float)
        if not all(math.isfinite(p) and p > 0 for p in ps):
            raise ValueError(f"pixel_size must be positive and finite, got {self.pixel_size!r}")
        put("pixel_size", ps)
        for name, allowed in (("coordinate", _COORDS), ("centre", _CENTRES), ("rotation", _ROTATIONS),
                              ("rotation_method", ("coords", "pixel")), ("flip", _FLIPS),
                              ("intensity", _INTENSITIES), ("normalize", _NORMS), ("axis", _AXES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}, got {getattr(self, name)!r}")
        chans = (self.channels,) if isinstance(self.channels, str) else tuple(self.channels)
        if not chans:
            raise ValueError("channels must name at least one channel")
        for c in chans:
            if c not in CHANNELS:
                raise ValueError(f"channels: unknown channel {c!r}; choose from {tuple(CHANNELS)}")
        put("channels", chans)
        if self.grid is not None:
            grid = _pair(self.grid, "grid", int)
            if grid[0] < npix[0] or grid[1] < npix[1]:
                raise ValueError(f"grid {grid} must not be smaller than npix {npix}")
            put("grid", grid)
        if self.tower_size is not None:
            ts = float(self.tower_size)
            ks = [ts / p for p in ps]
            if (not (ts > 0 and all(abs(k - round(k)) < 1e-6 and round(k) >= 1 for k in ks))
                    or round(ks[0]) != round(ks[1])):
                raise ValueError(f"tower_size must be the same whole number of pixels on both axes "
                                 f"(pixel_size {ps}), got {self.tower_size!r}")
            put("tower_size", ts)
        if not (math.isfinite(float(self.threshold)) and self.threshold >= 0):
            raise ValueError(f"threshold must be >= 0, got {self.threshold!r}")
        if not (math.isfinite(float(self.maxima_dr)) and self.maxima_dr >= 0):
            raise ValueError(f"maxima_dr must be >= 0, got {self.maxima_dr!r}")
        for name in ("boost", "flip_vertical"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    # -- derived -------------------------------------------------------------------------
    @property
    def computation_grid(self) -> tuple[int, int]:
        """Pixels of the computation grid (eta, phi)."""
        return self.grid if self.grid is not None else self.npix

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Per-jet image shape ``(n_channels, n_eta, n_phi)``."""
        return (self.n_channels, self.npix[0], self.npix[1])

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """Output window edges relative to the centre: (eta_lo, eta_hi, phi_lo, phi_hi)."""
        (ne, nphi), (de, dp) = self.npix, self.pixel_size
        return (-(ne // 2 + 0.5) * de, (ne - ne // 2 - 0.5) * de,
                -(nphi // 2 + 0.5) * dp, (nphi - nphi // 2 - 0.5) * dp)



    @classmethod
    def preset(cls, name: str, **changes) -> JetImageSpec:
        """One of :data:`PRESETS`, optionally with changes."""
        try:
            spec = PRESETS[name]
        except KeyError:
            raise ValueError(f"preset: unknown name {name!r}; choose from {tuple(PRESETS)}") from None
        return spec.replace(**changes) if changes else spec


#: Presets from the literature.
#:
#: * ``qg``: 16x16 at 0.05 x 0.05 around the jet axis, pT, sum-normalised (ATLAS q/g, R=0.4).
#: * ``komiske``: 33x33 over 0.8 x 0.8 in (rapidity, phi), pT-centroid, sum-normalised
#:   (Komiske, Metodiev, Schwartz, R=0.4 jets).
#: * ``wtag``: 25x25 at 0.1 (over [-1.25, 1.25]), centred on the hardest pixel, second
#:   maximum to 12 o'clock, heavier half to the right, pT, not normalised (de Oliveira et al.;
#:   they rotate the second subjet to 6 o'clock: a vertical flip of ours).
#: * ``deeptop``: 40x40 at 0.1 in eta x 5 deg in phi, centred on maximum 1, maximum 2 to
#:   12 o'clock, maximum 3 flipped to the right, sum-normalised (Kasieczka et al.).
PRESETS: dict[str, JetImageSpec] = {
    "qg": JetImageSpec(npix=(16, 16), pixel_size=(0.05, 0.05), centre="jet_axis"),
    "komiske": JetImageSpec(npix=(33, 33), pixel_size=(0.8 / 33, 0.8 / 33), coordinate="rapidity", centre="centroid"),
    "wtag": JetImageSpec(npix=(25, 25), pixel_size=(0.1, 0.1), centre="hardest_pixel", rotation="second_maximum",
                         flip="heavier_half", normalize="none", maxima_dr=0.3),
    "deeptop": JetImageSpec(npix=(40, 40), pixel_size=(0.1, math.radians(5.0)), centre="hardest_pixel",
                            rotation="second_maximum", flip="third_maximum", normalize="sum", maxima_dr=0.3),
}


def _as_spec(spec) -> JetImageSpec:
    if isinstance(spec, JetImageSpec):
        return spec
    if isinstance(spec, str):
        return JetImageSpec.preset(spec)
    if isinstance(spec, dict):
        return JetImageSpec.from_dict(spec)
    raise TypeError(f"spec must be a JetImageSpec, a preset name or a dict, got {type(spec).__name__}")


def constituent_fields(spec: JetImageSpec | str | dict) -> tuple[str, ...]:
    """The constituent fields besides pt, eta, phi, mass that images of ``spec`` may read.

    For :func:`coffea_jetimg.constituents` ``fields=``: ``('charge',)`` for charged/neutral
    channels and towers, ``fromPV`` and ``puppiWeight`` for the vertex channels (whichever the
    file has), ``puppiWeight`` for ``puppi``; ``()`` for pT images.
    """
    spec = _as_spec(spec)
    chans = set(spec.channels)
    out = []
    if chans & {"charged", "neutral", "charged_count", "leading_vertex", "pileup"} or spec.tower_size is not None:
        out.append("charge")
    if chans & {"leading_vertex", "pileup"}:
        out += ["fromPV", "puppiWeight"]
    if "puppi" in chans:
        out.append("puppiWeight")
    return tuple(dict.fromkeys(out))


def _needed_fields(spec: JetImageSpec, available) -> tuple[str, ...]:
    need = ["pt", "eta", "phi", "mass"]
    chans = set(spec.channels)
    if "charge" in constituent_fields(spec):
        need.append("charge")
    if chans & {"leading_vertex", "pileup"}:
        if "fromPV" in available:
            need.append("fromPV")
        elif "puppiWeight" in available:
            need.append("puppiWeight")
        else:
            raise KeyError("channels 'leading_vertex'/'pileup' need a fromPV or puppiWeight field in the constituents")
    if "puppi" in chans:
        if "puppiWeight" not in available:
            raise KeyError("channel 'puppi' needs a puppiWeight field in the constituents")
        need.append("puppiWeight")
    return tuple(dict.fromkeys(need))


# ---------------------------------------------------------------------------------------
# eager adapter
# ---------------------------------------------------------------------------------------
def _channel_weights(spec: JetImageSpec, cols) -> np.ndarray:
    pt = cols["pt"]
    if spec.intensity == "pt":
        inten = pt
    else:
        eta = cols["eta"].astype(np.float64)
        e = energy(pt, eta, cols["mass"].astype(np.float64))
        inten = (e if spec.intensity == "e" else e / np.cosh(eta)).astype(np.float32)
    rows = []
    for c in spec.channels:
        if c == "all":
            rows.append(inten)
            continue
        if c == "count":
            rows.append(np.ones_like(inten))
            continue
        if c == "puppi":
            rows.append(inten * cols["puppiWeight"])
            continue
        charged = cols["charge"] != 0
        if c == "charged":
            rows.append(np.where(charged, inten, 0))
        elif c == "neutral":
            rows.append(np.where(charged, 0, inten))
        elif c == "charged_count":
            rows.append(charged.astype(inten.dtype))
        else:  # leading_vertex / pileup
            if "fromPV" in cols:
                lv = ~charged | (cols["fromPV"] >= spec.pv_min)
            else:
                lv = cols["puppiWeight"] >= spec.puppi_cut
            rows.append(np.where(lv if c == "leading_vertex" else ~lv, inten, 0))
    if len(rows) == 1:
        return np.ascontiguousarray(rows[0])[None, :]
    return np.ascontiguousarray(np.stack(rows).astype(inten.dtype, copy=False))


def _kernel_params(spec: JetImageSpec, fast_paths: bool = True) -> np.ndarray:
    """The spec as the kernels' packed parameter array (:func:`coffea_jetimg._kernels.image_params`)."""
    ng = spec.computation_grid
    tk = int(round(spec.tower_size / spec.pixel_size[0])) if spec.tower_size is not None else 0
    return K.image_params(
        coord=_COORDS[spec.coordinate], centre=_CENTRES[spec.centre], boost=bool(spec.boost),
        rotation=_ROTATIONS[spec.rotation], pixel_rotation=spec.rotation_method == "pixel",
        flip=_FLIPS[spec.flip], flip_vertical=bool(spec.flip_vertical), norm=_NORMS[spec.normalize],
        threshold=float(spec.threshold), n_eta=ng[0], n_phi=ng[1], d_eta=float(spec.pixel_size[0]),
        d_phi=float(spec.pixel_size[1]), n_oe=spec.npix[0], n_op=spec.npix[1], tower_k=tk,
        maxima_dr=float(spec.maxima_dr), fast_paths=bool(fast_paths),
    )


def images_from_flat(offsets, cols, spec: JetImageSpec, axis_eta=None, axis_phi=None, out=None):
    """Jet images from flat buffers (the layer between the kernel and :func:`jet_images`).

    Parameters
    ----------
    offsets : int64 (n_jets + 1,)
    cols : dict of str to ndarray (n_cands,)
        ``pt``, ``eta``, ``phi``, ``mass`` and whatever the channels need (see :data:`CHANNELS`).
    out : float32 (n_jets, n_channels, n_eta, n_phi), optional
        Reused output buffer (it is zeroed here).

    Returns
    -------
    images : float32 (n_jets, n_channels, n_eta, n_phi)
    valid : bool (n_jets,)
    """
    n_jets = len(offsets) - 1
    ne, nphi = spec.npix
    if out is None:
        out = np.zeros((n_jets, spec.n_channels, ne, nphi), dtype=np.float32)
    else:
        out[...] = 0
    valid = np.zeros(n_jets, dtype=bool)
    if n_jets == 0:
        return out, valid
    image_kernel_call(offsets, cols, spec, axis_eta, axis_phi)(out, valid)
    return out, valid


def image_kernel_call(offsets, cols, spec: JetImageSpec, axis_eta=None, axis_phi=None, *, fast_paths: bool = True):
    """The numba kernel of :func:`images_from_flat` with its arguments bound:
    ``call(out, valid)`` adds the images into ``out`` (zero-filled, float32 (n_jets, n_channels,
    n_eta, n_phi)) and sets ``valid``. No allocation or zeroing: for benchmarks that time the
    kernel alone (analysis/bench_images.py) and for callers that manage their own buffers.
    ``fast_paths=False`` runs every recipe through the kernel's general loop (the same images up
    to float rounding of the normalisation: for benchmarks of the fast paths)."""
    n_jets = len(offsets) - 1
    ne, nphi = spec.npix
    weights = _channel_weights(spec, cols)
    tower_mask = (cols["charge"] == 0) if spec.tower_size is not None else np.zeros(0, dtype=bool)
    ax_e = np.zeros(0) if axis_eta is None else axis_eta
    ax_p = np.zeros(0) if axis_phi is None else axis_phi
    params = _kernel_params(spec, fast_paths)
    head = (offsets, cols["pt"], cols["eta"], cols["phi"], cols["mass"], weights, tower_mask, ax_e, ax_p)

    def call(out, valid):
        K.jet_images_kernel(*head, out.reshape(n_jets, spec.n_channels, ne * nphi), valid, params)

    return call


def _jet_images_eager(x, spec, jet_eta, jet_phi):
    fields = _needed_fields(spec, fields_of(x))
    offsets, cols = flat(x, fields)
    ax_e, ax_p = axis_arrays(jet_eta, jet_phi, len(offsets) - 1)
    return images_from_flat(offsets, cols, spec, ax_e, ax_p)


def jet_images(x, spec: JetImageSpec | str | dict = "komiske", *, jet_eta=None, jet_phi=None,
               return_mask: bool = False):
    """Jet images of per-jet constituents.

    Parameters
    ----------
    x : ak.Array or dask_awkward.Array
        ``n_jets * var * {pt, eta, phi, mass, ...}`` or ``n_events * var * var * {...}`` (as from
        :func:`coffea_jetimg.constituents`): pt, mass in GeV, phi in rad; ``charge``,
        ``puppiWeight``, ``fromPV`` where the channels need them. None jets/events count as
        empty jets, None constituents are dropped.
    spec : JetImageSpec, preset name or dict
    jet_eta, jet_phi : array-like (n_jets,) or events → jets, optional
        Jet axes for ``centre='jet_axis'``/``'hardest_pixel'`` (in the image coordinate:
        rapidity with ``coordinate='rapidity'``); otherwise the axis is the direction of the
        constituents' 4-vector sum. Required when ``spec.axis == 'jet'``; given ones are used
        whatever ``spec.axis`` says. With dask input, dask-awkward arrays
        partitioned as ``x`` (e.g. ``events.FatJet.eta`` beside ``constituents(events)``).
    return_mask : bool
        Also return ``valid``: True where the image is not all zero (False for empty jets).

    Returns
    -------
    images : ndarray float32 (n_jets, n_channels, n_eta, n_phi)
        Eager input: all jets, flattened over events. Pixel intensities in GeV, or normalised.
        Dask input: a dask-awkward array ``[n_events * var *] n_jets * n_channels * n_eta * n_phi
        * float32`` with the jet structure of ``x``.
    valid : ndarray bool (n_jets,) (or dask-awkward), if ``return_mask``
    """
    spec = _as_spec(spec)
    if spec.axis == "jet" and jet_eta is None and jet_phi is None:
        raise ValueError("spec.axis is 'jet': give jet_eta and jet_phi (the jets' stored axes; "
                         "coffea_jetimg.inputs.build_inputs passes them from the events)")
    if is_dask(x):
        fields = _needed_fields(spec, fields_of(x._meta))

        def fn(arr, *ax):
            img, valid = _jet_images_eager(arr, spec, *(ax or (None, None)))
            return {"image": img, "valid": valid}

        res = per_jet(fn, x, *dask_axes(x, jet_eta, jet_phi), fields=fields, label="jet-images")
        return (res["image"], res["valid"]) if return_mask else res["image"]
    img, valid = _jet_images_eager(x, spec, jet_eta, jet_phi)
    return (img, valid) if return_mask else img


def transform_constituents(x, spec: JetImageSpec | str | dict = "komiske", *, jet_eta=None, jet_phi=None):
    """The constituents as the image kernel sees them: centred, rotated, flipped (eager only).

    Returns
    -------
    ak.Array
        ``n_jets * var * {pt, u, v, mass}``: ``u`` the eta (or rapidity) and ``v`` the phi
        coordinate relative to the image centre, in the frame the image is pixelised in (for
        ``rotation_method='pixel'`` before the image rotation). With ``coordinate='eta'`` and
        no rotation, (pt, u, v, mass) is the boosted (or translated) constituent 4-vector.
    """
    spec = _as_spec(spec)
    offsets, cols = flat(x, ("pt", "eta", "phi", "mass"))
    n_jets = len(offsets) - 1
    ax_e, ax_p = axis_arrays(jet_eta, jet_phi, n_jets)
    n = len(cols["pt"])
    u = np.zeros(n, np.float64)
    v = np.zeros(n, np.float64)
    theta = np.zeros(n_jets, np.float64)
    K.transform_constituents_kernel(offsets, cols["pt"], cols["eta"], cols["phi"], cols["mass"], ax_e, ax_p, u, v,
                                    theta, _kernel_params(spec))
    rec = ak.zip({"pt": cols["pt"], "u": u, "v": v, "mass": cols["mass"]})
    return ak.unflatten(rec, np.diff(offsets))


def image_mass(images: np.ndarray, spec: JetImageSpec | str | dict, channel: int = 0) -> np.ndarray:
    """Invariant mass (GeV) of jet images, each pixel a massless particle at its centre.

    The image mass of de Oliveira et al. (arXiv:1511.05190, sec. 3): pixel ``(i, j)`` of
    ``channel`` carries pT = its value at (η, φ) = ((i − n_η // 2)·Δη, (j − n_φ // 2)·Δφ) (the
    pixel convention of the module), so it needs pT (or E_T) intensities that are not
    normalised. Rotating the pixel grid changes it (η and φ are not equivalent for the mass);
    centring by a boost keeps it.

    Parameters
    ----------
    images : ndarray ``(n_jets, C, n_eta, n_phi)``
    spec : JetImageSpec, preset name or dict
        Gives the pixel sizes.
    channel : int

    Returns
    -------
    ndarray (n_jets,), float64
    """
    spec = _as_spec(spec)
    x = np.asarray(images, np.float64)[:, channel]
    ne, nphi = x.shape[1:]
    de, dp = spec.pixel_size
    eta = ((np.arange(ne) - ne // 2) * de)[:, None] * np.ones((1, nphi))
    phi = np.ones((ne, 1)) * ((np.arange(nphi) - nphi // 2) * dp)[None, :]
    e, px, py, pz = p4_from_ptetaphim(np.ones_like(eta), eta, phi, np.zeros_like(eta))  # per unit pT
    tot = [np.einsum("nij,ij->n", x, c) for c in (e, px, py, pz)]
    return np.sqrt(np.maximum(tot[0] ** 2 - tot[1] ** 2 - tot[2] ** 2 - tot[3] ** 2, 0.0))
