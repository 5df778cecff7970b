"""The experiment scripts: a learner's runs of scripts/try_recipes.py and scripts/try_tta.py never touch results/."""

import importlib.util
import json
import re

import pytest

from utils import engine, report, train
from utils.data import repo_root

ROOT = repo_root()


def _script(name: str):
    """scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


try_recipes, try_tta = _script("try_recipes"), _script("try_tta")


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
        _script(script).main(["--help"])
    assert "--publish" in capsys.readouterr().out
