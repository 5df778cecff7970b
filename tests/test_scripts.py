"""The experiment scripts: a learner's runs of scripts/try_recipes.py and scripts/try_tta.py never touch results/."""

import json
import re
import subprocess

import pytest
import torch

from script_module import script_module
from utils import engine, report, train
from utils.data import repo_root

ROOT = repo_root()
try_recipes, try_tta = script_module("scripts/try_recipes.py"), script_module("scripts/try_tta.py")


def test_every_round_writes_to_runs_unless_published():
    for n, (_, _, out, _) in try_recipes.ROUNDS.items():
        assert try_recipes.output_folder(out, publish=True) == out and out.parent == ROOT / "results"
        mine = try_recipes.output_folder(out, publish=False)
        assert mine == ROOT / "runs" / out.name, n
        assert try_recipes.confirm_folder(mine).parent == ROOT / "runs"  # stage 2 too


def test_list_counts_a_learners_own_runs_not_the_published_ones(tmp_path, monkeypatch, capsys):
    table, seeds, _, _ = try_recipes.ROUNDS[3]
    monkeypatch.setattr(try_recipes, "RUNS", tmp_path)
    assert try_recipes.main(["--round", "3", "--list"]) == 0  # nothing of the learner's yet: every run missing
    total = len(table) * len(seeds)
    assert capsys.readouterr().out.startswith(f"{total} of {total} runs missing")
    assert try_recipes.main(["--round", "3", "--list", "--publish"]) == 0  # the published round is complete
    assert capsys.readouterr().out.startswith(f"0 of {total} runs missing")


def test_tta_writes_to_runs_unless_published(tmp_path, monkeypatch, data_root):
    monkeypatch.setattr(train, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(report, "TTA_RULE", {**report.TTA_RULE, "seeds": [1]})
    monkeypatch.setattr(engine, "tta_accuracies", lambda *a, **k: {"none": 0.99})  # the evaluation is not the point
    assert try_tta.main(["--data-root", str(data_root)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert written == [f"runs/tried_tta/{report.TTA_RULE['model']}_seed1.json"]
    assert json.loads((tmp_path / written[0]).read_text())["val"] == {"none": 0.99}


def test_reproduce_results_publishes_every_script_run():
    """Only scripts/reproduce_results.sh writes results/: each call of the experiment scripts there passes --publish."""
    script = (ROOT / "scripts" / "reproduce_results.sh").read_text()
    calls = [line for line in script.splitlines()
             if re.search(r"python3? scripts/try_(recipes|tta)\.py", line.split("#")[0])]
    assert calls, "reproduce_results.sh no longer runs the experiment scripts?"
    for line in calls:
        assert "--publish" in line.split("#")[0], line


@pytest.mark.parametrize("script", ["try_recipes", "try_tta"])
def test_the_help_names_publish(script, capsys):
    with pytest.raises(SystemExit):
        script_module(f"scripts/{script}.py").main(["--help"])
    assert "--publish" in capsys.readouterr().out


@pytest.mark.parametrize("argv, says", [
    (["--only", "bogus"], "round 1 has no variation 'bogus'; its variations: "),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--round", "1", "--confirm", "--list"], "round 1 has one stage"),
])
def test_try_recipes_refuses_a_bad_choice_in_one_line_before_anything_runs(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        try_recipes.main(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_try_recipes_checks_the_device_before_the_first_run(capsys, monkeypatch):
    monkeypatch.setattr(try_recipes.subprocess, "run", lambda *a, **k: pytest.fail("a run was started"))
    with pytest.raises(SystemExit) as exit_:  # a misspelt device is a bad value, as in utils.train
        try_recipes.main(["--only", "batch64", "--device", "tpu"])
    err = capsys.readouterr().err  # its default is the CPU, not the best device, and the advice says so
    assert exit_.value.code == 2 and "unknown device 'tpu'" in err and "leave the device out to train on the CPU" in err
    if not torch.cuda.is_available():  # a device this machine lacks: what the run needs, status 1
        assert try_recipes.main(["--only", "batch64", "--device", "cuda"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "CUDA is not available" in err and "Traceback" not in err


def test_try_recipes_starts_no_more_runs_after_one_fails(tmp_path, capsys, monkeypatch):
    started = []

    def fake_run(cmd, **kwargs):
        started.append(cmd[cmd.index("--one") + 1:cmd.index("--one") + 3])
        return subprocess.CompletedProcess(cmd, 1 if len(started) == 1 else 0)

    monkeypatch.setattr(try_recipes, "RUNS", tmp_path)
    monkeypatch.setattr(try_recipes, "load_mnist_arrays", lambda root: None)
    monkeypatch.setattr(try_recipes.subprocess, "run", fake_run)
    assert try_recipes.main(["--only", "batch64", "batch256"]) == 1
    assert started == [["batch64", "1"]]
    assert "batch64 seed 1 failed" in capsys.readouterr().err


def test_try_tta_names_missing_data_in_one_line(tmp_path, capsys, monkeypatch):
    from utils import data

    monkeypatch.setattr(train, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(data, "MIRRORS", ["http://127.0.0.1:9/mnist/"])  # offline, at once
    assert try_tta.main(["--data-root", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MNIST was not found" in err and "Traceback" not in err


def test_a_tried_recipe_writes_validation_figures_only_to_the_learners_folder(tmp_path, monkeypatch, small_splits):
    # the rounds decide on validation: a result file of a tried recipe holds no test number to be tempted by
    from utils import data

    history = {"best_val_acc": 0.99, "best_epoch": 2, "val_acc": [0.98, 0.99], "train_acc": [0.97, 0.98],
               "live_val_acc": [0.97, 0.985]}
    monkeypatch.setattr(try_recipes, "RUNS", tmp_path)
    monkeypatch.setattr(data, "load_splits", lambda *a, **k: small_splits)
    monkeypatch.setattr(engine, "fit", lambda *a, **k: history)
    monkeypatch.setattr(engine, "tta_accuracies", lambda *a, **k: {"cross1": 0.99, "square1": 0.99})
    name = next(iter(try_recipes.ROUNDS[3][0]))
    threads = torch.get_num_threads()
    try:
        try_recipes.run_one(name, 1, round_=3)
    finally:
        torch.set_num_threads(threads)
    written = list(tmp_path.rglob("*.json"))
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [f"tried_round3/{name}_seed1.json"]
    result = json.loads(written[0].read_text())
    assert result["best_val"] == 0.99 and not [k for k in result if "test" in k.lower()]
