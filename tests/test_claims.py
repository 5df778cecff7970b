"""The published claims: the result files, the shipped weights, the README, and training from scratch."""

import json
import re
import statistics
from dataclasses import replace

import pytest

from utils.data import load_test_set, repo_root
from utils.engine import load_checkpoint, predict
from utils.models import FINAL, STEPS, STRETCH, build_model, count_parameters, split_overrides
from utils.report import (EXERCISE_BAR, LATE_BASE, LATE_RULES, LATE_SEEDS, ROUND2_RULE, TTA_RULE, below_bar_probability,
                          gpu_model, late_round_outcome, pct, read_json, render, requirements_table, round2_decision,
                          round2_rows, round_base, tta_outcome)
from utils.train import train_model

RESULTS = repo_root() / "results"


def _json(name):
    return json.loads((RESULTS / name).read_text())


def test_the_shipped_weights_give_exactly_the_published_test_accuracy(data_root):
    """Same weights, same images: the same right answers, on any CPU, except where the top two classes nearly tie."""
    published = _json(f"{FINAL}_seed1.json")
    model = build_model(FINAL)
    info = load_checkpoint(RESULTS / f"{FINAL}_seed1.pt", model)
    test_x, test_y = load_test_set(info["mean"], info["std"], data_root, download=False)
    log_probs = predict(model, test_x)
    top2 = log_probs.topk(2, dim=1).values
    near_ties = int((top2[:, 0] - top2[:, 1] < 1e-4).sum())  # where another CPU's rounding could flip the answer
    right = int((log_probs.argmax(1) == test_y).sum())
    assert abs(right - round(published["test_acc"] * len(test_y))) <= near_ties
    assert near_ties <= 2, "the shipped model's answers should not hinge on rounding"
    assert right / len(test_y) >= EXERCISE_BAR


@pytest.mark.parametrize("folder, model", [("", FINAL), ("", LATE_BASE), ("gpu/", gpu_model()), ("gpu_fp32/", FINAL)])
def test_the_ten_seed_summaries_match_their_runs(folder, model):
    s = _json(f"{folder}{model}_seeds.json")
    runs = [_json(f"{folder}{model}_seed{r['seed']}.json") for r in s["seeds"]]
    accs = [r["test_acc"] for r in runs]
    assert sorted(r["seed"] for r in runs) == list(range(1, 11)), "ten seeds, 1 to 10"
    assert [r["test_acc"] for r in s["seeds"]] == accs
    assert s["test_acc_mean"] == pytest.approx(statistics.mean(accs))
    assert s["test_acc_std"] == pytest.approx(statistics.stdev(accs))
    if not folder:  # on this project's CPU; the GPU's seeds are reported as they fell (see the next test)
        assert min(accs) >= EXERCISE_BAR, "every seed must reach the exercise's 99.4 %"
    assert {r["device"] for r in runs} == {s["device"]} and {r["torch"] for r in runs} == {s["torch"]}
    for r in runs:
        assert r["epochs"] <= 15 and r["parameters"] == count_parameters(build_model(model)) < 8000
        assert r["config"] == STEPS[model].config.to_dict() and r["spec"] == list(STEPS[model].spec)
        assert r["history"]["val_acc"][r["best_epoch"] - 1] == max(r["history"]["val_acc"])  # chosen on val


def _every_seed(folder: str, model: str = FINAL) -> list[dict]:
    """Every published run of a model (default: the final one) in results/<folder>, not only its summary's ten."""
    return [_json(f"{folder}{p.name}") for p in (RESULTS / folder).glob(f"{model}_seed*.json")
            if p.stem.rsplit("_seed", 1)[1].isdigit()]


