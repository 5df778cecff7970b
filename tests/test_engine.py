"""Seeding, learning, best-on-validation choice, and checkpoints that fail clearly."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from utils.config import TrainConfig
from utils.engine import (CheckpointError, evaluate, fit, load_checkpoint, load_trained_model, pick_device,
                          save_checkpoint)
from utils.models import FINAL, STEPS, build_model

SHORT = replace(STEPS[FINAL].config, epochs=2, batch_size=64)


def _history_without_time(h):
    return {k: v for k, v in h.items() if k != "seconds"}


def test_two_seeded_runs_give_identical_histories(small_splits):
    h1 = fit(build_model(seed=5), small_splits, SHORT, seed=5, progress=False, log=None)
    h2 = fit(build_model(seed=5), small_splits, SHORT, seed=5, progress=False, log=None)
    h3 = fit(build_model(seed=6), small_splits, SHORT, seed=6, progress=False, log=None)
    assert _history_without_time(h1) == _history_without_time(h2)
    assert h1["train_loss"] != h3["train_loss"]


def test_the_loss_falls_on_a_small_subset(small_splits):
    config = TrainConfig(epochs=4, batch_size=32, optimizer="adam", lr=3e-3, schedule="constant")
    h = fit(build_model(seed=1), small_splits, config, seed=1, progress=False, log=None)
    assert h["train_loss"][-1] < 0.7 * h["train_loss"][0]
    assert h["val_acc"][-1] > 0.5  # well above chance (0.1) after 4 short epochs


def test_fit_keeps_the_best_on_validation_weights(small_splits, tmp_path):
    model = build_model()
    h = fit(model, small_splits, SHORT, seed=2, progress=False, log=None, checkpoint_path=tmp_path / "m.pt",
            model_name=FINAL)
    best = h["best_epoch"]
    assert h["best_val_acc"] == max(h["val_acc"]) == h["val_acc"][best - 1]
    _, acc = evaluate(model, small_splits.val_x, small_splits.val_y)
    assert acc == pytest.approx(h["best_val_acc"])
    reloaded, info = load_trained_model(tmp_path / "m.pt")
    assert info["model_name"] == FINAL and info["info"]["best_epoch"] == best
    assert evaluate(reloaded, small_splits.val_x, small_splits.val_y)[1] == pytest.approx(acc)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # the temp file was renamed, none left behind


def test_a_checkpoint_of_another_architecture_is_refused_clearly(tmp_path):
    path = save_checkpoint(build_model("1_skeleton"), tmp_path / "skeleton.pt", "1_skeleton", 0.13, 0.31)
    with pytest.raises(CheckpointError, match="1_skeleton.*build_model"):
        load_checkpoint(path, build_model(FINAL))


def test_a_corrupt_or_missing_checkpoint_is_refused_clearly(tmp_path):
    path = save_checkpoint(build_model(), tmp_path / "m.pt", FINAL, 0.13, 0.31)
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by an interrupted copy
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path, build_model())
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.pt", build_model())
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match="not written by"):
        load_checkpoint(other, build_model())


def test_the_device_is_chosen_automatically_or_as_asked():
    expected = "cuda" if torch.cuda.is_available() else None
    assert pick_device().type in {"cuda", "mps", "cpu"}
    if expected:
        assert pick_device().type == expected
    assert pick_device("cpu") == torch.device("cpu")


def test_the_command_line_entry_runs_end_to_end(tmp_path, data_root):
    cmd = [sys.executable, "-m", "utils.train", "--epochs", "1", "--subset", "256", "--seeds", "1", "2",
           "--out", str(tmp_path), "--data-root", str(data_root), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "epoch  1/1" in run.stdout and "test acc" in run.stdout
    metrics = json.loads((tmp_path / f"{FINAL}_seed1.json").read_text())
    for key in ("parameters", "epochs", "best_val_acc", "test_acc", "seconds", "torch", "device", "history"):
        assert key in metrics, key
    assert metrics["epochs"] == 1 and 0 <= metrics["test_acc"] <= 1
    assert metrics["parameters"] < 20_000
    summary = json.loads((tmp_path / f"{FINAL}_seeds.json").read_text())
    assert [s["seed"] for s in summary["seeds"]] == [1, 2]
    load_checkpoint(tmp_path / f"{FINAL}_seed1.pt", build_model())


def test_the_command_line_refuses_20_epochs_or_more():
    run = subprocess.run([sys.executable, "-m", "utils.train", "--epochs", "20"], capture_output=True, text=True)
    assert run.returncode == 2 and "fewer than 20" in run.stderr
