"""The command line: the README's main command leaves the repository clean, and every bad input ends in one line."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import torch

from utils import data, train
from utils.data import ENV_VAR, repo_root
from utils.engine import DeviceError, read_run, save_checkpoint
from utils.models import FINAL, build_model

SMOKE = ["--subset", "64", "--epochs", "1", "--no-progress"]


def readme_main_command() -> list[str]:
    """The README's main command (Quick start, first code block), as arguments after `python -m utils.train`."""
    readme = (repo_root() / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", quick_start, re.S).group(1)
    command = block[block.index("python -m utils.train"):].strip()
    return shlex.split(command)[3:]


def _git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
                          cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def clean_copy(tmp_path):
    """The repository's files as a fresh clone has them (committed or not, nothing git ignores), committed anew."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    root = repo_root()
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root).split("\0")
    copy = tmp_path / "repo"
    for name in filter(None, listed):
        if (root / name).is_file():  # not one deleted in the work tree
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, copy / name)
    _git("init", "-q", cwd=copy)
    _git("add", "-A", cwd=copy)
    _git("commit", "-q", "-m", "copy", cwd=copy)
    return copy


def test_the_readmes_main_command_writes_only_to_runs_and_leaves_git_clean(clean_copy, data_root):
    args = readme_main_command()
    assert "--out" not in args and "--publish" not in args  # the default: runs/
    env = dict(os.environ, **{ENV_VAR: str(data_root)})
    for _ in range(2):  # twice: the second run replaces the first run's pair
        run = subprocess.run([sys.executable, "-m", "utils.train", *args, *SMOKE], cwd=clean_copy, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        assert _git("status", "--porcelain", "--untracked-files=all", cwd=clean_copy) == ""
    files = sorted(p.name for p in (clean_copy / "runs").rglob("*"))
    assert files == [f"{FINAL}_seed1.json", f"{FINAL}_seed1.pt"]  # the pair, no temp file
    assert read_run(clean_copy / "runs" / f"{FINAL}_seed1.json")["epochs"] == 1


def test_the_command_line_refuses_to_write_into_results_without_publish(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main(["--out", str(train.PUBLISHED / "mine"), *SMOKE])
    assert exit_.value.code == 2 and "published runs" in capsys.readouterr().err
    assert not (train.PUBLISHED / "mine").exists()


def _fake_run(folder, seed, **changes):
    metrics = {"model": FINAL, "seed": seed, "parameters": 7988, "epochs": 15, "subset": None,
               "config": {"lr": 0.2}, "test_acc": 0.99, "best_val_acc": 0.99, "best_epoch": 15, "seconds": 1.0,
               "torch": torch.__version__, "device": "cpu", "cpu_threads": 1}
    (folder / f"{FINAL}_seed{seed}.json").write_text(json.dumps(dict(metrics, **changes)))


def _fake_raw(root, n_labels):
    """Small train and t10k files in root/MNIST/raw, the training labels file `n_labels` long for 10 images."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 10), ("t10k", 10)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes((2051).to_bytes(4, "big") + n.to_bytes(4, "big")
                                                          + (28).to_bytes(4, "big") * 2 + bytes(n * 784))
        m = n_labels if prefix == "train" else n
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big") + m.to_bytes(4, "big")
                                                          + bytes(m))
    return raw


