"""A run's files: deterministic checkpoint bytes, mode 0644, written as a pair or not at all, checked when read."""

import fnmatch
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from utils import engine, train
from utils.data import repo_root
from utils.engine import (OutputFolderError, RunFilesError, check_writable_folder, read_run, save_checkpoint,
                          save_run, write_files_atomically)
from utils.models import FINAL, build_model


def _temps(folder):
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_the_same_weights_saved_twice_give_identical_bytes(tmp_path):
    model = build_model(seed=3)
    a = save_checkpoint(model, tmp_path / "a.pt", FINAL, 0.13, 0.31, {"best_epoch": 2})
    b = save_checkpoint(model, tmp_path / "other_name.pt", FINAL, 0.13, 0.31, {"best_epoch": 2})
    assert a.read_bytes() == b.read_bytes()  # no file name, time or address inside
    c = save_checkpoint(build_model(seed=4), tmp_path / "c.pt", FINAL, 0.13, 0.31, {"best_epoch": 2})
    assert c.read_bytes() != a.read_bytes()


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_result_files_are_readable_by_everyone_mode_0644(tmp_path, umask_022):
    pt = save_checkpoint(build_model(), tmp_path / "m.pt", FINAL, 0.13, 0.31)
    metrics = save_run(tmp_path / "run", pt.read_bytes(), {"model": FINAL})
    modes = {p.name: os.stat(p).st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"m.pt": 0o644, "run.pt": 0o644, "run.json": 0o644}, {k: oct(v) for k, v in modes.items()}
    assert metrics["checkpoint"] == "run.pt"


def test_temp_files_never_take_a_result_name_and_git_ignores_them(tmp_path):
    tmp = engine._temp_path(tmp_path / f"{FINAL}_seed1.json")
    assert tmp.parent == tmp_path and tmp.name.startswith(".") and not tmp.name.endswith((".json", ".pt"))
    patterns = [line.strip() for line in (repo_root() / ".gitignore").read_text().splitlines()]
    assert any(fnmatch.fnmatch(tmp.name, p) for p in patterns if p and not p.startswith(("#", "!", "/")))


def test_a_pair_is_written_with_the_checkpoint_hash_and_read_back_checked(tmp_path):
    checkpoint = (tmp_path / "x.pt")
    save_checkpoint(build_model(seed=1), checkpoint, FINAL, 0.13, 0.31)
    written = save_run(tmp_path / "run", checkpoint.read_bytes(), {"model": FINAL, "test_acc": 0.5})
    assert read_run(tmp_path / "run.json") == written == json.loads((tmp_path / "run.json").read_text())
    assert read_run(tmp_path / "run")["test_acc"] == 0.5  # the stem works too
    assert _temps(tmp_path) == []


def test_a_mismatched_missing_or_damaged_pair_is_detected(tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    save_checkpoint(build_model(seed=1), one, FINAL, 0.13, 0.31)
    save_checkpoint(build_model(seed=2), two, FINAL, 0.13, 0.31)
    save_run(tmp_path / "run", one.read_bytes(), {"model": FINAL})
    os.replace(two, tmp_path / "run.pt")  # a checkpoint of another run, as a kill -9 between the renames leaves
    with pytest.raises(RunFilesError, match="sha256 differs"):
        read_run(tmp_path / "run.json")
    (tmp_path / "run.pt").unlink()
    with pytest.raises(RunFilesError, match="run.pt, which is missing"):
        read_run(tmp_path / "run.json")
    (tmp_path / "run.json").write_text('{"model": ')
    with pytest.raises(RunFilesError, match="not valid JSON"):
        read_run(tmp_path / "run.json")
    with pytest.raises(RunFilesError, match="no run at"):
        read_run(tmp_path / "absent.json")


def test_runs_written_before_the_hash_was_recorded_still_read(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"model": FINAL, "test_acc": 0.99}))
    assert read_run(tmp_path / "old.json")["test_acc"] == 0.99


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_between_the_renames_waits_until_both_files_are_new(tmp_path, monkeypatch, sig):
    class Stopped(BaseException):
        pass

    def stop(signum, frame):
        raise Stopped(signum)

    previous = signal.signal(sig, stop)
    a, b = tmp_path / "a.pt", tmp_path / "a.json"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    real_replace, renamed = os.replace, []

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        renamed.append(dst)
        if len(renamed) == 1:
            signal.raise_signal(sig)  # Ctrl-C or kill, right after the first rename

    monkeypatch.setattr(engine.os, "replace", replace_then_signal)
    try:
        with pytest.raises(Stopped):
            write_files_atomically({a: b"new a", b: b"new b"})
    finally:
        signal.signal(sig, previous)
    assert (a.read_bytes(), b.read_bytes()) == (b"new a", b"new b")
    assert _temps(tmp_path) == []


