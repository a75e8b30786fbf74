"""The console script: every subcommand is there and documents every option."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coffea_jetimg.cli import COMMANDS, build_parser, main


def test_all_subcommands_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS) == {"generate", "train", "run", "report", "demo", "serve",
                                                 "export-triton", "wrap", "fit"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help and len(action.help) > 5, f"{command} {action.option_strings or action.dest} has no help"


def test_console_script_runs():
    res = subprocess.run([sys.executable, "-m", "coffea_jetimg.cli", "run", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    assert "--skip-bad-files" in res.stdout and "--scheduler" in res.stdout


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "generate" in capsys.readouterr().out


def test_processors_importable_under_package_name():
    from coffea_jetimg.processors import EventImageProcessor, JetTaggingProcessor
    from coffea.processor import ProcessorABC

    assert issubclass(JetTaggingProcessor, ProcessorABC) and issubclass(EventImageProcessor, ProcessorABC)


# ---- bad command lines and bad filesets: one clear line, exit 2 (issue 19, item 15) -----------

import json  # noqa: E402


def _run_argv(fs, *extra):
    return ["run", "--fileset", str(fs), "--model", "no_such_model_dir", "--executor", "iterative",
            "--no-progress", "-o", "never_written", *extra]


@pytest.mark.parametrize("content,expect", [
    (None, "fileset file does not exist"),
    ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2"),
    ('["a.root"]', "holds a list; expected {\"dataset\""),
    ('{"top": 3}', "dataset 'top' is a int"),
    ('{"top": {"metadata": {}}}', "dataset 'top' has no 'files' list or mapping"),
    ('{"top": {"files": [1, 2]}}', "'files' must hold paths"),
    ('{"top": {"files": ["a.root"], "metadata": "top"}}', "'metadata' is a str, not a mapping"),
])
def test_bad_fileset_one_line_exit_2(tmp_path, capsys, content, expect):
    fs = tmp_path / "fs.json"
    if content is not None:
        fs.write_text(content)
    assert main(_run_argv(fs)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err and str(fs) in err, err
    assert not (tmp_path / "never_written").exists()


def test_fileset_is_a_directory(tmp_path, capsys):
    assert main(_run_argv(tmp_path)) == 2
    assert "is a directory; --fileset takes a JSON file" in capsys.readouterr().err


def test_wrong_tree_name(tmp_path, pfnano_file):
    """The tree name a fileset gives is checked against the file's trees (it used to say 'truncated')."""
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": {"files": {pfnano_file: "Evnts"}}}))
    from coffea_jetimg._run_cli import check_fileset, load_fileset
    from coffea_jetimg.errors import InputFileError

    with pytest.raises(InputFileError, match=r"has no tree 'Evnts'; its trees: \['Events'"):
        check_fileset(load_fileset(fs), skip_bad=False)


@pytest.mark.parametrize("option,value", [("--workers", "0"), ("--chunksize", "0"), ("--maxchunks", "-1"),
                                          ("--batch-size", "0"), ("--chunksize", "many")])
