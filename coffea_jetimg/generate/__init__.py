"""Generate PFNano-layout ROOT files with Pythia 8, a parametric detector and FastJet.

``generate('top', 1000, seed=1, output='top.root')`` runs Pythia 8 (``pythia8mc``), passes the
final-state particles (plus optional pileup) through the parametric detector of
:mod:`coffea_jetimg.generate._detector`, clusters jets with FastJet (anti-kT 0.8 → ``FatJet``,
0.4 → ``Jet`` and ``GenJet``), computes soft drop and N-subjettiness (fjcontrib's, through
:mod:`coffea_jetimg.substructure`, on the stored constituents), truth labels and b-tagging, and writes an ``Events``
tree with NanoAOD / PFNano naming that coffea's ``PFNanoAODSchema`` reads as it is:
``PFCands_*``, ``FatJet_*``, ``FatJetPFCands_{jetIdx,pFCandsIdx}``, ``Jet_*``,
``JetPFCands_*``, ``GenJet_*``, ``GenPart_*``, ``Electron_*``, ``Muon_*``, ``MET_*``,
``PV_npvs``, ``Pileup_*``, ``genWeight``, ``event``.

Branches beyond the standard NanoAOD ones: ``FatJet_truthLabel`` (0 other, 1 fully contained
hadronic top, 2 contained W), ``FatJet_partonFlavour`` / ``FatJet_hadronFlavour``.

Reproducibility: the events are split into tasks of at most :data:`TASK_EVENTS` events (and at
least ``workers`` tasks); task *i* is seeded from ``numpy.random.SeedSequence(seed).spawn``, so
the same ``seed``, ``n_events`` and ``workers`` give the same file.
"""

from __future__ import annotations

import contextlib
import math
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as _FutureTimeout

import numpy as np

from ._detector import Detector
from ._event import BTAG_EFF, BTAG_WP, EventGenerator, JetConfig
from ._processes import PROCESSES, pthat_window
from ._writer import ChunkBuilder, RootWriter

__all__ = ["generate", "PROCESSES", "Detector", "JetConfig", "BTAG_WP", "BTAG_EFF", "TASK_EVENTS", "task_sizes"]

#: largest number of events per task (one Pythia initialisation and one written chunk each)
TASK_EVENTS = 1000


def task_sizes(n_events: int, workers: int) -> list[int]:
    """Events per task: at least ``workers`` tasks, each at most :data:`TASK_EVENTS` events."""
    n_tasks = max(int(workers), math.ceil(n_events / TASK_EVENTS))
    n_tasks = min(n_tasks, n_events)
    base, extra = divmod(n_events, n_tasks)
    return [base + (1 if i < extra else 0) for i in range(n_tasks)]