def test_the_requirements_table_counts_every_published_seed_on_every_setup():
    """The README's verdict on 'every seed >= 99.4 %' is the worst seed over every setup (CPU, GPU, GPU without TF32)."""
    row = next(line for line in requirements_table().splitlines() if line.startswith("| Test accuracy (every seed) |"))
    cpu, gpu, fp32 = ([r["test_acc"] for r in _every_seed(folder)] for folder in ("", "gpu/", "gpu_fp32/"))
    assert len(cpu) >= 10
    assert row.endswith("✅ |") == (min(cpu + gpu + fp32) >= EXERCISE_BAR)
    assert f"min {pct(min(cpu))} (CPU, {len(cpu)} seeds)" in row
    assert not gpu or f"min {pct(min(gpu))} (GPU, {len(gpu)} seeds)" in row
    assert not fp32 or f"min {pct(min(fp32))} (GPU, TF32 off, {len(fp32)} seeds)" in row


def test_round_14_ran_with_tf32_off_and_its_readme_line_counts_every_run_below_the_bar():
    """Round 14's runs had TF32 off; round 13's predate the key (torch's default, TF32 on)."""
    fp32, gpu, cpu = (_every_seed(folder) for folder in ("gpu_fp32/", "gpu/", ""))
    assert len(fp32) == 36 and all(r["cuda_tf32"] is False and r["device"] == "cuda" for r in fp32)
    assert all(r.get("cuda_tf32", True) is True for r in gpu)
    runs = fp32 + gpu + cpu
    below = sum(r["test_acc"] < EXERCISE_BAR for r in runs)
    assert f"{below} of all {len(runs)} published runs of `{FINAL}` on the three setups" in render("<!-- begin:tf32 -->\n<!-- end:tf32 -->")


def test_round_16_repeated_round_14_on_an_h100_and_its_readme_line_counts_the_identical_weights():
    """Round 16's runs are round 14's command on an H100, seeds from 1 on; the README counts the weights that match."""
    h100, h200 = _every_seed("gpu_fp32_h100/"), {r["seed"]: r for r in _every_seed("gpu_fp32/")}
    assert sorted(r["seed"] for r in h100) == list(range(1, len(h100) + 1)) and h100
    for r in h100:
        assert r["cuda_tf32"] is False and "H100" in r["gpu"] and r["torch"] == h200[r["seed"]]["torch"]
        assert r["config"] == STEPS[FINAL].config.to_dict() and r["spec"] == list(STEPS[FINAL].spec)
    same = sum(r["checkpoint_sha256"] == h200[r["seed"]]["checkpoint_sha256"] for r in h100)
    assert f"{same} of the {len(h100)} that both have share their checkpoint's SHA-256" in render("<!-- begin:gpu_model -->\n<!-- end:gpu_model -->")


def _independent_runs():
    """(model, runs): every published run of the final and the < 20k model, on every setup (round 16's H100 copies of
    round 14's runs are not new runs)."""
    for model, folders in ((FINAL, ("", "gpu/", "gpu_fp32/")), (STRETCH, ("", "gpu/"))):
        yield model, [r for folder in folders for r in _every_seed(folder, model)]


def test_the_quick_start_points_a_learner_to_the_model_that_fell_below_the_bar_least():
    """The Quick start's advice counts every published run of both models, names each one's lowest, and the model it
    tells a learner to train is the one whose runs fell below 99.4 % least often."""
    line = render("<!-- begin:pick -->\n<!-- end:pick -->")
    rates = {}
    for model, runs in _independent_runs():
        below = sum(r["test_acc"] < EXERCISE_BAR for r in runs)
        lowest = min(r["test_acc"] for r in runs)
        assert f"{below} of its {len(runs)} published runs" in line and f"the lowest at {100 * lowest:.2f} %" in line
        rates[model] = below / len(runs)
    assert re.search(r"python -m utils.train --model (\S+) --seed 1", line).group(1) == min(rates, key=rates.get) == STRETCH


def test_the_margin_table_counts_every_independent_run_of_both_models():
    """The margin table pools every published run of each model (round 16's copies of round 14 are not new runs)."""
    table = render("<!-- begin:margin -->\n<!-- end:margin -->")
    for model, runs in _independent_runs():
        below = sum(r["test_acc"] < EXERCISE_BAR for r in runs)
        row = next(line for line in table.splitlines() if line.startswith(f"| `{model}` |"))
        assert f"| {below} of {len(runs)} |" in row


