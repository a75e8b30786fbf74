"""Benchmark: jet images per second per core, against the memory floor and EnergyFlow's pixelate.

Jets are resampled from the real PFNano FatJets (``../shared/data/cms/pfnano.root``): the
constituent multiplicity of each jet and each constituent's (Δη, Δφ, pT fraction, mass, charge)
relative to its jet are drawn from the file's jets, the jet axis and pT are drawn uniformly
(|η| < 2, φ in [-π, π), pT in [300, 1000] GeV). Fixed seed. Speed depends on the counts, not on
the physics.

Measured, single-threaded, medians over ``--repeats`` runs:

(a) 33x33, one pT channel, pT-centroid centring (translation in eta), sum-normalised
    (width 1.6 in eta and phi);
(b) the ``deeptop`` preset: 40x40, centre on maximum 1, maximum 2 to 12 o'clock, flip
    maximum 3 to the right, normalise (Kasieczka et al.), centring by translation;
(c) as (a) with two channels (charged, neutral);
(a'), (b') as (a), (b) with the longitudinal-boost centring (the spec's default; one asinh and
    one sinh per massive constituent).

"ours" = allocate a zeroed output + run the kernel on flat buffers (``images_from_flat``).
The floor = allocate an output of the same shape and write each element once (the faster of
``np.empty + fill`` and a numba loop). EnergyFlow's ``pixelate`` is called jet by jet on a
subset, as it requires, and scaled. The awkward adapter (offset unpacking) and the
NanoEvents → constituents → tensor path are timed separately.

The "fast paths" line times (a), (b) and the qg and wtag presets with the kernel's fast paths and
through its general loop (``image_kernel_call(..., fast_paths=False)``): what each fast path saves.

The "anatomy" line splits (a): the page faults of a fresh output (``np.zeros`` + one write per
4 KiB page: the kernel zeroes each page on first touch, and the floor pays this too), and the
kernel alone on 1000 jets with output and inputs in cache (``image_kernel_call``). It prints the
kernel time per constituent that floor_ratio 0.7 would need.

Usage::

    python analysis/bench_images.py [--n-jets 100000] [--repeats 5] [--ef-jets 3000] [--chunk-file F.root]

The last line is ``RESULT floor_ratio=<ours/floor jets/s for (a)> energyflow_speedup=<ours/EF for (a)>``.
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402

from coffea_jetimg import _kernels as K  # noqa: E402
from coffea_jetimg._io import check_file, open_events  # noqa: E402
from coffea_jetimg import constituents, flat_jet_constituents  # noqa: E402
from coffea_jetimg._constituents import CANDIDATE_FIELDS, KINEMATIC_FIELDS, OPTIONAL_FIELDS  # noqa: E402
from coffea_jetimg.images import (JetImageSpec, constituent_fields, image_kernel_call, images_from_flat,  # noqa: E402
                                  jet_images)
from coffea_jetimg.kinematics import wrap_phi  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _data_file() -> Path:
    env = os.environ.get("COFFEA_JETIMG_DATA")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data", ROOT / "shared" / "data"]:
        if (cand / "cms" / "pfnano.root").exists():
            return cand / "cms" / "pfnano.root"
    sys.exit("pfnano.root not found (set COFFEA_JETIMG_DATA)")


def load_real(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = open_events(str(path))
        cands = constituents(events)
    fat = ak.flatten(events.FatJet, axis=1)
    jets = ak.flatten(cands, axis=1)
    counts = ak.to_numpy(ak.num(jets, axis=1))
    keep = counts > 0
    jets, fat, counts = jets[keep], fat[keep], counts[keep]
    deta = ak.to_numpy(ak.flatten(jets.eta - fat.eta))
    dphi = ak.to_numpy(ak.flatten(jets.phi - fat.phi))
    dphi = wrap_phi(dphi)
    frac = ak.to_numpy(ak.flatten(jets.pt / ak.sum(jets.pt, axis=1)))
    mass = ak.to_numpy(ak.flatten(jets.mass))
    charge = ak.to_numpy(ak.flatten(jets.charge))
    return events, counts, dict(deta=deta, dphi=dphi, frac=frac, mass=mass, charge=charge)


def generate(n_jets, counts_pool, pool, seed=12345):
    rng = np.random.default_rng(seed)
    counts = rng.choice(counts_pool, n_jets).astype(np.int64)
    n = int(counts.sum())
    idx = rng.integers(0, len(pool["deta"]), n)
    jet_eta = rng.uniform(-2, 2, n_jets)
    jet_phi = rng.uniform(-np.pi, np.pi, n_jets)
    jet_pt = rng.uniform(300, 1000, n_jets)
    jet_of = np.repeat(np.arange(n_jets), counts)
    pt = (pool["frac"][idx] * jet_pt[jet_of]).astype(np.float32)
    eta = (jet_eta[jet_of] + pool["deta"][idx]).astype(np.float32)
    phi = jet_phi[jet_of] + pool["dphi"][idx]
    phi = wrap_phi(phi).astype(np.float32)
    offsets = np.zeros(n_jets + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    cols = dict(pt=pt, eta=eta, phi=phi, mass=pool["mass"][idx].astype(np.float32),
                charge=pool["charge"][idx].astype(np.int32))
    return offsets, cols


def timeit(fn, repeats):
    fn()  # warm-up (JIT, caches)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = fn()
        ts.append(time.perf_counter() - t0)
        del r
    return statistics.median(ts), ts


def floor_fn(shape, how):
    if how == "fill":
        def f():
            out = np.empty(shape, np.float32)
            out.fill(0.0)
            return out
    else:
        def f():
            out = np.empty(shape, np.float32)
            K.fill_floor_kernel(out.reshape(shape[0], -1))
            return out
    return f


def load_pixelate():
    try:
        from energyflow.utils import pixelate  # noqa: F401

        return pixelate, "energyflow.utils.pixelate"
    except Exception as err:  # energyflow's package __init__ needs h5py, not installed with --no-deps
        spec = importlib.util.find_spec("energyflow")
        if spec is None or not spec.submodule_search_locations:
            return None, f"energyflow not importable ({err})"
        path = Path(list(spec.submodule_search_locations)[0]) / "utils" / "image_utils.py"
        s = importlib.util.spec_from_file_location("_ef_image_utils", path)
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
        return mod.pixelate, f"energyflow/utils/image_utils.py::pixelate loaded from file ({type(err).__name__}: {err})"


def chunk_cost(events, label, spec, repeats, t_cold=None):
    """Per-jet cost of NanoEvents → constituents() → flat buffers, beside the kernel's, for one chunk
    (warm medians; ``t_cold``: the first pass, which reads the branches from the file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_all, _ = timeit(lambda: constituents(events), repeats)
        few = constituent_fields(spec)  # what the processor gathers for this spec
        t_c, _ = timeit(lambda: constituents(events, fields=few), repeats)
        cands = constituents(events, fields=few)
    nj = int(ak.sum(ak.num(cands, axis=1)))
    need = KINEMATIC_FIELDS + few
    t_f, _ = timeit(lambda: flat_jet_constituents(cands, need), repeats)
    o2, c2 = flat_jet_constituents(cands, need)
    t_kk, _ = timeit(lambda: images_from_flat(o2, c2, spec), repeats)
    cold = f"; first pass with the file read {t_cold / nj * 1e6:.1f} µs per jet" if t_cold is not None else ""
    print(f"NanoEvents chunk ({label}, {len(events)} events, {nj} FatJets, {o2[-1]} constituents): constituents() "
          f"{t_c * 1e3:.2f} ms with fields={few} (all {len(CANDIDATE_FIELDS + OPTIONAL_FIELDS)} fields: "
          f"{t_all * 1e3:.2f} ms, {t_all / max(t_c, 1e-12):.2f}x), flat_jet_constituents {t_f * 1e3:.2f} ms, "
          f"kernel {t_kk * 1e3:.3f} ms → "
          f"{(t_c + t_f) / max(t_kk, 1e-12):.1f}x the kernel time beyond it (per jet: {(t_c + t_f) / nj * 1e6:.1f} µs "
          f"vs kernel {t_kk / nj * 1e6:.2f} µs{cold})")


def open_cost(path, spec, repeats):
    """open_events → constituents(fields) → jet_images per file, eager (reads every branch) against
    virtual (reads the branches touched; what train.load_jets does), medians of fresh opens."""
    few = constituent_fields(spec)

    def run(mode):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = open_events(str(path), mode=mode)
            return jet_images(constituents(ev, fields=few), spec)

    t = {m: timeit(lambda m=m: run(m), repeats)[0] for m in ("eager", "virtual")}
    same = np.array_equal(run("eager"), run("virtual"))
    n_br = len(check_file(str(path))[2])
    print(f"file → images ({Path(path).name}, {n_br} branches): eager open {t['eager'] * 1e3:.0f} ms, virtual "
          f"{t['virtual'] * 1e3:.0f} ms ({t['eager'] / max(t['virtual'], 1e-12):.2f}x); same images: {same}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-jets", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ef-jets", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--chunk-file", type=Path,
                    help="also time NanoEvents → tensor on this file (e.g. one written by coffea-jetimg generate)")
    args = ap.parse_args(argv)

    path = _data_file()
    events, counts_pool, pool = load_real(path)
    offsets, cols = generate(args.n_jets, counts_pool, pool, args.seed)
    n = args.n_jets
    mult = np.diff(offsets)
    print(f"jets: {n}, constituents: {offsets[-1]} (per jet: mean {mult.mean():.1f}, median {np.median(mult):.0f}, "
          f"max {mult.max()}), resampled from {len(counts_pool)} FatJets of {path.name}; single thread; "
          f"medians of {args.repeats} runs")

    width = 1.6
    # (a) and (c) centre by translation in eta (as EnergyFlow and most jet-image papers do);
    # the boost-centred variants (a') and (b') are timed as well
    specs = {
        "a": JetImageSpec(npix=33, pixel_size=width / 33, centre="centroid", normalize="sum", boost=False),
        "b": JetImageSpec.preset("deeptop", boost=False),
        "c": JetImageSpec(npix=33, pixel_size=width / 33, centre="centroid", normalize="sum", boost=False,
                          channels=("charged", "neutral")),
        "a'": JetImageSpec(npix=33, pixel_size=width / 33, centre="centroid", normalize="sum", boost=True),
        "b'": JetImageSpec.preset("deeptop"),
    }
    res = {}
    for key, spec in specs.items():
        shape = (n, *spec.shape)
        t_ours, _ = timeit(lambda: images_from_flat(offsets, cols, spec)[0], args.repeats)
        t_fill, _ = timeit(floor_fn(shape, "fill"), args.repeats)
        t_nb, _ = timeit(floor_fn(shape, "numba"), args.repeats)
        t_floor = min(t_fill, t_nb)
        res[key] = dict(ours=n / t_ours, floor=n / t_floor, fill=n / t_fill, nb=n / t_nb)
        mb = np.prod(shape) * 4 / 1e6
        print(f"({key}) {spec.shape} {mb:.0f} MB: ours {n / t_ours:,.0f} jets/s ({t_ours * 1e3:.1f} ms); "
              f"floor {n / t_floor:,.0f} jets/s (empty+fill {n / t_fill:,.0f}, numba write-once {n / t_nb:,.0f}); "
              f"ours/floor = {t_floor / t_ours:.2f}")
    r_ba = res["b"]["ours"] / res["a"]["ours"]
    r_ba_boost = res["b'"]["ours"] / res["a'"]["ours"]
    r_ca = res["c"]["ours"] / res["a"]["ours"]
    print(f"speed ratios: (b)/(a) = {r_ba:.2f}; (b')/(a') = {r_ba_boost:.2f}; (c)/(a) = {r_ca:.2f}")

    # reused output buffer: what the kernel costs without the allocation / page faults
    spec = specs["a"]
    buf = np.zeros((n, *spec.shape), np.float32)
    t_reuse, _ = timeit(lambda: images_from_flat(offsets, cols, spec, out=buf)[0], args.repeats)
    print(f"(a) into a reused, already-faulted buffer (zeroing included): {n / t_reuse:,.0f} jets/s")
    del buf

    # anatomy of (a): what a fresh output costs before anything is written (the kernel zeroes
    # every page on its first touch), and the kernel's own cost with output and inputs in cache
    shape = (n, *spec.shape)

    def faults():
        out = np.zeros(shape, np.float32)
        out.reshape(-1)[:: 4096 // 4] = 1.0  # one write per 4 KiB page: every page faulted in
        return out

    t_faults, _ = timeit(faults, args.repeats)
    m_c = min(1000, n)
    small = np.zeros((m_c, *spec.shape), np.float32)
    small_valid = np.zeros(m_c, bool)
    kernel = image_kernel_call(offsets[: m_c + 1], cols, spec)  # the kernel alone, adding into `small`
    reps = 50
    t_c, _ = timeit(lambda: [kernel(small, small_valid) for _ in range(reps)], args.repeats)
    ns_c = t_c / reps / offsets[m_c] * 1e9
    t_a = n / res["a"]["ours"]
    t_fl = n / res["a"]["floor"]
    print(f"(a) anatomy: page faults of a fresh output {t_faults * 1e3:.1f} ms = {t_faults / t_fl * 100:.0f}% of the "
          f"floor ({t_fl * 1e3:.1f} ms; the rest is the write); kernel with output and inputs in cache "
          f"({m_c} jets x {reps}) {ns_c:.1f} ns per constituent → {ns_c * offsets[-1] * 1e-6:.1f} ms for these jets; "
          f"ours {t_a * 1e3:.1f} ms ≈ faults + kernel ({(t_a - t_faults - ns_c * offsets[-1] * 1e-9) * 1e3:+.1f} ms). "
          f"floor_ratio 0.7 needs ours ≤ {t_fl / 0.7 * 1e3:.1f} ms: a kernel of "
          f"{(t_fl / 0.7 - t_faults) / offsets[-1] * 1e9:.1f} ns per constituent, beside the page faults that "
          f"ours and the floor both pay")

    # every preset (and qg with the jet axis given, as a processor can pass FatJet eta/phi): the
    # kernel alone, in cache, per constituent, beside (a)
    ax_e = np.asarray(cols["eta"][offsets[:m_c]], np.float64)  # any axis near the jet will do
    ax_p = np.asarray(cols["phi"][offsets[:m_c]], np.float64)
    parts = []
    for name, pspec, axes in [(p, JetImageSpec.preset(p), ()) for p in ("qg", "komiske", "wtag", "deeptop")] + [
            ("qg, axis given", JetImageSpec.preset("qg"), (ax_e, ax_p)),
            ("qg, no boost, axis given", JetImageSpec.preset("qg", boost=False), (ax_e, ax_p))]:
        buf = np.zeros((m_c, *pspec.shape), np.float32)
        call = image_kernel_call(offsets[: m_c + 1], cols, pspec, *axes)
        t_p, _ = timeit(lambda: [call(buf, small_valid) for _ in range(reps // 5)], args.repeats)
        parts.append(f"{name} {t_p / (reps // 5) / offsets[m_c] * 1e9:.1f}")
    print(f"presets, kernel in cache, ns per constituent (beside (a) {ns_c:.1f}): " + "; ".join(parts))

    # do the fast paths pay? the same recipes through the kernel's general loop (fast_paths=False;
    # the same images up to float rounding of the normalisation), kernel in cache
    parts = []
    for name, pspec in (("(a)", spec), ("(b) deeptop", specs["b"]), ("qg", JetImageSpec.preset("qg")),
                        ("wtag", JetImageSpec.preset("wtag"))):
        buf = np.zeros((m_c, *pspec.shape), np.float32)
        ns = {}
        for fast in (True, False):
            call = image_kernel_call(offsets[: m_c + 1], cols, pspec, fast_paths=fast)
            t_p, _ = timeit(lambda: [call(buf, small_valid) for _ in range(reps // 5)], args.repeats)
            ns[fast] = t_p / (reps // 5) / offsets[m_c] * 1e9
        parts.append(f"{name} {ns[True]:.1f} vs {ns[False]:.1f} ({ns[False] / ns[True]:.2f}x)")
    print("fast paths, kernel in cache, ns per constituent, fast vs general loop: " + "; ".join(parts))

    # consistency: our image of (a) vs energyflow on the same jets (structure, not timing)
    pixelate, how = load_pixelate()
    ef_speed = float("nan")
    if pixelate is not None:
        m = min(args.ef_jets, n)
        pid = np.where(cols["charge"] != 0, 211, 22)
        # pixelate does not wrap phi (a jet across ±π would be split); give it phi unwrapped
        # around the jet's first constituent (done here, outside its timing)
        jets_np = []
        for i in range(m):
            sl = slice(offsets[i], offsets[i + 1])
            ph = cols["phi"][sl].astype(np.float64)
            ph = ph[0] + wrap_phi(ph - ph[0])
            jets_np.append(np.stack([cols["pt"][sl], cols["eta"][sl], ph, pid[sl]], axis=1).astype(np.float64))

        def ef_run():
            out = np.empty((m, 33, 33, 1), np.float64)
            for i, j in enumerate(jets_np):
                out[i] = pixelate(j, npix=33, img_width=width, nb_chan=1, norm=True)
            return out

        t_ef, _ = timeit(ef_run, max(1, args.repeats // 2))
        ef_speed = m / t_ef
        print(f"energyflow pixelate ({how}): {ef_speed:,.0f} jets/s on {m} jets (per-jet Python loop)")
        # same sums (both normalised) and close centroids: a sanity check that we compare like with like
        ours_sub = images_from_flat(offsets[: m + 1], cols, spec)[0]
        ef = ef_run()
        print(f"  check: image sums ours {ours_sub.sum() / m:.4f}, energyflow {ef.sum() / m:.4f} per jet")
    else:
        print(f"energyflow: {how}")

    # adapter and NanoEvents paths
    per_event = 2
    n_ev = n // per_event
    jets_ak = ak.unflatten(ak.zip({k: v for k, v in cols.items()}), np.diff(offsets))
    ev_ak = ak.unflatten(jets_ak[: n_ev * per_event], np.full(n_ev, per_event))
    t_adapt, _ = timeit(lambda: jet_images(ev_ak, spec), args.repeats)
    t_flat, _ = timeit(lambda: flat_jet_constituents(ev_ak, ("pt", "eta", "phi", "mass")), args.repeats)
    t_k = n_ev * per_event / res["a"]["ours"]
    print(f"(a) from awkward events → jets → constituents: {n_ev * per_event / t_adapt:,.0f} jets/s; "
          f"offset unpacking (flat_jet_constituents) {t_flat * 1e3:.1f} ms = "
          f"{t_flat / t_adapt * 100:.0f}% of the call, "
          f"kernel+alloc ≈ {t_k * 1e3:.1f} ms")

    # real NanoEvents chunks: pfnano.root (small: 10 events), and --chunk-file (e.g. a generated file)
    chunk_cost(events, path.name, spec, args.repeats)
    if args.chunk_file:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            big = open_events(str(args.chunk_file))
            flat_jet_constituents(constituents(big), ("pt", "eta", "phi", "mass"))
        t_cold = time.perf_counter() - t0
        chunk_cost(big, args.chunk_file.name, spec, args.repeats, t_cold)
    for f in [path] + ([args.chunk_file] if args.chunk_file else []):
        open_cost(f, spec, args.repeats)

    floor_ratio = res["a"]["ours"] / res["a"]["floor"]
    speedup = res["a"]["ours"] / ef_speed if ef_speed == ef_speed else float("nan")
    print(f"RESULT floor_ratio={floor_ratio:.2f} energyflow_speedup={speedup:.0f}")


if __name__ == "__main__":
    main()
