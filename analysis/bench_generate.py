"""Speed of ``coffea_jetimg.generate``: bare Pythia 8 vs the full chain, events/s per core.

For each process, both measurements run in this one process (one core) and include Pythia's
initialisation:

* bare Pythia: the same settings as the generator (hadronisation, MPI, pTHat window), just
  ``pythia.next()``;
* full: :func:`coffea_jetimg.generate.generate` with ``workers=1``: Pythia + particle
  extraction + parametric detector + FastJet (anti-kT 0.8 / 0.4, GenJets, soft drop,
  N-subjettiness) + truth labels + writing the ROOT file.

Usage: ``python analysis/bench_generate.py [--events 400] [--processes top qcd] [--pileup 0]``.
Rates are events per CPU-second of the (single-threaded) process, so that other load on a
shared machine does not change them much; wall-clock figures are printed beside them.
The last line is ``RESULT <process>_full_over_pythia=<ratio> ...`` (CPU-time ratio, full / bare).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time



def _clock():
    return time.perf_counter(), time.process_time()


def _since(t0):
    w, c = _clock()
    return w - t0[0], c - t0[1]


def bare_pythia(process: str, n: int, seed: int, pt_min, pt_max):
    """(wall s, CPU s) for initialising Pythia and generating ``n`` events."""
    from coffea_jetimg.generate._processes import make_pythia, pythia_settings

    t0 = _clock()
    py = make_pythia(pythia_settings(process, 14000.0, pt_min, pt_max, seed))
    for _ in range(n):
        while not py.next():
            pass
    return _since(t0)


def full(process: str, n: int, seed: int, pt_min, pt_max, pileup: float, out: str):
    """(wall s, CPU s) for the whole ``generate`` call (one worker, in this process)."""
    from coffea_jetimg.generate import generate

    t0 = _clock()
    generate(process, n, seed, out, pileup=pileup, pt_min=pt_min, pt_max=pt_max, workers=1, progress=False)
    return _since(t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=400, help="events per process and measurement")
    ap.add_argument("--processes", nargs="+", default=["top", "qcd"])
    ap.add_argument("--pt-min", type=float, default=500.0)
    ap.add_argument("--pt-max", type=float, default=700.0)
    ap.add_argument("--pileup", type=float, default=0.0, help="mean pileup for the full chain (bare has none)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: imports, FastJet banner, numba-free but first-call costs
        full("qcd", 2, 0, args.pt_min, args.pt_max, 0.0, os.path.join(tmp, "warm.root"))
        for proc in args.processes:
            (wb, cb) = bare_pythia(proc, args.events, args.seed, args.pt_min, args.pt_max)
            out = os.path.join(tmp, f"{proc}.root")
            (wf, cf) = full(proc, args.events, args.seed, args.pt_min, args.pt_max, args.pileup, out)
            size = os.path.getsize(out)
            n = args.events
            # events per CPU-second of this (single-threaded) process: robust on a shared machine
            rb, rf = n / cb, n / cf
            print(f"{proc:6s} bare pythia: {rb:7.1f} ev/s/core "
                  f"({1e3 * cb / n:6.2f} ms CPU/ev, wall {1e3 * wb / n:6.2f})   "
                  f"full: {rf:7.1f} ev/s/core ({1e3 * cf / n:6.2f} ms CPU/ev, wall {1e3 * wf / n:6.2f})   "
                  f"full/pythia: CPU {cf / cb:4.2f}, wall {wf / wb:4.2f}   file: {size / n / 1024:.1f} kB/ev")
            results.append((proc, cf / cb, rb, rf))
    print("RESULT " + " ".join(f"{p}_full_over_pythia={r:.3f}" for p, r, _, _ in results) + " "
          + " ".join(f"{p}_pythia_evps={b:.1f} {p}_full_evps={f:.1f}" for p, _, b, f in results)
          + f" events={args.events} pileup={args.pileup}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