@pytest.mark.parametrize("folder, model", [("", FINAL), ("gpu/", FINAL), ("gpu_fp32/", FINAL), ("", STRETCH),
                                           ("gpu/", STRETCH)])
def test_the_extra_seeds_are_the_model_trained_like_its_table(folder, model):
    """Seeds beyond a table's (final36 and stretch36 on the CPU, rounds 13-15 on a GPU) count only if they ran the
    table's recipe on the table's setup."""
    ten = _json(f"{folder}{model}_seeds.json")
    first = _json(f"{folder}{model}_seed{ten['seeds'][0]['seed']}.json")
    last = max(r["seed"] for r in ten["seeds"])
    extra = [r for r in _every_seed(folder, model) if r["seed"] > last]
    for r in extra:
        assert r["config"] == STEPS[model].config.to_dict() and r["spec"] == list(STEPS[model].spec)
        assert r["epochs"] == ten["epochs"] and r["device"] == ten["device"] and r["torch"] == ten["torch"]
        if not folder:  # on the CPU, as many threads per run as the ten had
            assert r["cpu_threads"] == ten["cpu_threads"]
        assert r.get("cuda_tf32", True) == first.get("cuda_tf32", True)  # on a GPU, TF32 alike (unrecorded: on)
        assert first.get("gpu") in (None, r.get("gpu"))  # and the GPU too, where the table's runs name it
        assert r["history"]["val_acc"][r["best_epoch"] - 1] == max(r["history"]["val_acc"])  # chosen on val
    assert sorted(r["seed"] for r in extra) == list(range(last + 1, last + 1 + len(extra))), "consecutive, none left out"


def test_the_chance_below_the_bar_is_the_normal_tail():
    assert below_bar_probability(0.995, 0.0005) == pytest.approx(0.0228, abs=1e-4)  # two std above the bar
    assert below_bar_probability(0.994, 0.001) == pytest.approx(0.5)
    assert below_bar_probability(0.995, 0.0) == 0.0 and below_bar_probability(0.993, 0.0) == 1.0


def _assert_validation_only_variations(folder: str) -> None:
    """Every variation file in results/<folder>: no test key, <= 15 epochs, dropout, in budget, chosen on val."""
    files = sorted((RESULTS / folder).glob("*_seed*.json"))
    assert files, f"results/{folder}/ holds the variations the README's table shows"
    for path in files:
        r = json.loads(path.read_text())
        assert not any("test" in k for k in r), f"{path.name}: a variation must never see the test set"
        assert len(r["val"]) <= 15 and r["dropout"] > 0, path.name
        assert r["params"] < (20_000 if r["name"].startswith("stretch") else 8000), path.name
        assert r["best_val"] == max(r["val"]) == r["val"][r["best_epoch"] - 1], path.name


def _assert_step_is_the_variation(step: str, folder: str, name: str) -> None:
    """The step of the road that a round's rule adopted trains exactly the variation that won."""
    r = _json(f"{folder}/{name}_seed1.json")
    s = STEPS[step]
    model, recipe = split_overrides(r["overrides"])  # Net's own options (e.g. the activation), and the recipe's
    assert list(s.spec) == r["spec"] and s.dropout == r["dropout"], f"{step} is not {folder}/{name}"
    assert s.activation == model.get("activation", "relu"), f"{step}'s activation is not {name}'s"
    assert s.config == replace(STEPS[r["base"]].config, **recipe), f"{step}'s recipe is not {name}'s"


def test_the_round2_variations_were_judged_on_validation_only_and_the_rule_picked_step_8():
    _assert_validation_only_variations("tried_round2")
    text = round2_decision()
    assert f"**adopted**, as `{ROUND2_RULE['becomes']}`" in text and "TTA **not adopted**" in text
    assert f"now `{ROUND2_RULE['stretch_becomes']}`" in text
    rows = {v["name"]: v for v in round2_rows()}
    winner = max((rows[n] for n in ROUND2_RULE["candidates"]), key=lambda v: v["mean"])
    _assert_step_is_the_variation(ROUND2_RULE["becomes"], "tried_round2", winner["name"])
    _assert_step_is_the_variation(ROUND2_RULE["stretch_becomes"], "tried_round2", "stretch_6b")


