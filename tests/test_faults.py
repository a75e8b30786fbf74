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

from coffea import processor
from coffea.nanoevents import PFNanoAODSchema
from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor

from coffea_jetimg.artifact import save_artifact

PROC_NAME = "JetTaggingProcessor"  # DaskExecutor names the processing tasks after the processor class


@pytest.fixture(scope="module")
def cnn_artifact(tmp_path_factory, tiny_cnn):
    from coffea_jetimg.images import JetImageSpec

    torch.manual_seed(5)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    return str(save_artifact(tmp_path_factory.mktemp("fault_models") / "cnn", tiny_cnn().eval(),
                             {"name": "cnn", "architecture": "tiny", "input": {"kind": "image", "image_spec": img},
                              "class_names": ["qcd", "top"], "signal_class": "top"},
                             torch.randn(2, 1, 8, 8)))


def _run(executor, fileset, proc, chunksize):
    runner = processor.Runner(executor=executor, schema=PFNanoAODSchema, chunksize=chunksize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(fileset, processor_instance=proc, treename="Events")


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


def test_worker_killed_mid_run_same_histograms(cnn_artifact, generated_top, generated_qcd, compare_outputs):
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
    n_hists = compare_outputs(out, ref)
    assert n_hists >= 6  # score, predicted, score_moments, image, pixel_xy, njets per dataset
    for ds in ("top", "qcd"):
        assert out[ds]["cutflow"]["jets_scored"] > 0
        assert out[ds]["njets"].sum(flow=True).value == ref[ds]["cutflow"]["jets_scored"]


# ---- `coffea-jetimg run` under bad input and failing chunks (issue 19) -------------------------

import json  # noqa: E402
import shutil  # noqa: E402

import uproot  # noqa: E402

from coffea_jetimg.cli import main as cli_main  # noqa: E402


def _rewrite(src: str, dst, n_baskets: int) -> str:
    """Copy ``src``'s Events tree with every branch in ``n_baskets`` baskets (one per extend)."""
    import awkward as ak

    t = uproot.open(src)["Events"]
    arrs = t.arrays(library="ak", how=dict)
    colls = {k[1:] for k in arrs if k.startswith("n") and any(x.startswith(k[1:] + "_") for x in arrs)}
    flat = {k: v for k, v in arrs.items()
            if k.split("_")[0] not in colls and not (k.startswith("n") and k[1:] in colls)}
    edges = np.linspace(0, t.num_entries, n_baskets + 1).astype(int)
    with uproot.recreate(dst) as f:
        for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            d = {c: ak.zip({k[len(c) + 1:]: v[a:b] for k, v in arrs.items() if k.startswith(c + "_")}) for c in colls}
            d.update({k: v[a:b] for k, v in flat.items()})
            if i == 0:
                f.mktree("Events", d, counter_name=lambda c: "n" + c,
                         field_name=lambda outer, inner: inner if outer == "" else outer + "_" + inner)
            else:
                f["Events"].extend(d)
    return str(dst)


@pytest.fixture(scope="module")
def corrupt_qcd(tmp_path_factory, generated_qcd):
    """generated_qcd in 3 baskets (entries 0-100, 100-200, 200-300) with FatJet_pt's second basket
    corrupted (its zlib stream fails to decompress): what a bad disk or transfer leaves."""
    d = tmp_path_factory.mktemp("corrupt")
    clean = _rewrite(generated_qcd, d / "qcd3.root", 3)
    bad = d / "qcd3_bad.root"
    shutil.copy(clean, bad)
    br = uproot.open(clean)["Events"]["FatJet_pt"]
    seek, nbytes = int(br.member("fBasketSeek")[1]), int(br.member("fBasketBytes")[1])
    with open(bad, "r+b") as fh:
        fh.seek(seek + nbytes - 6)
        b = fh.read(4)
        fh.seek(seek + nbytes - 6)
        fh.write(bytes(x ^ 0xFF for x in b))
    return clean, str(bad)


def _fileset(tmp_path, spec, name="fs.json"):
    p = tmp_path / name
    p.write_text(json.dumps({ds: {"files": files, "metadata": {"label": ds}} for ds, files in spec.items()}))
    return str(p)


def _cli_run(fs, art, out, *extra):
    return cli_main(["run", "--fileset", fs, "--model", art, "--executor", "iterative", "--pt-min", "300",
                     "--no-plots", "--no-progress", "-o", str(out), *extra])


def _hists(out):
    from coffea.util import load

    return load(str(out / "hists.coffea"))


def test_skip_bad_files_leaves_out_files_that_cannot_feed_the_models(cnn_artifact, generated_top, generated_qcd,
                                                                      cms_dir, bad_dir, tmp_path, capsys,
                                                                      compare_outputs):
    bad = {str(cms_dir / "nano_tt_v12.root"): "no jet constituents", str(bad_dir / "zero_events.root"): "no events",
           str(cms_dir / "nano_dy.root"): "cannot feed the models", str(cms_dir): "is a directory",
           str(bad_dir / "truncated.root"): "cannot be opened"}
    names = list(bad)
    fs = _fileset(tmp_path, {"top": [generated_top, names[0], names[1]], "qcd": [generated_qcd, *names[2:]]})
    ref_fs = _fileset(tmp_path, {"top": [generated_top], "qcd": [generated_qcd]}, "ref.json")
    assert _cli_run(ref_fs, cnn_artifact, tmp_path / "ref") == 0
    # without the flag: the first bad file is named before any chunk runs, and nothing is written
    assert _cli_run(fs, cnn_artifact, tmp_path / "noflag") == 2
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert any(f"error: {p}: {why}" in line for p, why in bad.items()) and "--skip-bad-files" in line, line
    assert not (tmp_path / "noflag").exists()
    fs1 = _fileset(tmp_path, {"top": [generated_top, names[0]]}, "one.json")
    assert _cli_run(fs1, cnn_artifact, tmp_path / "noflag") == 2
    assert f"{names[0]}: cannot feed the models: " in capsys.readouterr().err
    # with it: every bad file is skipped with its reason, the good files' histograms are unchanged
    assert _cli_run(fs, cnn_artifact, tmp_path / "skip", "--skip-bad-files") == 0
    summary = json.loads((tmp_path / "skip" / "summary.json").read_text())
    assert set(summary["bad_files"]) == set(bad)
    for path, why in bad.items():
        assert why in summary["bad_files"][path], (path, summary["bad_files"][path])
    assert summary["complete"] is True and summary["lost_chunks"] == []
    assert compare_outputs(_hists(tmp_path / "skip"), _hists(tmp_path / "ref")) >= 6


def test_corrupt_basket_chunk_is_listed_and_counted(cnn_artifact, generated_top, corrupt_qcd, tmp_path, capsys,
                                                    compare_outputs):
    clean, bad = corrupt_qcd
    fs = _fileset(tmp_path, {"top": [generated_top], "qcd": [bad]})
    out = tmp_path / "skip"
    assert _cli_run(fs, cnn_artifact, out, "--skip-bad-files", "--chunksize", "100") == 0
    err = capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is True and s["chunks"] == {"planned": 6, "in_histograms": 5, "lost": 1}
    (lost,) = s["lost_chunks"]
    assert (lost["dataset"], lost["file"], lost["entry_start"], lost["entry_stop"]) == ("qcd", bad, 100, 200)
    assert "decompress" in lost["error"] and f"{bad} entries 100-200" in err
    cf = s["datasets"]["qcd"]["cutflow"]
    assert cf["events"] == 200 and cf["events_lost"] == 100 and s["events_lost"] == 100
    assert s["datasets"]["top"]["cutflow"]["events_lost"] == 0
    # the top histograms are those of a run without the bad file
    ref = tmp_path / "ref"
    assert _cli_run(_fileset(tmp_path, {"top": [generated_top], "qcd": [clean]}, "r.json"), cnn_artifact, ref,
                    "--chunksize", "100") == 0
    assert compare_outputs(_hists(out)["top"], _hists(ref)["top"]) >= 6
    # without the flag the run fails (exit 1) naming the chunk, keeps the other 5 chunks, says incomplete
    capsys.readouterr()
    out2 = tmp_path / "noflag"
    assert _cli_run(fs, cnn_artifact, out2, "--chunksize", "100") == 1
    err = capsys.readouterr().err
    assert f"{bad}: entries 100-200 of dataset 'qcd' failed: zlib.error" in err and "complete: false" in err
    s2 = json.loads((out2 / "summary.json").read_text())
    assert s2["complete"] is False and len(s2["chunks_in_histograms"]) == 5 and "entries 100-200" in s2["error"]
    assert compare_outputs(_hists(out2)["top"], _hists(ref)["top"]) >= 6
    # the report says so too
    from coffea_jetimg._report_cli import build_markdown

    md = build_markdown(s2, "t")
    assert "## Incomplete run" in md and "hold 5 of 6 chunks" in md
    assert f"| `{bad}` | 100–200 | qcd | zlib.error" in md and "100 events lost" in md


def test_lost_chunk_reported_on_dask(cnn_artifact, generated_top, corrupt_qcd, tmp_path, capsys):
    """A chunk that fails on a Dask worker is listed like on the iterative executor (it used to
    vanish with ``bad_files: {}``), and the cluster closes without the nanny's kill warning."""
    _, bad = corrupt_qcd
    fs = _fileset(tmp_path, {"top": [generated_top], "qcd": [bad]})
    out = tmp_path / "dask"
    rc = cli_main(["run", "--fileset", fs, "--model", cnn_artifact, "--executor", "dask", "--workers", "2",
                   "--chunksize", "100", "--pt-min", "300", "--no-plots", "--no-progress", "--skip-bad-files",
                   "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert [(c["file"], c["entry_start"]) for c in s["lost_chunks"]] == [(bad, 100)]
    assert "decompress" in s["lost_chunks"][0]["error"]
    assert "still alive" not in err


def test_failed_run_replaces_earlier_outputs(cnn_artifact, generated_top, corrupt_qcd, tmp_path, capsys):
    """An earlier run's files never sit beside a failed run's: -o then holds only what this run wrote."""
    _, bad = corrupt_qcd
    out = tmp_path / "o"
    assert _cli_run(_fileset(tmp_path, {"top": [generated_top]}, "a.json"), cnn_artifact, out) == 0
    (out / "stale_from_earlier_run.txt").write_text("x")
    assert _cli_run(_fileset(tmp_path, {"qcd": [bad]}, "b.json"), cnn_artifact, out, "--chunksize", "300") == 1
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is False and s["chunks_in_histograms"] == []
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert not list(tmp_path.glob(".o.*"))  # no temporary folder left behind


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_package_warnings_shown_once(cnn_artifact, bad_dir, tmp_path, capsys, executor):
    """The package's own warnings (non-finite candidates) reach the user once each, with a count,
    on the iterative executor too; coffea's schema noise and progress bars do not (--no-progress)."""
    fs = _fileset(tmp_path, {"qcd": [str(bad_dir / "nan_and_unwrapped_phi.root")]})
    assert _cli_run(fs, cnn_artifact, tmp_path / "w", "--chunksize", "1", "--executor", executor,
                    "--workers", "1") == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "non-finite" in ln]
    assert len(lines) >= 1 and all(ln.startswith("coffea-jetimg run: warning") for ln in lines), err
    assert len(lines) == len(set(lines)) and "Missing cross-reference" not in err
    assert "Processing" not in err and "Preprocessing" not in err
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert any("non-finite" in k for k in s["warnings"])


def test_file_in_two_datasets_warns(cnn_artifact, generated_top, tmp_path, capsys):
    fs = _fileset(tmp_path, {"top": [generated_top], "also_top": [generated_top]})
    with pytest.warns(UserWarning, match=r"listed in datasets \['top', 'also_top'\]"):
        assert _cli_run(fs, cnn_artifact, tmp_path / "d", "--maxchunks", "1", "--chunksize", "20") == 0