def _validate(process, n_events, seed, pileup, ecm, pt_min, pt_max, workers, fatjet_pt_min, fatjet_r=0.8):
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; choose one of: {', '.join(PROCESSES)}")
    if not isinstance(n_events, (int, np.integer)) or n_events <= 0:
        raise ValueError(f"n_events must be a positive integer, got {n_events!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not (pileup >= 0 and math.isfinite(pileup)):
        raise ValueError(f"pileup must be a finite number >= 0, got {pileup!r}")
    if not (ecm > 0 and math.isfinite(ecm)):
        raise ValueError(f"ecm must be a positive energy in GeV, got {ecm!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not 0 < fatjet_r <= 2:
        raise ValueError(f"fatjet_r must be in (0, 2], got {fatjet_r!r}")
    if fatjet_pt_min < 0:
        raise ValueError(f"fatjet_pt_min must be >= 0, got {fatjet_pt_min!r}")
    pthat_window(process, pt_min, pt_max)  # raises for pt_min >= pt_max


def _run_task(args) -> dict:
    (process, n, first, itask, seed_seq, pileup, ecm, pt_min, pt_max, jet_kw, detector, progress_queue) = args
    gen = EventGenerator(process, seed_seq, pileup=pileup, ecm=ecm, pt_min=pt_min, pt_max=pt_max,
                         jets=JetConfig(**jet_kw), detector=detector)
    builder = ChunkBuilder()
    for k in _batches(n):
        for ev in gen.next_batch(k):
            builder.add(*ev)
        if progress_queue is not None:
            progress_queue.put(k)
    return builder.build(first_event=first, lumi_block=itask + 1)


def _batches(n: int, size: int = 25) -> list[int]:
    """Batch sizes of :meth:`EventGenerator.next_batch` for ``n`` events (the file does not
    depend on them: substructure draws no random numbers)."""
    return [size] * (n // size) + ([n % size] if n % size else [])


def generate(
    process: str,
    n_events: int,
    seed: int,
    output: str,
    pileup: float = 0.0,
    ecm: float = 14000.0,
    pt_min: float | None = None,
    pt_max: float | None = None,
    workers: int = 1,
    progress: bool = True,
    fatjet_pt_min: float = 200.0,
    jet_pt_min: float = 20.0,
    fatjet_r: float = 0.8,
    detector: Detector | None = None,
) -> str:
    """Generate ``n_events`` events of ``process`` and write them to ``output`` (PFNano layout).

    Parameters
    ----------
    process : str
        One of ``'top'``, ``'qcd'``, ``'w'``, ``'quark'``, ``'gluon'`` (jet samples) or
        ``'ttbar'``, ``'wjets'``, ``'dy'`` (event-level samples); see :data:`PROCESSES`.
    n_events : int
        Number of events (> 0).
    seed : int
        Master seed (>= 0). Pythia and detector seeds of each task derive from it.
    output : str or path
        ROOT file to create (overwritten).
    pileup : float
        Mean number μ of pileup interactions per event (Poisson), 0 for none.
    ecm : float
        Proton–proton centre-of-mass energy in GeV.
    pt_min, pt_max : float, optional
        Jet pT range in GeV; sets Pythia's pTHat window (0.85·pt_min, 1.15·pt_max) for jet
        samples. Defaults per process (500–700 GeV for jet samples). Not a cut on stored jets.
    workers : int
        Parallel processes.
    progress : bool
        Show a tqdm progress bar on stderr.
    fatjet_pt_min, jet_pt_min : float
        Lowest stored ``FatJet`` (anti-kT ``fatjet_r``) and ``Jet`` (anti-kT 0.4) pT in GeV.
    fatjet_r : float
        ``FatJet`` radius (default 0.8, CMS's AK8; 1.0 for ATLAS-style large-R jets); truth
        matching and the soft-drop / N-subjettiness ``R0`` follow it.
    detector : Detector, optional
        Detector parameters (efficiencies, resolutions, thresholds); default :class:`Detector()`.

    Returns
    -------
    str
        The path of the written file.

    Raises
    ------
    ValueError
        For an unknown process or an invalid number (events <= 0, pt_min >= pt_max, ...).
    """
    _validate(process, n_events, seed, pileup, ecm, pt_min, pt_max, workers, fatjet_pt_min, fatjet_r)
    output = os.fspath(output)
    sizes = task_sizes(int(n_events), int(workers))
    seeds = np.random.SeedSequence(int(seed)).spawn(len(sizes))
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    jet_kw = {"fatjet_pt_min": fatjet_pt_min, "jet_pt_min": jet_pt_min, "fatjet_r": fatjet_r}

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(n_events), unit="ev", desc=f"generate {process}", dynamic_ncols=True)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    # write beside the target and rename at the end: an interrupted run never leaves a
    # truncated file under the requested name (which a later --reuse would take for a sample)
    partial = output + ".part"
    try:
        with RootWriter(partial) as writer:
            if workers == 1:
                for itask, (n, first, ss) in enumerate(zip(sizes, firsts, seeds)):
                    gen = EventGenerator(process, ss, pileup=pileup, ecm=ecm, pt_min=pt_min, pt_max=pt_max,
                                         jets=JetConfig(**jet_kw), detector=detector)
                    builder = ChunkBuilder()
                    for k in _batches(n):
                        for ev in gen.next_batch(k):
                            builder.add(*ev)
                        if bar is not None:
                            bar.update(k)
                    writer.write(builder.build(first_event=int(first), lumi_block=itask + 1))
            else:
                _run_parallel(writer, process, sizes, firsts, seeds, pileup, ecm, pt_min, pt_max, jet_kw,
                              detector, workers, bar)
        os.replace(partial, output)
    finally:
        if bar is not None:
            bar.close()
        if os.path.exists(partial):
            os.remove(partial)
    return output


def _drain(q, bar) -> None:
    """Move the workers' progress counts from the queue to the progress bar (no-op without one)."""
    if q is None:
        return
    import queue

    with contextlib.suppress(queue.Empty):
        while True:
            bar.update(q.get_nowait())


def _run_parallel(writer, process, sizes, firsts, seeds, pileup, ecm, pt_min, pt_max, jet_kw, detector, workers,
                  bar):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # Pythia / FastJet state must not be forked
    with ctx.Manager() as manager:
        q = manager.Queue() if bar is not None else None
        tasks = [(process, n, int(first), itask, ss, pileup, ecm, pt_min, pt_max, jet_kw, detector, q)
                 for itask, (n, first, ss) in enumerate(zip(sizes, firsts, seeds))]
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_run_task, t) for t in tasks]
            for fut in futures:  # written in task order: reproducible
                while True:
                    _drain(q, bar)
                    try:
                        chunk = fut.result(timeout=0.5)
                        break
                    except _FutureTimeout:
                        continue
                writer.write(chunk)
            _drain(q, bar)