def test_the_late_rounds_were_judged_on_validation_only_and_the_final_model_follows_their_rules():
    final, stretch = LATE_BASE, LATE_RULES[3]["stretch_base"]  # the two models as the late rounds found them
    for n in sorted(LATE_RULES):
        rule = LATE_RULES[n]
        _assert_validation_only_variations(f"tried_round{n}")
        o = late_round_outcome(n)
        assert o is not None, f"round {n} is complete: every seed of every variation"
        stretch_round = rule.get("replaces") == "stretch"
        assert round_base(n) == (stretch if stretch_round else final), f"round {n} must vary the model of its time"
        if o["adopted"] and stretch_round:
            stretch = rule.get("becomes", STRETCH)
            _assert_step_is_the_variation(stretch, f"tried_round{n}", o["best"]["name"])
        elif o["adopted"]:
            final = rule.get("becomes", FINAL)
            _assert_step_is_the_variation(final, f"tried_round{n}", o["best"]["name"])
        if o.get("stretch_adopted"):
            stretch = STRETCH
            _assert_step_is_the_variation(STRETCH, f"tried_round{n}", rule["stretch_candidate"])
    assert (FINAL, STRETCH) == (final, stretch), "the final and < 20k models are the last ones a round's rule adopted"


def test_round_9_judged_tta_on_the_final_models_published_checkpoints_on_validation_only():
    files = sorted((RESULTS / "tried_tta").glob("*_seed*.json"))
    assert sorted(json.loads(f.read_text())["seed"] for f in files) == sorted(TTA_RULE["seeds"])
    for path in files:
        r = json.loads(path.read_text())
        assert not any("test" in k for k in r) and r["model"] == TTA_RULE["model"], path.name
        published = _json(f"{r['model']}_seed{r['seed']}.json")  # without TTA: the checkpoint's own validation score
        assert r["val"]["none"] == pytest.approx(published["best_val_acc"], abs=2e-4), path.name
    o = tta_outcome()
    assert o is not None and not o["adopted"], "an adopted TTA must be used in every evaluation of the final model"


def test_round_10s_candidates_that_only_keep_other_weights_trained_exactly_like_their_base():
    """bnfix and swa11 leave the live training as it was (README): their live weights are the base's, epoch for epoch."""
    base = round_base(10)
    checked = 0
    for path in sorted((RESULTS / "tried_round10").glob("*_seed*.json")):
        r = json.loads(path.read_text())
        if "distill" in r["overrides"]:
            continue
        published = _json(f"{base}_seed{r['seed']}.json")["history"]
        assert r["live_val"] == published["live_val_acc"] and r["train"] == published["train_acc"], path.name
        assert r["val"] != published["val_acc"], f"{path.name}: the kept weights should be another model"
        checked += 1
    assert checked == 2 * len(LATE_SEEDS)  # bnfix and swa11, five seeds each


def test_the_readme_shows_what_the_result_files_say():
    readme = (repo_root() / "README.md").read_text()
    assert render(readme) == readme, "README.md is out of date: run python -m utils.report"
    assert "<!-- begin:requirements -->\n|" in readme  # the tables are filled, not empty


def test_the_recipe_variations_were_judged_on_validation_only_within_the_rules():
    _assert_validation_only_variations("tried")


@pytest.mark.slow
def test_full_training_from_scratch_reaches_99_4_on_test_in_15_epochs(data_root, tmp_path):
    """The exercise's claim itself, re-proved on every CI run (several minutes on a 2-core CPU) by the < 20k model: off
    its published setup a run is a fresh draw, and a test must hold on every machine, which the final model's runs
    below the bar rule out (README, "Which model to train")."""
    metrics = train_model(STRETCH, seed=1, out=tmp_path, data_root=data_root, progress=False, log=print)
    assert metrics["epochs"] <= 15
    assert metrics["parameters"] < 20_000
    assert metrics["test_acc"] >= EXERCISE_BAR