def bad_inputs(tmp_path):
    """(argv, exit status, text the one line must hold) for every kind of bad input."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    disagree = {}
    for case, changes in {"epochs": {"epochs": 14}, "subset": {"subset": 64}, "model": {"model": "7_stretch"},
                          "no test": {"test_acc": None}, "config": {"config": {"lr": 0.1}}}.items():
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        _fake_run(folder, 1)
        _fake_run(folder, 2, **changes)
        disagree[case] = folder
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    pt = save_checkpoint(build_model(seed=1), mismatched / f"{FINAL}_seed1.pt", FINAL, 0.13, 0.31)
    _fake_run(mismatched, 1, checkpoint=pt.name, checkpoint_sha256="0" * 64)
    _fake_run(mismatched, 2)
    short_labels = tmp_path / "short_labels"
    _fake_raw(short_labels, n_labels=9)
    cases = [
        (["--device", "tpu"], 2, "unknown device 'tpu'"),
        (["--subset", "0"], 2, "--subset must be 1 to 50000"),
        (["--subset", "60000"], 2, "--subset must be 1 to 50000"),
        (["--out", ""], 2, "--out is empty"),
        (["--seed", "3", "--seeds", "1", "2"], 2, "give --seed or --seeds, not both"),
        (["--seed", "-1"], 2, "seeds must be 0 or more"),
        (["--seeds", "1", "-2"], 2, "seeds must be 0 or more"),
        (["--seeds", "1", "1"], 2, "lists a seed twice"),
        (["--threads", "-1"], 2, "--threads must be at least 1"),
        (["--threads", "0"], 2, "--threads must be at least 1"),
        (["--epochs", "20"], 2, "fewer than 20"),
        (["--epochs", "0"], 2, "between 1 and 19 (the exercise allows fewer than 20), got 0"),
        (["--seed", "one"], 2, "invalid int value"),
        (["--model", "nope"], 2, "invalid choice"),
        (["--out", str(a_file)], 1, "is a file, not a folder"),
        (["--out", str(a_file / "runs")], 1, "cannot create the output folder"),
        (["--summarize", "--seeds", "1", "2", "--out", str(empty)], 1, "no run at"),
        (["--summarize", "--seeds", "1", "2", "--no-test"], 2, "--no-test runs do not have"),
        (["--summarize", "--seeds", "1", "2", "--epochs", "5"], 2, "--epochs and --subset do not apply"),
        (["--summarize", "--seeds", "1", "2", "--out", str(mismatched)], 1, "sha256 differs"),
        (["--data-root", str(short_labels), "--subset", "4", "--out", str(tmp_path / "o")], 1,
         "9 labels for the 10 images"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], 1, "CUDA is not available"))
    cases += [(["--summarize", "--seeds", "1", "2", "--out", str(folder)], 1, text)
              for text, folder in zip(["differ in epochs", "differ in subset", "differ in model",
                                       "has no test accuracy", "differ in recipe"], disagree.values())]
    return cases


def _one_line_error(capsys, argv):
    """Exit status and stderr of train.main(argv), which must be one line and no traceback."""
    try:
        status = train.main([*argv, *SMOKE[4:]])
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return status, err


def test_every_bad_input_ends_in_one_line_naming_it_and_a_non_zero_status(tmp_path, capsys):
    for argv, status, text in bad_inputs(tmp_path):
        got, err = _one_line_error(capsys, argv)
        assert (got, True) == (status, text in err), (argv, err)
        assert err.startswith("python -m utils.train: error: "), err
    assert not list(tmp_path.glob("**/*.tmp")) and not (tmp_path / "empty" / f"{FINAL}_seeds.json").exists()


def test_missing_data_that_cannot_be_downloaded_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "MIRRORS", ["http://127.0.0.1:9/mnist/"])  # offline, at once
    status, err = _one_line_error(capsys, ["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert status == 1 and "MNIST was not found under" in err and ENV_VAR in err


def test_paths_starting_with_a_tilde_are_expanded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a_file").write_text("x")
    _fake_raw(tmp_path / "mnist", n_labels=9)
    status, err = _one_line_error(capsys, ["--out", "~/a_file"])
    assert status == 1 and str(tmp_path / "a_file") in err
    status, err = _one_line_error(capsys, ["--data-root", "~/mnist", "--out", "~/runs"])
    assert status == 1 and str(tmp_path / "mnist" / "MNIST" / "raw") in err and "9 labels" in err
    assert (tmp_path / "runs").is_dir() and not (tmp_path / "~").exists()


def test_debug_shows_the_traceback(capsys, monkeypatch):
    def no_gpu(*args, **kwargs):
        raise DeviceError("no GPU here")

    monkeypatch.setattr(train, "train_model", no_gpu)
    with pytest.raises(DeviceError):
        train.main(["--debug"])
    monkeypatch.setenv(train.DEBUG_VAR, "1")
    with pytest.raises(DeviceError):
        train.main([])


def test_ctrl_c_ends_with_one_line_and_status_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_model", interrupted)
    status, err = _one_line_error(capsys, ["--out", str(tmp_path)])
    assert status == 130 and "interrupted" in err


def test_a_bad_input_in_a_real_process_prints_one_line_and_exits_non_zero(tmp_path):
    run = subprocess.run([sys.executable, "-m", "utils.train", "--device", "tpu", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=repo_root())
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == ["python -m utils.train: error: unknown device 'tpu': use cpu, cuda (cuda:N) "
                                       "or mps, or leave the device out to take the best one available (see --help)"]