def test_a_failure_while_writing_leaves_the_old_files_and_no_temp_file(tmp_path):
    a = tmp_path / "a.pt"
    a.write_bytes(b"old a")
    with pytest.raises(OSError):
        write_files_atomically({a: b"new a", tmp_path / "missing-folder" / "a.json": b"new b"})
    assert a.read_bytes() == b"old a" and _temps(tmp_path) == []


def test_temp_files_of_killed_processes_are_removed_by_the_next_write(tmp_path):
    dead = tmp_path / ".run.json.999999999.tmp"  # above any pid Linux hands out
    alive = tmp_path / f".run.json.{os.getppid()}.tmp"  # a running process's: left alone
    dead.write_bytes(b"partial")
    alive.write_bytes(b"in progress")
    write_files_atomically({tmp_path / "run.json": b"{}"})
    assert not dead.exists() and alive.exists()


def test_the_output_folder_is_probed_and_refused_clearly(tmp_path):
    assert check_writable_folder(tmp_path / "new" / "runs").is_dir()
    assert list((tmp_path / "new" / "runs").iterdir()) == []  # the probe file is gone
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        check_writable_folder(a_file)
    with pytest.raises(OutputFolderError, match="cannot create"):
        check_writable_folder(a_file / "runs")  # a path under a file: what root cannot write either


def test_a_read_only_output_folder_is_refused(tmp_path, monkeypatch):
    """A folder the user may not write to. Root may write anywhere, so there the probe's refusal is simulated."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.name != "posix" or os.geteuid() == 0:
        real_open = open

        def refuse_in_folder(path, *args, **kwargs):
            if os.path.dirname(os.fspath(path)) == str(folder):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refuse_in_folder)
    try:
        with pytest.raises(OutputFolderError, match="cannot write to the output folder"):
            check_writable_folder(folder)
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == [], "the probe file is removed"


def test_a_run_that_fails_before_the_end_writes_nothing_and_keeps_the_old_pair(tmp_path, data_root, monkeypatch):
    kwargs = dict(model_name=FINAL, seed=1, epochs=1, out=tmp_path, data_root=data_root, subset=64,
                  progress=False, log=lambda s: None)
    first = train.train_model(**kwargs)
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(old) == [f"{FINAL}_seed1.json", f"{FINAL}_seed1.pt"]
    assert read_run(tmp_path / f"{FINAL}_seed1.json") == first

    def evaluation_fails(*args, **kw):
        raise RuntimeError("the test set could not be evaluated")

    monkeypatch.setattr(train, "evaluate", evaluation_fails)  # the last step before writing
    with pytest.raises(RuntimeError, match="could not be evaluated"):
        train.train_model(**dict(kwargs, seed=2))
    with pytest.raises(RuntimeError, match="could not be evaluated"):
        train.train_model(**dict(kwargs, epochs=2))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == old  # seed 2 absent, seed 1 untouched


CHILD = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    from utils.engine import write_files_atomically
    from utils.train import raise_on_sigterm
    # Ctrl-C as in a terminal: a test runner started as a background job passes SIGINT on ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise_on_sigterm()
    folder = Path(sys.argv[1])
    print("ready", flush=True)
    for generation in range(10**6):
        tag = str(generation).encode()
        write_files_atomically({folder / "run.pt": tag * 200_000, folder / "run.json": tag})
""")


@pytest.mark.skipif(os.name != "posix", reason="signals as on Linux and macOS")
def test_killing_a_writer_at_random_moments_leaves_a_whole_pair_and_no_temp_file(tmp_path):
    rng = random.Random(0)
    whole_pairs = 0
    for attempt, sig in enumerate([signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT]):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, cwd=repo_root())
        try:
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.05, 0.5))
            child.send_signal(sig)
            child.wait(timeout=60)
        finally:  # a writer the signal did not stop must not go on writing after the test
            child.kill()
            child.wait()
        assert _temps(folder) == []
        pt, js = folder / "run.pt", folder / "run.json"
        if js.exists():
            assert pt.read_bytes() == js.read_bytes() * 200_000  # the same generation
            whole_pairs += 1
        else:
            assert not pt.exists()
    assert whole_pairs > 0, "no kill came after a write: nothing was tested"