def test_bad_numbers_refused_by_the_parser(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_:
        main(_run_argv(tmp_path / "fs.json", option, value))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in err and ("must be at least 1" in err or "whole number" in err), err


def test_cuda_device_without_cuda(tmp_path, capsys, pfnano_file):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": [pfnano_file]}))
    assert main(_run_argv(fs, "--device", "cuda")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device cuda: torch sees no CUDA device" in err, err


def test_unwrap_error_finds_the_package_message():
    from coffea_jetimg._run_cli import unwrap_error
    from coffea_jetimg.errors import ConstituentsError

    inner = ConstituentsError("no jet constituents for 'FatJet'")
    try:
        try:
            raise inner
        except ConstituentsError as e:
            raise Exception("Failed processing file: WorkItem(...). The error was: " + repr(e) + ".") from e
    except Exception as wrapped:  # noqa: BLE001
        assert unwrap_error(wrapped) == "no jet constituents for 'FatJet'"
        # across Dask only the text survives: the package's message is still found in it
        assert unwrap_error(Exception(str(wrapped))) == "no jet constituents for 'FatJet'"


def test_zero_event_file_is_a_preflight_error(tmp_path, capsys, monkeypatch, pfnano_file, bad_dir, tiny_cnn):
    """A file with no events in a run's fileset: without --skip-bad-files one line naming it, exit 2,
    before any chunk runs and with no output; with the flag it is skipped and listed in summary.json."""
    torch = pytest.importorskip("torch")
    import json

    import coffea.processor

    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.images import JetImageSpec

    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    art = save_artifact(tmp_path / "cnn", tiny_cnn().eval(), {"name": "cnn", "architecture": "tiny",
                        "input": {"kind": "image", "image_spec": img}, "class_names": ["qcd", "top"],
                        "signal_class": "top"}, torch.randn(2, 1, 8, 8))
    empty = str(bad_dir / "zero_events.root")
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": [pfnano_file, empty]}))
    argv = ["run", "--fileset", str(fs), "--model", str(art), "--executor", "iterative", "--pt-min", "200",
            "--no-plots", "--no-progress"]
    real_runner = coffea.processor.Runner

    def no_chunks(*a, **k):
        raise AssertionError("a chunk ran")

    monkeypatch.setattr(coffea.processor, "Runner", no_chunks)
    assert main(argv + ["-o", str(tmp_path / "noflag")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{empty}: has no events" in line and "--skip-bad-files" in line, line
    assert not (tmp_path / "noflag").exists()
    monkeypatch.setattr(coffea.processor, "Runner", real_runner)
    assert main(argv + ["--skip-bad-files", "-o", str(tmp_path / "skip")]) == 0
    summary = json.loads((tmp_path / "skip" / "summary.json").read_text())
    assert summary["bad_files"] == {empty: "has no events"} and summary["empty_files"] == [empty]
    assert summary["complete"] is True and summary["datasets"]["qcd"]["cutflow"]["events"] == 10


def test_ctrl_c_of_a_dask_run_leaves_no_workers(tmp_path, generated_qcd, tiny_cnn):
    """SIGINT to the run's process group (a terminal's Ctrl-C) while the Dask workers run chunks:
    exit 130 with summary.json saying complete: false, and no process of the run left alive."""
    torch = pytest.importorskip("torch")
    psutil = pytest.importorskip("psutil")
    import json
    import os
    import signal
    import time

    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.images import JetImageSpec

    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    art = save_artifact(tmp_path / "cnn", tiny_cnn().eval(), {"name": "cnn", "architecture": "tiny",
                        "input": {"kind": "image", "image_spec": img}, "class_names": ["qcd", "top"],
                        "signal_class": "top"}, torch.randn(2, 1, 8, 8))
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": [generated_qcd]}))  # 150 chunks: far from done when interrupted
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "coffea_jetimg.cli", "run", "--fileset", str(fs), "--model", str(art),
                          "--executor", "dask", "--workers", "2", "--chunksize", "2", "--no-plots", "--no-progress",
                          "-o", str(out)], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True,
                         # SIGINT at its default, as in a terminal's foreground job: a suite started in
                         # the background (`pytest &`) has it ignored, and children inherit that
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def alive_in_session():
        found = []
        for q in psutil.process_iter():
            try:
                if os.getsid(q.pid) == p.pid and q.status() != psutil.STATUS_ZOMBIE:
                    found.append(q)
            except (OSError, psutil.Error):
                pass
        return found

    try:
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:  # both workers busy (on chunks) for a while
            workers = [c for c in psutil.Process(p.pid).children() if "resource_tracker" not in " ".join(c.cmdline())]
            if len(workers) >= 2 and min(sum(w.cpu_times()[:2]) for w in workers) > 3.0:
                break
            time.sleep(0.2)
        assert p.poll() is None, p.communicate()
        with open(f"/proc/{p.pid}/status") as f:  # which signals the run ignores, for the message below
            sig_ign = next((line.split()[1] for line in f if line.startswith("SigIgn:")), "?")
        os.killpg(p.pid, signal.SIGINT)
        out_text, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, (f"SigIgn {sig_ign}", out_text[-2000:], err[-3000:])
    assert "interrupted" in err and json.loads((out / "summary.json").read_text())["complete"] is False
    deadline = time.time() + 2
    while alive_in_session() and time.time() < deadline:
        time.sleep(0.1)
    assert not alive_in_session(), [" ".join(q.cmdline()) for q in alive_in_session()]


def test_second_run_in_one_process_reads_its_own_metadata(tmp_path, pfnano_file, tiny_cnn):
    """coffea's process-wide metadata cache would hand the second run the first run's fileset
    metadata (coffea#662): the run CLI gives each run its own cache, so label and is_mc follow."""
    torch = pytest.importorskip("torch")
    import json

    from coffea.util import load

    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.images import JetImageSpec

    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    art = save_artifact(tmp_path / "cnn", tiny_cnn().eval(), {"name": "cnn", "architecture": "tiny",
                        "input": {"kind": "image", "image_spec": img}, "class_names": ["qcd", "top"],
                        "signal_class": "top"}, torch.randn(2, 1, 8, 8))
    got = {}
    for name, meta in (("a", {"label": "qcd"}), ("b", {"label": "top", "is_mc": False})):
        fs = tmp_path / f"{name}.json"
        fs.write_text(json.dumps({"ds": {"files": [pfnano_file], "metadata": meta}}))
        assert main(["run", "--fileset", str(fs), "--model", str(art), "--executor", "iterative", "--no-plots",
                     "--no-progress", "-o", str(tmp_path / name)]) == 0
        out = load(str(tmp_path / name / "hists.coffea"))["ds"]
        got[name] = (list(out["score"]["cnn"].axes["class"]), out["cutflow"]["events_mc"])
    assert got["a"] == (["qcd"], 10) and got["b"] == (["top"], 0), got
