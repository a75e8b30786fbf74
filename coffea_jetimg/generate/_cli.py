"""Generate a PFNano-layout ROOT file: Pythia 8 + parametric detector + FastJet.

Processes: top (hadronic ttbar), qcd (dijets), w (WZ, W->qq', Z->nunu), quark / gluon
(Z->nunu + jet, qg->Zq / qqbar->Zg), and event-level ttbar (semileptonic), wjets (W->l nu + jet),
dy (Z/gamma*->ll + jet). Output branches follow NanoAOD / PFNano naming (PFCands_*, FatJet_*,
FatJetPFCands_jetIdx/pFCandsIdx, Jet_*, JetPFCands_*, GenJet_*, GenPart_*, Electron_*, Muon_*,
MET_*, PV_npvs, genWeight) and open with coffea's PFNanoAODSchema. Same seed and workers give
the same file.
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "generate events with Pythia 8 + a parametric detector + FastJet into a PFNano-layout ROOT file"


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ._processes import PROCESSES

    parser.add_argument("--process", required=True, choices=list(PROCESSES),
                        help="physics process: " + "; ".join(f"{k}: {p.description}" for k, p in PROCESSES.items()))
    parser.add_argument("--events", "-n", type=_positive_int, required=True, help="number of events to generate")
    parser.add_argument("--seed", type=_nonneg_int, required=True,
                        help="master random seed (Pythia and detector seeds of each task derive from it)")
    parser.add_argument("--pileup", type=_nonneg_float, default=0.0,
                        help="mean number of pileup interactions (Poisson; SoftQCD:nonDiffractive overlay)")
    parser.add_argument("--ecm", type=_nonneg_float, default=14000.0, help="pp centre-of-mass energy in GeV")
    parser.add_argument("--pt-min", type=_nonneg_float, default=None,
                        help="lower end of the jet pT range in GeV (sets PhaseSpace:pTHatMin = 0.85 x this for jet "
                             "processes; default 500 for jet processes)")
    parser.add_argument("--pt-max", type=_nonneg_float, default=None,
                        help="upper end of the jet pT range in GeV (sets PhaseSpace:pTHatMax = 1.15 x this for jet "
                             "processes; default 700 for jet processes)")
    parser.add_argument("--fatjet-pt-min", type=_nonneg_float, default=200.0,
                        help="lowest stored FatJet pT in GeV")
    parser.add_argument("--fatjet-r", type=float, default=0.8,
                        help="FatJet radius (anti-kT; 0.8 as CMS's AK8, 1.0 as ATLAS's large-R jets); the truth "
                             "matching and the soft-drop / N-subjettiness R0 follow it")
    parser.add_argument("--jet-pt-min", type=_nonneg_float, default=20.0,
                        help="lowest stored Jet (anti-kT R=0.4) pT in GeV")
    parser.add_argument("--workers", "-j", type=_positive_int, default=1, help="parallel worker processes")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file (overwritten)")


def main(args) -> int:
    from . import generate

    if args.ecm <= 0:
        print("coffea-jetimg generate: error: --ecm must be > 0", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        path = generate(args.process, args.events, args.seed, args.output, pileup=args.pileup, ecm=args.ecm,
                        pt_min=args.pt_min, pt_max=args.pt_max, workers=args.workers,
                        progress=not args.no_progress, fatjet_pt_min=args.fatjet_pt_min, fatjet_r=args.fatjet_r,
                        jet_pt_min=args.jet_pt_min)
    except ValueError as err:
        print(f"coffea-jetimg generate: error: {err}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    print(f"wrote {args.events} {args.process} events to {path} in {dt:.1f} s "
          f"({args.events / dt:.1f} events/s with {args.workers} worker(s))")
    return 0
