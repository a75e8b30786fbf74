"""Fault tolerance: a Dask worker process killed (SIGKILL) mid-run does not change the result.

A ``distributed.LocalCluster`` with two nanny-managed worker processes runs
:class:`JetTaggingProcessor` through ``coffea.processor.Runner`` + ``DaskExecutor`` with a small
chunksize (tens of tasks). A watcher thread waits until the scheduler has assigned processor
tasks to a worker, then kills that worker's process for real. The nanny starts a new process,
the scheduler reschedules the lost tasks (and recomputes results held by the dead worker), and
the run must end with exactly the histograms and cutflows of an ``IterativeExecutor`` run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
distributed = pytest.importorskip("distributed")
torch.set_num_threads(1)

import hist
from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor
from test_artifact import TinyCNN

from coffea_jetimg.artifact import save_artifact

PROC_NAME = "JetTaggingProcessor"  # DaskExecutor names the processing tasks after the processor class


@pytest.fixture(scope="module")
def cnn_artifact(tmp_path_factory):
    from coffea_jetimg.images import JetImageSpec

    torch.manual_seed(5)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    return str(save_artifact(tmp_path_factory.mktemp("fault_models") / "cnn", TinyCNN().eval(),
                             {"name": "cnn", "architecture": "tiny", "input": {"kind": "image", "image_spec": img},
                              "class_names": ["qcd", "top"], "signal_class": "top"},
                             torch.randn(2, 1, 8, 8)))


def _run(executor, fileset, proc, chunksize):
    runner = processor.Runner(executor=executor, schema=PFNanoAODSchema, chunksize=chunksize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(fileset, processor_instance=proc, treename="Events")


def _compare(a, b, path="out"):
    """Every hist.Hist equal (integer storages exactly, float sums to rounding), every other leaf equal."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        return sum(_compare(a[k], b[k], f"{path}/{k}") for k in a)
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


class _Killer(threading.Thread):
    """Wait until a worker has processor tasks, then SIGKILL that worker's process."""

    def __init__(self, client, pids: dict[str, int], timeout: float = 60.0):
        super().__init__(daemon=True)
        self.client, self.pids, self.timeout = client, pids, timeout
        self.killed: tuple[str, int] | None = None
        self.tasks_on_victim = 0
        self.kill_time = None
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self):
        try:
            t_end = time.monotonic() + self.timeout
            while not self.stop.is_set() and time.monotonic() < t_end:
                proc = self.client.processing()
                busy = {w: [k for k in keys if str(k).startswith(PROC_NAME)] for w, keys in proc.items()}
                busy = {w: ks for w, ks in busy.items() if ks and w in self.pids}
                if busy:
                    addr = max(busy, key=lambda w: len(busy[w]))
                    self.tasks_on_victim = len(busy[addr])
                    os.kill(self.pids[addr], signal.SIGKILL)
                    self.killed = (addr, self.pids[addr])
                    self.kill_time = time.monotonic()
                    return
                time.sleep(0.005)
        except Exception as err:  # noqa: BLE001  # pragma: no cover - reported by the test
            self.error = err


def _pid_gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_worker_killed_mid_run_same_histograms(cnn_artifact, generated_top, generated_qcd):
    from distributed import Client, LocalCluster

    proc = JetTaggingProcessor({"cnn": cnn_artifact}, selection={"pt": (300.0, None)})
    fileset = {"top": {"files": {generated_top: "Events"}, "metadata": {"label": "top"}},
               "qcd": {"files": {generated_qcd: "Events"}, "metadata": {"label": "qcd"}}}
    chunksize = 15  # 300 events per file: 40 processing tasks, so the kill lands mid-run
    # reference in a few big chunks: the histograms do not depend on the chunking
    ref = _run(processor.IterativeExecutor(status=False), fileset, proc, 300)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        pids = client.run(os.getpid)
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
        killer = _Killer(client, pids)
        killer.start()
        t0 = time.monotonic()
        out = _run(processor.DaskExecutor(client=client, status=False, retries=3), fileset, proc, chunksize)
        t_done = time.monotonic()
        killer.stop.set()
        killer.join(10)
        assert killer.error is None, killer.error
        # the kill really happened, while processor tasks were on the victim and before the run ended
        assert killer.killed is not None, "the run finished before any worker could be killed"
        addr, pid = killer.killed
        assert killer.tasks_on_victim >= 1 and t0 < killer.kill_time < t_done
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _pid_gone(pid):
            time.sleep(0.1)
        assert _pid_gone(pid), f"worker process {pid} still alive"
        # the nanny replaced it: two workers again, none of them the killed process
        client.wait_for_workers(2, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = client.run(os.getpid)
            if len(new) == 2 and pid not in new.values():
                break
            time.sleep(0.2)
        assert pid not in new.values() and len(new) == 2
        assert addr not in new or new[addr] != pid

    assert set(out) == set(ref) == {"top", "qcd"}
    n_hists = _compare(out, ref)
    assert n_hists >= 6  # score, predicted, score_moments, image, pixel_xy, njets per dataset
    for ds in ("top", "qcd"):
        assert out[ds]["cutflow"]["jets_scored"] > 0
        assert out[ds]["njets"].sum(flow=True) == ref[ds]["cutflow"]["jets_scored"]
