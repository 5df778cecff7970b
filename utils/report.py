"""Markdown tables built from the result files the code wrote, for the README and the notebooks.

    python -m utils.report           # rewrite the generated blocks of README.md
    python -m utils.report --check   # exit 1 if README.md is out of date with results/
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import statistics
from functools import partial
from itertools import takewhile
from pathlib import Path
from statistics import NormalDist
from typing import Iterable, Optional, Sequence

import torch

from .data import N_VAL, repo_root
from .models import FINAL, STEPS, STRETCH, TUNING_BASE, build_model, count_parameters

ROOT = repo_root() or Path.cwd()
RESULTS = ROOT / "results"
BENCHMARK = ROOT / "benchmarks" / "results.json"


def read_json(path: Path) -> Optional[dict]:
    """The parsed file, or None when it does not exist yet."""
    return json.loads(path.read_text()) if path.is_file() else None


def count_of(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1: "1 thread", "2 threads"."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def signed(x: float, digits: int) -> str:
    """x with its sign and `digits` decimals, a value that rounds to zero as +0.000, never -0.000."""
    return f"{round(x, digits) + 0.0:+.{digits}f}"


def pp(x: float, digits: int = 2) -> str:
    """A difference of two fractions in percentage points, signed: 0.00123 -> '+0.12 pp'."""
    return f"{signed(100 * x, digits)} pp"


def pct(x: float, digits: int = 2) -> str:
    """0.99456 -> '99.46 %'."""
    return f"{100 * x:.{digits}f} %"


def show_source(*objects) -> None:
    """Display the source code of functions or classes as highlighted Python, in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown("\n".join(f"```python\n{inspect.getsource(o)}```" for o in objects)))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


EXERCISE_BAR = 0.994
"""The exercise's bar: every run must reach 99.4 % test accuracy."""
PARAMS_GOAL = 8_000
"""Our parameter goal for the final model: fewer than this many (the exercise allows fewer than 20,000)."""
GOAL_MEAN, GOAL_MIN = 0.9955, 0.9945
"""Our goals for the final model over ten seeds: a margin above the exercise's bar on every run."""
STRETCH_GOAL = 0.9962
"""Our goal for the model under 20,000 parameters: mean test accuracy over five seeds."""
ALLOWED_BELOW = 0.01
"""The goal's ceiling on the chance that one run, on any machine, falls below the bar (it passes with >= 99 %)."""


def binomial_chance(j: int, n: int, p: float) -> float:
    """The chance of exactly j successes in n tries, each with chance p (in logs, so large n do not overflow)."""
    if p <= 0 or p >= 1:
        return float(j == (0 if p <= 0 else n))
    return math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * math.log(p)
                    + (n - j) * math.log1p(-p))


def chance_of_at_least(k: int, n: int, p: float) -> float:
    """The binomial chance of k or more successes in n tries, each with chance p: how surprising a count this high is."""
    return min(1.0, sum(binomial_chance(j, n, p) for j in range(max(k, 0), n + 1)))


def chance_of_at_most(k: int, n: int, p: float) -> float:
    """The binomial chance of k or fewer successes in n tries, each with chance p: how surprising a count this low is."""
    return min(1.0, sum(binomial_chance(j, n, p) for j in range(min(k, n) + 1)))


def below_bar_probability(mean: float, std: float, bar: float = EXERCISE_BAR) -> float:
    """The estimated chance that one more run lands below `bar`, if runs were normal with this mean and std."""
    if std <= 0:
        return float(mean < bar)
    # Read at the bar itself. Test accuracies move in steps of 0.01 %, so "below 99.4 %" means 99.39 % or less, and
    # reading halfway between the steps (99.395 %, a continuity correction) would give a smaller chance: at the bar,
    # the estimate leans to the cautious side.
    return NormalDist(mean, std).cdf(bar)


def overfitting_verdict(history: dict, best_epoch: int) -> str:
    """Whether a run overfits, from its validation curves: "not overfitting", "starting to overfit" or "no sign of overfitting", with why."""
    last = len(history["val_acc"])
    min_loss_epoch = min(range(last), key=history["val_loss"].__getitem__) + 1
    drop = history["val_acc"][best_epoch - 1] - history["val_acc"][-1]
    if best_epoch >= last - 1 and min_loss_epoch >= last - 1:
        return (f"not overfitting: validation accuracy is best at epoch {best_epoch} of {last} and the validation "
                f"loss is lowest at epoch {min_loss_epoch}, both at the end of training")
    if drop > 0.001:
        return (f"starting to overfit: validation accuracy peaked at epoch {best_epoch} and fell by {100 * drop:.2f} pp "
                f"by epoch {last}; choosing the checkpoint on validation sidesteps it")
    return (f"no sign of overfitting: validation accuracy peaked at epoch {best_epoch} of {last} and stayed within "
            f"{100 * drop:.2f} pp of it")


def requirements_table(results: Path = RESULTS) -> str:
    """The exercise's requirements (and our goals) against what the final model achieved over its seeds (CPU, and GPU if run)."""
    s = read_json(results / f"{FINAL}_seeds.json")
    if s is None:
        return f"_No multi-seed result yet: run `bash scripts/reproduce_results.sh final`._"
    step = STEPS[FINAL]
    runs = [(cpu_all_seeds(results) or s, "CPU")] + [(g, "GPU") for g in [gpu_all_seeds(results)]
                                                     if g is not None and g["model"] == FINAL]
    runs += [(g, "GPU, TF32 off") for g in [gpu_fp32_all_seeds(results)] if g is not None]
    several = len(runs) > 1  # name the setup only when there are several

    def achieved(text) -> str:
        return "; ".join(text(r) + (f" ({device}, {len(r['seeds'])} seeds)" if several else "") for r, device in runs)

    low, mean = min(r["test_acc_min"] for r, _ in runs), min(r["test_acc_mean"] for r, _ in runs)
    rows = [
        ["Test accuracy (every seed)", f">= {pct(EXERCISE_BAR)}",
         achieved(lambda r: f"min {pct(r['test_acc_min'])}") + ("" if several else f" over {len(s['seeds'])} seeds"),
         _ok(low >= EXERCISE_BAR)],
        ["Test accuracy (every seed, our goal)", f">= {pct(GOAL_MIN)}", achieved(lambda r: f"min {pct(r['test_acc_min'])}"),
         _ok(low >= GOAL_MIN)],
        ["Test accuracy (mean of seeds, our goal)", f">= {pct(GOAL_MEAN)}",
         achieved(lambda r: f"{pct(r['test_acc_mean'])} ± {pct(r['test_acc_std'])}"), _ok(mean >= GOAL_MEAN)],
        ["Parameters", f"< 20,000 (our goal: < {PARAMS_GOAL:,})", f"{s['parameters']:,}", _ok(s["parameters"] < PARAMS_GOAL)],
        ["Epochs", "< 20 (our goal: <= 15)", s["epochs"], _ok(s["epochs"] <= 15)],
        ["BatchNorm", "yes", "yes" if step.batchnorm else "no", _ok(step.batchnorm)],
        ["Dropout", "yes", f"p = {step.dropout}" if step.dropout else "no", _ok(step.dropout > 0)],
        ["Head", "GAP and/or FC", "GAP + 1x1 conv", _ok(True)],
        ["Checkpoint chosen on", "validation (never test)", "validation split (10k)", _ok(True)],
    ]
    return markdown_table(["Requirement", "Target", "Achieved", ""], rows)


def _ok(flag: bool) -> str:
    return "✅" if flag else "❌"


def _summary_tf32(folder: Path, s: dict) -> Optional[bool]:
    """Whether a summary's GPU runs had TF32 on: its own key, else its first run's (summaries from before the key lack it)."""
    if "cuda_tf32" in s:
        return s["cuda_tf32"]
    return (read_json(folder / f"{s['model']}_seed{s['seeds'][0]['seed']}.json") or {}).get("cuda_tf32")


def seeds_table(results: Path = RESULTS, model: str = FINAL) -> str:
    """Per-seed test accuracy, validation accuracy, chosen epoch and training time of a model (default: final)."""
    s = read_json(results / f"{model}_seeds.json")
    if s is None:
        return f"_No multi-seed result for {model} in {results.name}/ yet: see scripts/reproduce_results.sh._"
    rows = [[r["seed"], pct(r["test_acc"]), pct(r["best_val_acc"]), r["best_epoch"], f"{r['seconds']:.0f}"]
            for r in s["seeds"]]
    rows.append(["**mean ± std**", f"**{pct(s['test_acc_mean'])} ± {pct(s['test_acc_std'])}**",
                 pct(s["val_acc_mean"]), "", ""])
    table = markdown_table(["Seed", "Test acc", "Best val acc", "Chosen epoch", "Seconds"], rows)
    on_cpu = s["device"] == "cpu"
    where = f"`{s['device']}`" + (f", {count_of(s['cpu_threads'], 'thread')} per run" if on_cpu and s.get("cpu_threads") else "") \
        + (", TF32 off (full float32)" if _summary_tf32(results, s) is False else "")
    below = below_bar_probability(s["test_acc_mean"], s["test_acc_std"])
    return table + f"\n\nTrained with torch {s['torch']} on {where}; min {pct(s['test_acc_min'])}, " \
                   f"max {pct(s['test_acc_max'])}; estimated chance of a run below {pct(EXERCISE_BAR, 1)} " \
                   f"(normal approximation from mean and std): {pct(below, 1)}."


def iterations_rows(results: Path = RESULTS) -> list[dict]:
    """One dict per step of the road that has a result file (seed 1)."""
    rows = []
    for name in STEPS:
        r = read_json(results / f"{name}_seed1.json")
        if r is not None:
            rows.append(r)
    return rows


def iterations_table(results: Path = RESULTS) -> str:
    """Every step of the road: parameters, receptive field, and train / validation accuracy at the chosen epoch (as notebook 02)."""
    rows = []
    for r in iterations_rows(results):
        e = r["best_epoch"] - 1
        train, val = r["history"]["train_acc"][e], r["history"]["val_acc"][e]
        rows.append([r["model"], f"{r['parameters']:,}", r["receptive_field"], r["epochs"], r["best_epoch"], pct(train),
                     pct(val), signed(100 * (train - val), 2)])
    if not rows:
        return "_No iteration results yet: see scripts/reproduce_results.sh._"
    return markdown_table(["Step", "Params", "RF", "Epochs", "Chosen epoch", "Train", "Val", "Gap (pp)"], rows)


def speed_table(path: Path = BENCHMARK) -> str:
    """The training-speed benchmark: what was measured, and the ratios."""
    b = read_json(path)
    if b is None:
        return "_No benchmark yet: run `python -m benchmarks.train_speed`._"
    return b.get("markdown", "")


_STRETCH_EXTRA = (("CPU", "by `bash scripts/reproduce_results.sh stretch36` (seeds 6-36) and `stretch_more` (from seed 37), "
                          "which publish their metrics, not their weights"),
                  ("GPU", "by `bash scripts/reproduce_results.sh gpu15` (seeds 6-36, round 15) and `gpu_more` (from seed 37)"))
"""How the < 20k model's seeds beyond its five-seed tables were trained: (device, how), on the CPU and on a GPU."""


def stretch_table(results: Path = RESULTS) -> str:
    """The stretch goal (< 20,000 parameters, mean test accuracy over 5 seeds) on each device that has its runs, and a
    sentence on every seed trained there beyond the table's."""
    parts = []
    for folder, (device, how) in zip((results, results / "gpu"), _STRETCH_EXTRA):
        s = read_json(folder / f"{STRETCH}_seeds.json")
        if s is None:
            if parts:  # CPU runs but none on a GPU
                parts.append(f"_No GPU runs of `{STRETCH}` yet: `bash scripts/reproduce_results.sh gpu` on a machine "
                             f"with a GPU._")
            continue
        verdict = "met" if s["test_acc_mean"] >= STRETCH_GOAL and s["parameters"] < 20_000 else "not met"
        parts.append(f"`{STRETCH}` on `{s['device']}`: {s['parameters']:,} parameters, {s['epochs']} epochs, mean "
                     f"test accuracy {pct(s['test_acc_mean'])} ± {pct(s['test_acc_std'])} over {len(s['seeds'])} "
                     f"seeds: stretch goal (mean >= {pct(STRETCH_GOAL)}) **{verdict}**.\n\n" + seeds_table(folder, STRETCH)
                     + "\n\n" + _all_seeds_line(all_seeds(folder, STRETCH), device, how))
    return "\n\n".join(parts) or seeds_table(results, STRETCH)


def previous_final(results: Path = RESULTS) -> Optional[tuple[int, str]]:
    """(round, model): the final model that the latest adopting round replaced; None if no late round adopted one."""
    for n in sorted(LATE_RULES, reverse=True):
        if LATE_RULES[n].get("replaces") != "stretch":
            o = late_round_outcome(n, results)
            if o is not None and o["adopted"]:
                return n, round_base(n)
    return None


def previous_final_line(results: Path = RESULTS) -> str:
    """One line: the previous final model's ten CPU seeds, for comparison with the final model's."""
    prev = previous_final(results)
    s = read_json(results / f"{prev[1]}_seeds.json") if prev else None
    if s is None:
        return ""
    (n, model), below = prev, below_bar_probability(s["test_acc_mean"], s["test_acc_std"])
    return (f"For comparison, the final model before round {n}, `{model}` ({s['parameters']:,} parameters), over the same "
            f"{len(s['seeds'])} seeds on `{s['device']}` (torch {s['torch']}): mean test accuracy {pct(s['test_acc_mean'])} "
            f"± {pct(s['test_acc_std'])}, min {pct(s['test_acc_min'])}, max {pct(s['test_acc_max'])}, estimated chance of "
            f"a run below {pct(EXERCISE_BAR, 1)}: {pct(below, 1)} (`results/{model}_seeds.json`)."
            + _same_seeds_gain(model, results))


def paired_by_seed(a: Iterable[dict], b: Iterable[dict]) -> list[tuple[dict, dict]]:
    """Two sets of runs (or a summary's seeds) as (run in a, run in b) pairs of the same seed, in seed order; seeds only
    one set has are left out."""
    theirs = {r["seed"]: r for r in b}
    return [(r, theirs[r["seed"]]) for r in sorted(a, key=lambda r: r["seed"]) if r["seed"] in theirs]


def same_seeds_comparison(new: str, old: str, results: Path = RESULTS) -> Optional[dict]:
    """Two models' ten-seed files compared on the seeds both have: mean gain on validation and test, seeds better on test."""
    summaries = [read_json(results / f"{m}_seeds.json") for m in (new, old)]
    if None in summaries:
        return None
    pairs = paired_by_seed(summaries[0]["seeds"], summaries[1]["seeds"])
    return {"seeds": len(pairs),
            "val": statistics.mean(r["best_val_acc"] - t["best_val_acc"] for r, t in pairs),
            "test": statistics.mean(r["test_acc"] - t["test_acc"] for r, t in pairs),
            "better_on_test": sum(r["test_acc"] > t["test_acc"] for r, t in pairs)}


def _same_seeds_gain(previous: str, results: Path) -> str:
    """The final model's mean gain over the previous one on the seeds both have, on validation and on test, as a sentence."""
    c = same_seeds_comparison(FINAL, previous, results)
    if c is None:
        return ""
    return (f" Over these {c['seeds']} seeds `{FINAL}` is {pp(c['val'], 3)} on validation and "
            f"{pp(c['test'], 3)} on test.")


def gpu_model(results: Path = RESULTS) -> Optional[str]:
    """The model whose GPU seeds the README shows: the final model if it has them, else the latest earlier final model that does."""
    have = [name for name in reversed(list(STEPS)) if (results / "gpu" / f"{name}_seeds.json").is_file()
            and name != STRETCH]
    return FINAL if FINAL in have else next(iter(have), None)


def gpu_seeds_table(results: Path = RESULTS) -> str:
    """The final model's seeds trained on a GPU (`bash scripts/reproduce_results.sh gpu`); else the latest final model's that has them."""
    model = gpu_model(results)
    if model == FINAL:
        return seeds_table(results / "gpu", FINAL)
    missing = f"_No GPU runs of `{FINAL}` yet: `bash scripts/reproduce_results.sh gpu` on a machine with a GPU._"
    if model is None:
        return missing
    return missing + f"\n\nThe previous final model, `{model}`, on a GPU:\n\n" + seeds_table(results / "gpu", model)


Z_BAR = 2.0  # how many standard errors a difference must reach before the report calls it more than noise


def _one_or_all(values) -> object:
    """The value every run shares, else all of them joined ("a, b"), so a mixed set of runs shows as mixed."""
    distinct = sorted(set(values), key=str)
    return distinct[0] if len(distinct) == 1 else ", ".join(map(str, distinct))


def all_seeds(folder: Path, model: str) -> Optional[dict]:
    """Every published seed of a model in a results folder, beyond its summary's seeds where more were trained.

    Carries a summary's keys for the runs (seeds, test_acc_mean/std/min/max, device, torch, cpu_threads), so it can
    stand where a `<model>_seeds.json` does, plus its model, its number of runs n, the summary's own number of seeds
    n_table (0 without one), how many runs fell below the bar and the goal, and on a GPU whether TF32 was on (runs from
    before `cuda_tf32` was recorded had torch's default, on).
    """
    paths = [p for p in folder.glob(f"{model}_seed*.json") if p.stem.rsplit("_seed", 1)[1].isdigit()]
    runs = sorted((read_json(p) for p in paths), key=lambda r: r["seed"])  # the runs, not their summary
    if len(runs) < 2:
        return None
    accs = [r["test_acc"] for r in runs]
    table = read_json(folder / f"{model}_seeds.json")
    return {"model": model, "seeds": runs, "n": len(runs), "n_table": len(table["seeds"]) if table else 0,
            "test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.stdev(accs), "test_acc_min": min(accs),
            "test_acc_max": max(accs), "below": sum(a < EXERCISE_BAR for a in accs),
            "below_goal": sum(a < GOAL_MIN for a in accs), "device": _one_or_all(r["device"] for r in runs),
            "torch": _one_or_all(r["torch"] for r in runs), "cpu_threads": _one_or_all(r.get("cpu_threads") for r in runs),
            "tf32": _one_or_all(r.get("cuda_tf32", True) for r in runs) if "cuda" in str(runs[0]["device"]) else None}


def gpu_all_seeds(results: Path = RESULTS) -> Optional[dict]:
    """Every published GPU seed of the model the README's GPU table shows (round 13 added seeds to its table's)."""
    return all_seeds(results / "gpu", gpu_model(results))


def cpu_all_seeds(results: Path = RESULTS) -> Optional[dict]:
    """Every published CPU seed of the final model (`reproduce_results.sh final36` adds seeds to its table's)."""
    return all_seeds(results, FINAL)


def gpu_fp32_all_seeds(results: Path = RESULTS) -> Optional[dict]:
    """Every published seed of the final model trained on a GPU with TF32 off (round 14: `reproduce_results.sh gpu14`)."""
    return all_seeds(results / "gpu_fp32", FINAL)


def setup_words(g: dict) -> str:
    """The setup a set of runs shares, in words: device, torch version, on a CPU threads per run, on a GPU TF32."""
    return (f"`{g['device']}`, torch {g['torch']}"
            + (f", {count_of(g['cpu_threads'], 'thread')} per run" if g["device"] == "cpu" else "")
            + {True: ", TF32 on by torch's default", False: ", TF32 off"}.get(g.get("tf32"), ""))


def _all_seeds_line(g: Optional[dict], device: str, how: str) -> str:
    """A sentence on every published seed of a model on one device: its spread, and how many runs fell below the bars."""
    if g is None or g["n"] <= g["n_table"]:
        return "_Only the seeds of the table above have been trained so far._"
    below = below_bar_probability(g["test_acc_mean"], g["test_acc_std"])
    return (f"All {g['n']} {device} seeds of `{g['model']}` (the table's {g['n_table']} and {g['n'] - g['n_table']} more, trained "
            f"with the same `utils.train` command {how}; {setup_words(g)}): mean test accuracy {pct(g['test_acc_mean'])}, "
            f"standard deviation {pct(g['test_acc_std'], 3)}, min {pct(g['test_acc_min'])}, max {pct(g['test_acc_max'])}. "
            f"{g['below']} of {g['n']} runs ({pct(g['below'] / g['n'], 1)}) fell below {pct(EXERCISE_BAR, 1)}"
            + (f" and {g['below_goal']} ({pct(g['below_goal'] / g['n'], 1)}) below {pct(GOAL_MIN)}" if g["model"] == FINAL
               else "")  # the final model's goal for every seed
            + f"; the normal approximation from their mean and std gives {pct(below, 1 if below >= 0.001 else 2)} below "
              f"{pct(EXERCISE_BAR, 1)}." + gpu_models_sentence(g["seeds"]))


def seed_ranges(seeds: Iterable[int]) -> str:
    """Seeds (1, 2, 3, 7, 9, 10) as '1-3, 7, 9-10'."""
    spans: list[list[int]] = []
    for seed in sorted(seeds):
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def gpu_models_sentence(runs: list[dict]) -> str:
    """' Their GPUs, as the run files name them: ...', which GPU model trained which seeds; '' for runs naming none."""
    by_gpu: dict[str, list[int]] = {}
    for r in runs:
        by_gpu.setdefault(r.get("gpu") or "", []).append(r["seed"])
    unnamed = by_gpu.pop("", [])
    if not by_gpu:
        return ""
    return (" Their GPUs, as the run files name them: "
            + "; ".join(f"{name} (seeds {seed_ranges(seeds)})" for name, seeds in by_gpu.items())
            + (f"; seeds {seed_ranges(unnamed)} name none (their files predate that field)" if unnamed else "") + ".")


def gpu_all_seeds_line(results: Path = RESULTS) -> str:
    """The README's sentence on every GPU seed of the final model: its spread, and how many runs fell below the bars."""
    return _all_seeds_line(gpu_all_seeds(results), "GPU", "for round 13")


def cpu_all_seeds_line(results: Path = RESULTS) -> str:
    """The README's sentence on every CPU seed of the final model: its spread, and how many runs fell below the bars."""
    return _all_seeds_line(cpu_all_seeds(results), "CPU",
                           "by `bash scripts/reproduce_results.sh final36`, which publishes their metrics, not their weights")


def gpu_fp32_seeds(results: Path = RESULTS) -> str:
    """Round 14's ten-seed table (the final model on a GPU with TF32 off) and a sentence on all its seeds."""
    folder = results / "gpu_fp32"
    if read_json(folder / f"{FINAL}_seeds.json") is None:
        return f"_No TF32-off GPU runs of `{FINAL}` yet: `bash scripts/reproduce_results.sh gpu14` on a machine with a GPU._"
    return seeds_table(folder, FINAL) + "\n\n" + _all_seeds_line(
        gpu_fp32_all_seeds(results), "TF32-off GPU", "by `bash scripts/reproduce_results.sh gpu14`")


def fisher_exact_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Fisher's exact test, two-sided: how likely counts at least this uneven are when both groups share one rate."""
    k, n = k1 + k2, n1 + n2
    prob = [math.comb(n1, a) * math.comb(n2, k - a) / math.comb(n, k) for a in range(max(0, k - n2), min(k, n1) + 1)]
    seen = prob[k1 - max(0, k - n2)]
    return min(1.0, sum(q for q in prob if q <= seen * (1 + 1e-9)))


def log_std_ratio_se(n1: int, n2: int) -> float:
    """The standard error of log(std1 / std2) for two sets of n1 and n2 normal runs: about sqrt(1/(2(n1-1)) + 1/(2(n2-1)))."""
    return math.sqrt(1 / (2 * (n1 - 1)) + 1 / (2 * (n2 - 1)))


def compare_devices(cpu: dict, gpu: dict) -> dict:
    """Two setups' runs of one model, first against second (the names say CPU and GPU, the README's first use): their
    means, their spreads (each with a z) and their runs below the bar; `_cpu` / `_gpu` keys and pairs follow that order.

    Takes two `all_seeds` dicts. z_mean is the gap of the means over its standard error. z_std divides the log of the
    std ratio by its standard error (`log_std_ratio_se`). z_robust is the
    Brown-Forsythe test in a Welch z: it compares how far runs lie from their own device's median, which far runs
    inflate less than the squared distances of a std do. below_median and above_median split that distance by side,
    since a bar below the mean cares only for the lower one.
    """
    def distances(s: dict) -> tuple[list[float], float, float]:
        accs = [r["test_acc"] for r in s["seeds"]]
        mid = statistics.median(accs)
        below, above = [mid - a for a in accs if a < mid], [a - mid for a in accs if a > mid]
        return [abs(a - mid) for a in accs], statistics.mean(below or [0.0]), statistics.mean(above or [0.0])

    if min(cpu["test_acc_std"], gpu["test_acc_std"]) <= 0:
        raise ValueError("compare_devices needs runs that differ on each device (a standard deviation above 0)")
    n_c, n_g = cpu["n"], gpu["n"]
    gap = gpu["test_acc_mean"] - cpu["test_acc_mean"]
    ratio = gpu["test_acc_std"] / cpu["test_acc_std"]
    (dc, low_c, high_c), (dg, low_g, high_g) = distances(cpu), distances(gpu)
    z = {"z_mean": gap / math.sqrt(cpu["test_acc_std"] ** 2 / n_c + gpu["test_acc_std"] ** 2 / n_g),
         "z_std": math.log(ratio) / log_std_ratio_se(n_c, n_g),
         "z_robust": (statistics.mean(dg) - statistics.mean(dc))
                     / math.sqrt(statistics.variance(dc) / n_c + statistics.variance(dg) / n_g)}
    return {"n_cpu": n_c, "n_gpu": n_g, "gap": gap, "ratio": ratio, **z,
            "p": {k: 2 * (1 - NormalDist().cdf(abs(v))) for k, v in z.items()},  # two-sided, normal approximation
            "below_median": (low_c, low_g), "above_median": (high_c, high_g),
            "below": (cpu["below"], gpu["below"]), "p_below": fisher_exact_p(cpu["below"], n_c, gpu["below"], n_g)}


def devices_verdict(d: dict, names: tuple[str, str] = ("CPU", "GPU")) -> str:
    """What compare_devices found, in words: whether the means and the spreads differ beyond noise, and where.

    `names` are compare_devices's two sets of runs, in its order (first, second), as the sentence should call them.
    """
    means = (f"the means differ beyond noise (|z| >= {Z_BAR:g})" if abs(d["z_mean"]) >= Z_BAR
             else f"the means do not differ beyond noise (|z| < {Z_BAR:g})")
    agree = d["z_std"] * d["z_robust"] > 0 and min(abs(d["z_std"]), abs(d["z_robust"])) >= Z_BAR
    if not agree:
        beyond = sum(abs(d[z]) >= Z_BAR for z in ("z_std", "z_robust"))
        spreads = ["neither measure of spread differs beyond noise", "only one of the two measures of spread differs "
                   "beyond noise", "the two measures of spread disagree in direction"][beyond]
        return f"{means}, and {spreads}" + ("" if abs(d["z_mean"]) >= Z_BAR else ": these runs do not tell the two setups apart")
    k = 1 if d["z_std"] > 0 else 0
    other = 1 - k
    widening = [d[half][k] / max(d[half][other], 1e-12) for half in ("below_median", "above_median")]
    side = "below" if widening[0] > widening[1] else "above"
    return (f"{means}, but the {names[k]}'s runs spread more widely by both measures, mostly {side} the median: a run "
            f"below its median lies on average {100 * d['below_median'][1]:.3f} pp under it on the {names[1]} and "
            f"{100 * d['below_median'][0]:.3f} pp on the {names[0]}, a run above it {100 * d['above_median'][1]:.3f} and "
            f"{100 * d['above_median'][0]:.3f} pp over it")


def devices_line(results: Path = RESULTS) -> str:
    """The README's sentence comparing every CPU seed of the final model with every GPU seed: mean, spread, runs below."""
    cpu, gpu = cpu_all_seeds(results), gpu_all_seeds(results)
    if (cpu is None or gpu is None or gpu["model"] != FINAL or cpu["n"] <= cpu["n_table"]
            or gpu["n"] <= gpu["n_table"]):
        return "_The CPU and the GPU are compared once each has more seeds than its table._"
    d = compare_devices(cpu, gpu)
    return (f"The two setups side by side, {d['n_cpu']} CPU runs ({setup_words(cpu)}) and {d['n_gpu']} GPU runs "
            f"({setup_words(gpu)}); device, torch version and kernels change together, so this compares setups. The GPU's "
            f"mean test accuracy is {pp(d['gap'], 3)} from the CPU's (z = {signed(d['z_mean'], 1)}: the difference "
            f"divided by its standard error); its standard deviation is {pct(gpu['test_acc_std'], 3)} against "
            f"{pct(cpu['test_acc_std'], 3)}, {d['ratio']:.2f} times the CPU's (z = {signed(d['z_std'], 1)}, or "
            f"{signed(d['z_robust'], 1)} by the Brown-Forsythe test, which is less sensitive to far runs). So "
            f"{devices_verdict(d)}. Runs below {pct(EXERCISE_BAR, 1)}: {cpu['below']} of {cpu['n']} on the CPU, "
            f"{gpu['below']} of {gpu['n']} on the GPU, "
            + ("counts that differ beyond chance" if d["p_below"] < 0.05 else "counts that chance alone could give")
            + f" (Fisher's exact test, p = {d['p_below']:.2f}); the worst run is {pct(cpu['test_acc_min'])} on the CPU and "
            f"{pct(gpu['test_acc_min'])} on the GPU. The normal approximation reads the chance below the bar from the whole spread, the upper side "
            f"included (notebook 03 works it through).")


MISS_LEVEL = 0.05
"""A count of runs below the bar that a chance within the goal would give less often than this says the goal is missed."""


def tf32_comparison(results: Path = RESULTS) -> Optional[dict]:
    """Round 14 read: the TF32-off GPU runs against the TF32 GPU runs and the CPU runs, and every run below the bar.

    The prediction written before the runs: if TF32 widens the GPU's spread, the TF32-off std lies near the CPU's. power is
    how often the std's z would have reached -Z_BAR had that been wholly so (the true TF32-off std the CPU's), and
    seeds_for_90 how many seeds per setup would make that 90 %. tail is the binomial chance of this many runs below the
    bar or more if every setup's chance were ALLOWED_BELOW, the most the goal allows and the case that makes it likeliest.
    """
    on, off, cpu = gpu_all_seeds(results), gpu_fp32_all_seeds(results), cpu_all_seeds(results)
    if None in (on, off, cpu) or on["model"] != FINAL:
        return None
    vs_on, vs_cpu = compare_devices(on, off), compare_devices(cpu, off)  # both with the TF32-off runs second
    narrower = vs_on["z_std"] <= -Z_BAR and vs_on["z_robust"] <= -Z_BAR
    like_cpu = max(abs(vs_cpu["z_std"]), abs(vs_cpu["z_robust"])) < Z_BAR
    if narrower and like_cpu:
        reading = ("narrower than with TF32 beyond noise by both measures and not told apart from the CPU's: as the "
                   "prediction for TF32 said")
    elif narrower:
        reading = ("narrower than with TF32 beyond noise by both measures, yet told apart from the CPU's too: TF32 would "
                   "explain part of the difference at most")
    elif vs_on["ratio"] < 1:
        reading = (f"narrower than with TF32 and closer to the CPU's ({vs_cpu['ratio']:.2f} times it, where the TF32 runs' "
                   f"is {on['test_acc_std'] / cpu['test_acc_std']:.2f} times it), but the narrowing does not reach |z| >= "
                   f"{Z_BAR:g} on both measures, so these runs neither confirm nor rule out TF32 as the cause")
    else:
        reading = "not narrower than with TF32, against the prediction for TF32"
    log_ratio = math.log(cpu["test_acc_std"] / on["test_acc_std"])
    expected_z = log_ratio / log_std_ratio_se(on["n"], off["n"])
    below, n = pooled_below([on, off, cpu])
    return {"on": on, "off": off, "cpu": cpu, "vs_on": vs_on, "vs_cpu": vs_cpu, "reading": reading,
            "power": NormalDist().cdf(-Z_BAR - expected_z),
            "seeds_for_90": math.ceil(((Z_BAR + NormalDist().inv_cdf(0.9)) / abs(log_ratio)) ** 2 + 1),  # se(n, n) = 1/sqrt(n-1)
            "n": n, "below": below, "tail": chance_of_at_least(below, n, ALLOWED_BELOW)}


def tf32_verdict(t: dict) -> str:
    """What the count of runs below the bar over every setup says of the goal, in words."""
    return (f"if runs fell below the bar with a chance of {pct(ALLOWED_BELOW, 0)} or less on every setup (passing with "
            f">= {pct(1 - ALLOWED_BELOW, 0)} probability), {t['below']} or more of {t['n']} would come up at most "
            f"{pct(t['tail'], 1)} of the time (binomial, each run its own training), "
            + (f"under {pct(MISS_LEVEL, 0)}: at least one setup misses that goal" if t["tail"] < MISS_LEVEL
               else "so these runs cannot tell whether every setup meets that goal"))


def tf32_line(results: Path = RESULTS) -> str:
    """The README's sentences on round 14: the GPU's spread with TF32 off against TF32 on and the CPU, and every run below the bar."""
    t = tf32_comparison(results)
    if t is None:
        return "_Round 14 is compared once its TF32-off runs, the TF32 GPU runs and the CPU runs all exist._"
    on, off, cpu, vs_on, vs_cpu = t["on"], t["off"], t["cpu"], t["vs_on"], t["vs_cpu"]
    verdicts = [devices_verdict(vs_on, ("TF32 GPU", "TF32-off GPU")), devices_verdict(vs_cpu, ("CPU", "TF32-off GPU"))]
    verdicts = (f"Each pair on its own: {verdicts[0]}." if verdicts[0] == verdicts[1]
                else f"Against the TF32 runs, {verdicts[0]}; against the CPU, {verdicts[1]}.")
    return (f"Round 14's {off['n']} TF32-off GPU runs ({setup_words(off)}) against round 13's {on['n']} TF32 GPU runs "
            f"({setup_words(on)}) and the {cpu['n']} CPU runs. Their standard deviation is {pct(off['test_acc_std'], 3)}: "
            f"{vs_on['ratio']:.2f} times the TF32 runs' {pct(on['test_acc_std'], 3)} (z = {signed(vs_on['z_std'], 1)}, "
            f"p = {vs_on['p']['z_std']:.2f}; Brown-Forsythe z = {signed(vs_on['z_robust'], 1)}, p = {vs_on['p']['z_robust']:.2f}) "
            f"and {vs_cpu['ratio']:.2f} times the CPU's {pct(cpu['test_acc_std'], 3)} (z = {signed(vs_cpu['z_std'], 1)}; "
            f"Brown-Forsythe z = {signed(vs_cpu['z_robust'], 1)}); their mean is {pp(vs_on['gap'], 3)} from the TF32 "
            f"runs' (z = {signed(vs_on['z_mean'], 1)}) and {pp(vs_cpu['gap'], 3)} from the CPU's (z = "
            f"{signed(vs_cpu['z_mean'], 1)}). A difference counts as beyond noise at |z| >= {Z_BAR:g}, for a spread on both "
            f"measures. {verdicts} The spread without TF32 is {t['reading']}. The test had modest power: had TF32 caused all "
            f"of the extra spread, the std's z would have reached -{Z_BAR:g} only {pct(t['power'], 0)} of the time with "
            f"{off['n']} seeds a side; about {t['seeds_for_90']} a side would make it 90 %. Runs below "
            f"{pct(EXERCISE_BAR, 1)}: {off['below']} of {off['n']} with TF32 off (worst {pct(off['test_acc_min'])}), "
            f"{on['below']} of {on['n']} with it on, {cpu['below']} of {cpu['n']} on the CPU: {t['below']} of all "
            f"{t['n']} published runs of `{FINAL}` on the three setups ({pct(t['below'] / t['n'], 1)}). And "
            f"{tf32_verdict(t)}.")


CONFIDENCE = 1 - MISS_LEVEL
"""How sure a one-sided upper bound on a chance must be before the report says a count shows the chance is that low."""


def pooled_below(sets: Iterable[dict]) -> tuple[int, int]:
    """(runs below the bar, runs) over several `all_seeds` dicts: the count a verdict on every setup at once reads."""
    sets = list(sets)
    return sum(g["below"] for g in sets), sum(g["n"] for g in sets)


def rate_upper_bound(k: int, n: int, level: float = CONFIDENCE) -> float:
    """The one-sided upper bound (Clopper-Pearson) on a chance seen k times in n tries: the highest chance per run that
    gives k or fewer at least 1 - level of the time."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"a count needs 0 <= k <= n and n >= 1, got k = {k}, n = {n}")
    if k == n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection: P(k or fewer) falls as the chance grows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chance_of_at_most(k, n, mid) > 1 - level else (lo, mid)
    return hi


def clean_runs_needed(allowed: float = ALLOWED_BELOW, level: float = CONFIDENCE) -> int:
    """How many runs, none below the bar, it takes before the count alone shows a chance of at most `allowed`."""
    if not 0 < allowed < 1:
        raise ValueError(f"the allowed chance must lie strictly between 0 and 1, got {allowed}")
    return math.ceil(math.log(1 - level) / math.log(1 - allowed))


def runs_needed(below: int, allowed: float = ALLOWED_BELOW, level: float = CONFIDENCE) -> int:
    """How many runs in all, `below` of them below the bar and no more, it takes before the count shows a chance of at
    most `allowed` (`clean_runs_needed` when none is below)."""
    if below < 0:
        raise ValueError(f"a count of runs below the bar is 0 or more, got {below}")
    n = max(below + 1, clean_runs_needed(allowed, level))
    while chance_of_at_most(below, n, allowed) > 1 - level:  # the bound falls under `allowed` exactly here
        n += 1
    return n


def margin_setups(results: Path = RESULTS) -> dict[str, list[tuple[str, dict]]]:
    """Every published setup of the final and the < 20k model, as (name, `all_seeds` dict), the runs a learner could get.

    Round 16's H100 copies of round 14's runs are left out: they have round 14's bits, so they are not new runs.
    """
    gpu = gpu_all_seeds(results)
    final = [("CPU", cpu_all_seeds(results)), ("GPU", gpu if gpu and gpu["model"] == FINAL else None),
             ("GPU, TF32 off", gpu_fp32_all_seeds(results))]
    stretch = [("CPU", all_seeds(results, STRETCH)), ("GPU", all_seeds(results / "gpu", STRETCH))]
    return {m: [(name, g) for name, g in setups if g is not None] for m, setups in ((FINAL, final), (STRETCH, stretch))}


def bar_verdict(setups: list[tuple[str, dict]]) -> str:
    """What the counts of runs below the bar say of "passes with >= 99 % probability" on every setup, in words.

    Pooling is sound for "missed": if no setup's chance exceeded ALLOWED_BELOW, the pooled count would be no likelier
    to run this high than a binomial one at ALLOWED_BELOW. "Met" needs every setup's own count to show it.
    """
    if not setups:
        raise ValueError("bar_verdict needs the runs of at least one setup")
    below, n = pooled_below(g for _, g in setups)
    tail = chance_of_at_least(below, n, ALLOWED_BELOW)
    if tail < MISS_LEVEL:
        return (f"**missed** on at least one setup (the counts do not say which): with a chance of "
                f"{pct(ALLOWED_BELOW, 0)} or less on every setup, {below} or more of {n} runs would come up at most "
                f"{pct(tail, 1)} of the time")
    shown = [name for name, g in setups if rate_upper_bound(g["below"], g["n"]) <= ALLOWED_BELOW]
    if len(shown) == len(setups):
        return f"**met**: every setup's count bounds its chance under {pct(ALLOWED_BELOW, 0)}"
    what = "no run" if below == 0 else f"{below} or fewer runs"
    pending = [f"the {name} setup's count would bound it at {runs_needed(g['below'])} runs with no more below "
               f"({g['below']} of {g['n']} now)" for name, g in setups if name not in shown]
    at_most = chance_of_at_most(below, n, ALLOWED_BELOW)
    pooled = (f"Pooled, the runs bound the chance averaged over the setups under {pct(ALLOWED_BELOW, 0)}, but a pass "
              f"must hold on every setup. " if at_most <= 1 - CONFIDENCE else "")
    if not shown:
        lead = f"No setup's count bounds its chance under {pct(ALLOWED_BELOW, 0)} yet: "
    elif len(shown) == 1:
        lead = f"The {shown[0]} setup's count already bounds its chance under {pct(ALLOWED_BELOW, 0)}; "
    else:
        lead = f"The {' and '.join(shown)} setups' counts already bound their chances under {pct(ALLOWED_BELOW, 0)}; "
    return (f"**not shown either way** by the counts: at a chance of {pct(ALLOWED_BELOW, 0)} per run, {what} below the "
            f"bar in {n} would come up {pct(at_most, 0)} of the time. " + pooled + lead + "; ".join(pending))


def margin_table(results: Path = RESULTS) -> str:
    """Which model passes the bar with >= 99 % probability: every published run of each, per setup and pooled."""
    rows = []
    for model, setups in margin_setups(results).items():
        if not setups:
            continue
        below, n = pooled_below(g for _, g in setups)
        rows.append([f"`{model}`", f"{count_parameters(STEPS[model].build()):,}",
                     "; ".join(f"{name}: {g['below']} of {g['n']}" for name, g in setups), f"{below} of {n}",
                     "; ".join(f"{name}: {pct(rate_upper_bound(g['below'], g['n']), 1)}" for name, g in setups),
                     "; ".join(f"{name}: {pct(below_bar_probability(g['test_acc_mean'], g['test_acc_std']), 2)}"
                               for name, g in setups), bar_verdict(setups)])
    if not rows:
        return "_No multi-seed runs yet: see scripts/reproduce_results.sh._"
    return markdown_table(["Model", "Params", f"Runs below {pct(EXERCISE_BAR, 1)}, per setup", "All setups",
                           f"Chance per run: one-sided {pct(CONFIDENCE, 0)} upper bound from the count",
                           "Chance per run: normal approximation (a point estimate)", f"Passes with >= {pct(1 - ALLOWED_BELOW, 0)}?"], rows)


def same_seed_correlation(a: dict, b: dict) -> tuple[int, float]:
    """(seeds both setups have, Pearson r of their test accuracies) for two `all_seeds` dicts: does a seed's run on one
    setup tell anything of its run on the other?"""
    pairs = paired_by_seed(a["seeds"], b["seeds"])
    if len(pairs) < 3:
        raise ValueError(f"a correlation needs at least 3 seeds on both setups, got {len(pairs)}")
    return len(pairs), statistics.correlation([r["test_acc"] for r, _ in pairs], [t["test_acc"] for _, t in pairs])


def same_seed_line(results: Path = RESULTS) -> str:
    """The README's check of the pooling above: how a seed's test accuracies on two setups correlate, against chance."""
    pairs = [(model, na, nb, *same_seed_correlation(a, b)) for model, setups in margin_setups(results).items()
             for i, (na, a) in enumerate(setups) for nb, b in setups[i + 1:]]
    if not pairs:
        return "_No model has runs on two setups yet._"
    within = all(abs(r) < 2 / math.sqrt(n) for *_, n, r in pairs)
    return ("Do a seed's runs on two setups go together? Their test accuracies, correlated over the seeds both setups "
            "have: " + "; ".join(f"`{m}`, {na} and {nb}: r = {signed(r, 2)} over {n} seeds" for m, na, nb, n, r in pairs)
            + ". " + ("Each lies within what unrelated runs give by chance (|r| under 2/√n, about two standard errors), "
                      "so the runs show nothing against pooling the setups as independent trainings."
                      if within else "At least one lies beyond what unrelated runs give by chance (|r| of 2/√n or "
                      "more), so a seed's runs on two setups may go together, and the pooled count may overstate what "
                      "the runs show."))


def pick_line(results: Path = RESULTS) -> str:
    """The Quick start's advice: which model to train for a run of one's own that passes the bar, from every published
    run of both models."""
    setups = margin_setups(results)
    if not setups[FINAL] or not setups[STRETCH]:
        return "_Both models need multi-seed runs first: see scripts/reproduce_results.sh._"

    def runs(model: str) -> str:
        sets = [g for _, g in setups[model]]
        below, n = pooled_below(sets)
        return (f"{below} of its {n} published runs (setups: {'; '.join(name for name, _ in setups[model])}) fell below "
                f"{pct(EXERCISE_BAR, 1)}, the lowest at {pct(min(g['test_acc_min'] for g in sets))}; by the counts, "
                f"passing with >= {pct(1 - ALLOWED_BELOW, 0)} probability is "
                f"**{bar_verdict(setups[model]).split('**')[1]}**")

    return (f"`python -m utils.train` trains the final model, `{FINAL}` ({count_parameters(STEPS[FINAL].build()):,} "
            f"parameters, this repository's goal of < {PARAMS_GOAL:,}): {runs(FINAL)}. If what you need is a run of your own "
            f"that passes the exercise's bar, train the < 20,000-parameter model instead, `{STRETCH}` "
            f"({count_parameters(STEPS[STRETCH].build()):,} parameters, {STEPS[STRETCH].config.epochs} epochs):\n\n"
            f"```bash\npython -m utils.train --model {STRETCH} --seed 1\n```\n\n"
            f"For that model, {runs(STRETCH)} ([which model passes](#which-model-passes-994--on-every-run)).")


def identical_runs(folder: str, like: str, results: Path = RESULTS, model: str = FINAL) -> Optional[dict]:
    """Runs in results/<folder> against the runs of the same seeds in results/<like>: how many share their weights' SHA-256."""
    a, b = all_seeds(results / folder, model), all_seeds(results / like, model)
    if a is None or b is None:
        return None
    pairs = paired_by_seed(a["seeds"], b["seeds"])
    return {"runs": a["seeds"], "of": b["n"], "pairs": len(pairs),
            "identical": sum(r["checkpoint_sha256"] == t["checkpoint_sha256"] and r["test_acc"] == t["test_acc"]
                             for r, t in pairs),
            "gpu": _one_or_all(r.get("gpu") for r in a["seeds"])}


def gpu_model_line(results: Path = RESULTS) -> str:
    """The README's sentence on round 16: round 14's TF32-off runs trained again on an H100, compared bit for bit."""
    c = identical_runs("gpu_fp32_h100", "gpu_fp32", results)
    if c is None or not c["pairs"]:
        return "_Round 16 is compared once it has runs of round 14's seeds: `bash scripts/reproduce_results.sh gpu16`._"
    seeds = seed_ranges(r["seed"] for r in c["runs"])
    text = (f"Round 16 has trained {len(c['runs'])} of round 14's {c['of']} seeds again (seeds {seeds}) on `{c['gpu']}` "
            f"with TF32 off (`results/gpu_fp32_h100/`); {c['identical']} of the {c['pairs']} that both have share their "
            f"checkpoint's SHA-256 and test accuracy with round 14's run of the same seed. ")
    if c["identical"] < c["pairs"]:
        return text + (f"The GPU model changed {c['pairs'] - c['identical']} of them, so rounds 13 and 14 differ in more "
                       f"than TF32.")
    return text + ("For these seeds the two GPUs computed the same bits with TF32 off: the GPU model did not change "
                   "the runs, so what round 14 changed from round 13 is TF32 (and anything the run files do not record, "
                   "such as the driver). That does not say TF32 changes the spread: the comparison above decides that. "
                   "These copies add no new runs, and no count includes them.")


def tried_table(results: Path = RESULTS) -> str:
    """Variations of the road's final recipe (scripts/try_recipes.py): best validation accuracy per seed, and the change."""
    runs: dict[str, dict] = {}
    for path in sorted((results / "tried").glob("*_seed*.json")):
        r = read_json(path)
        runs.setdefault(r["name"], {"change": r["change"], "params": r["params"], "val": {}})["val"][r["seed"]] = \
            r["best_val"]
    if not runs:
        return "_No variations tried yet: run `python scripts/try_recipes.py --publish`._"
    seeds = sorted({s for v in runs.values() for s in v["val"]})
    base_runs = {s: read_json(results / f"{TUNING_BASE}_seed{s}.json") for s in seeds}
    base = {s: r["best_val_acc"] for s, r in base_runs.items() if r is not None}
    rows = [[f"`{TUNING_BASE}` as it is", f"{count_parameters(build_model(TUNING_BASE)):,}"]
            + [pct(base[s]) if s in base else "" for s in seeds]
            + [pct(sum(base.values()) / len(base)) if base else "", ""]]
    for v in runs.values():
        common = [s for s in v["val"] if s in base]
        v["delta"] = sum(v["val"][s] - base[s] for s in common) / len(common) if common else float("nan")
    for v in sorted(runs.values(), key=lambda v: -v["delta"]):
        mean, delta = sum(v["val"].values()) / len(v["val"]), v["delta"]
        rows.append([v["change"], f"{v['params']:,}"] + [pct(v["val"][s]) if s in v["val"] else "" for s in seeds]
                    + [pct(mean), signed(100 * delta, 2)])
    header = ["Recipe", "Params"] + [f"Val, seed {s}" for s in seeds] + ["Mean val", f"vs {TUNING_BASE} (pp)"]
    return markdown_table(header, rows)


def round_rows(folder: str = "tried_round2", base: Optional[dict] = None, results: Path = RESULTS) -> list[dict]:
    """A round of variations (scripts/try_recipes.py --round N): per variation, its seeds' best validation accuracy, with and without TTA.

    The base (the recipe varied) is the round's own `base` runs, or `base` given as a row
    {"name": "base", "change", "params", "val": {seed: best val}} (its TTA unknown).
    """
    runs: dict[str, dict] = {} if base is None else {"base": {**base, "tta5": {}, "tta9": {}}}
    for path in sorted((results / folder).glob("*_seed*.json")):
        r = read_json(path)
        v = runs.setdefault(r["name"], {"name": r["name"], "change": r["change"], "params": r["params"],
                                        "val": {}, "tta5": {}, "tta9": {}})
        v["val"][r["seed"]] = r["best_val"]
        v["tta5"][r["seed"]], v["tta9"][r["seed"]] = r["tta_val"]["cross1"], r["tta_val"]["square1"]
    if set(runs) <= {"base"}:
        return []
    base_val = runs.get("base", {"val": {}})["val"]
    for v in runs.values():
        common = [s for s in v["val"] if s in base_val]
        v["mean"] = statistics.mean(v["val"].values())
        v["delta"] = statistics.mean(v["val"][s] - base_val[s] for s in common) if common else float("nan")
        for k in ("tta5", "tta9"):
            v[f"{k}_gain"] = statistics.mean(v[k][s] - v["val"][s] for s in v[k]) if v[k] else None
    return sorted(runs.values(), key=lambda v: (v["name"] != "base", -v["delta"]))


def round2_rows(results: Path = RESULTS) -> list[dict]:
    """Round 2 (scripts/try_recipes.py --round 2, variations of 6b): one dict per variation, see `round_rows`."""
    return round_rows("tried_round2", results=results)


LATE_BASE, LATE_SEEDS = "8_padding_ema", (1, 2, 3, 4, 5)
"""Rounds 3 and 4 vary 8_padding_ema on the CPU, later rounds the base their rule names; a round's base is that step's published runs of these seeds (CPU, or GPU where the rule says so)."""


def _published_base(step: str, seeds: Sequence[int], results: Path = RESULTS, partial: bool = False) -> Optional[dict]:
    """A step's published runs of `seeds` as a base row for `round_rows`; None if one is missing (if `partial`: if all are)."""
    runs = [read_json(results / f"{step}_seed{s}.json") for s in seeds]
    if partial:
        runs = [r for r in runs if r is not None]
    if None in runs or not runs:
        return None
    return {"name": "base", "change": f"`{step}` as published ({runs[0]['device']})", "params": runs[0]["parameters"],
            "val": {r["seed"]: r["best_val_acc"] for r in runs}}


LATE_RULES: dict[int, dict] = {
    3: {"candidates": ("b64", "wide", "wide_b64"), "stretch_candidate": "stretch_ema", "stretch_base": "9_stretch_tuned"},
    4: {"candidates": ("sep4", "sep5"), "becomes": "10_separable"},
    5: {"candidates": ("pool2", "wide28", "wide28_pool2"), "base": "10_separable"},
    6: {"candidates": ("stretch_sep", "stretch_pool2"), "base": "9_stretch_tuned", "replaces": "stretch"},
    7: {"candidates": ("el15",), "base": "10_separable"},
    8: {"candidates": ("wd1e4", "lr01", "lr04", "ema9995", "drop05", "aug10"), "base": "10_separable", "device": "gpu",
        "confirm": (6, 7, 8, 9, 10)},
    10: {"candidates": ("bnfix", "swa11", "kd05"), "base": "10_separable", "confirm": (6, 7, 8, 9, 10)},
    11: {"candidates": ("clean2", "clean4"), "base": "10_separable", "confirm": (6, 7, 8, 9, 10)},
    12: {"candidates": ("silu",), "base": "10_separable", "confirm": (6, 7, 8, 9, 10)},
    13: {"candidates": ("silu",), "base": "10_separable", "device": "gpu", "seeds": tuple(range(1, 37)), "min_seeds": 24,
         "min_z": 2.0},
    17: {"candidates": ("pad14",), "base": "10_separable", "confirm": (6, 7, 8, 9, 10)},
    18: {"candidates": ("eca",), "base": "10_separable", "confirm": (6, 7, 8, 9, 10)},
    19: {"candidates": ("strided", "strided_sep"), "base": "10_separable", "confirm": (6, 7, 8, 9, 10)},
}
"""The late rounds' adoption rules, written down before their runs started (comments in scripts/try_recipes.py):
the candidate with the highest mean best-validation accuracy replaces the round's base (LATE_BASE unless named) if it
beats the base's published runs of the same seeds by ADOPTION_MIN_GAIN; a stretch candidate likewise replaces its
stretch base. A round with "replaces": "stretch" varies the < 20,000-parameter model only. A round with "device": "gpu"
is judged against the base's GPU runs (results/gpu/); one with "confirm" has a stage 2: its finalist (the best candidate,
if it passed) trains those fresh seeds and is adopted only if it beats the base's same seeds by ADOPTION_MIN_GAIN too.
A round with "min_z" has many "seeds" and one candidate, adopted if its gain is at least min_z standard errors of the
difference of the two means, over seeds 1-K, the longest run of seeds from 1 that both have (at least "min_seeds")."""


def round_seeds(n: int) -> tuple[int, ...]:
    """The seeds that round n trains each candidate with (stage 1's, for a two-stage round)."""
    return LATE_RULES[n].get("seeds", LATE_SEEDS)


def _base_results(n: int, results: Path = RESULTS) -> Path:
    """The folder holding the runs of round n's base: results/ (CPU) or results/gpu/."""
    return results / "gpu" if LATE_RULES[n].get("device") == "gpu" else results


def round_base(n: int) -> str:
    """The step that round n varies (and that its candidates must beat)."""
    return LATE_RULES[n].get("base", LATE_BASE)


def late_round_rows(n: int, results: Path = RESULTS) -> list[dict]:
    """A late round (scripts/try_recipes.py --round N): see `round_rows`; a stretch candidate's delta is against its own base."""
    base = _published_base(round_base(n), round_seeds(n), _base_results(n, results), partial="min_z" in LATE_RULES[n])
    rows = round_rows(f"tried_round{n}", base, results)
    name = LATE_RULES[n].get("stretch_candidate")
    sbase = _published_base(LATE_RULES[n]["stretch_base"], LATE_SEEDS, _base_results(n, results)) if name else None
    for v in rows:
        if v["name"] == name and sbase is not None:
            v["delta"] = statistics.mean(v["val"][s] - sbase["val"][s] for s in v["val"] if s in sbase["val"])
    return sorted(rows, key=lambda v: (v["name"] != "base", -v["delta"]))


def _round_table(rows: list[dict], base: str, missing: str) -> str:
    def gain(x):
        return "" if x is None else signed(100 * x, 3)

    table = [[v["change"], f"{v['params']:,}", len(v["val"]), pct(v["mean"]),
              "" if v["name"] == "base" else gain(v["delta"]), gain(v["tta5_gain"]), gain(v["tta9_gain"])]
             for v in rows]
    if not table:
        return missing
    return markdown_table(["Recipe", "Params", "Seeds", "Mean best val", f"vs {base}, same seeds (pp)",
                           "TTA 5 shifts (pp)", "TTA 9 shifts (pp)"], table)


def round2_table(results: Path = RESULTS) -> str:
    """Round 2 as a markdown table: mean best validation accuracy, its gain over 6b on the same seeds, and TTA's gain."""
    return _round_table(round2_rows(results), "6b",
                        "_No round-2 variations yet: run `python scripts/try_recipes.py --round 2 --publish`._")


def late_round_table(n: int, results: Path = RESULTS) -> str:
    """A late round as a markdown table, like round 2's, against its base's published seeds (CPU, or GPU for a GPU round)."""
    stretch = LATE_RULES[n].get("stretch_base")
    base = round_base(n).split("_")[0]
    return _round_table(late_round_rows(n, results), base + (f" ({stretch.split('_')[0]} for < 20k)" if stretch else ""),
                        f"_No round-{n} variations yet: run `python scripts/try_recipes.py --round {n} --publish`._")


ADOPTION_MIN_GAIN = 0.0003
"""Every round's rule: a candidate replaces the model it varies if its mean best validation accuracy is this much higher."""


_ROUNDING = 1e-9
"""Far below one image in 10,000 (1e-4), far above a float sum's rounding error: what `reaches_margin` forgives."""


def reaches_margin(gain: float, margin: float = ADOPTION_MIN_GAIN) -> bool:
    """Whether a mean gain is at least the rules' margin; a gain exactly at it passes whatever its sum's last bit.

    Accuracies count whole validation images, so a mean gain can equal the margin exactly (3 images per seed), and then
    the float sum that computed it may land a rounding error either side of it.
    """
    return gain >= margin - _ROUNDING


def at_margin(gain: float, margin: float = ADOPTION_MIN_GAIN) -> bool:
    """Whether a mean gain equals the rules' margin (up to the float rounding that `reaches_margin` forgives)."""
    return abs(gain - margin) < _ROUNDING


def search_z_scores(results: Path = RESULTS) -> list[dict]:
    """Every late-round candidate under 8,000 parameters: its mean gain over its base and that gain in standard errors (z).

    A many-seed round (one with "min_z") re-tests an earlier candidate and is left out: it is not part of the search.

    The standard error is that of a difference of two independent n-seed means, sd·√(2/n), with sd the spread of the
    base's ten published seeds (the round's device; its five if ten are missing). "group" names the base runs a round
    was judged against: candidates in one group share the luck of that base's mean.
    """
    out = []
    for n in sorted(LATE_RULES):
        searched = LATE_RULES[n].get("replaces") != "stretch" and "min_z" not in LATE_RULES[n]  # not a many-seed re-test
        o = late_round_outcome(n, results) if searched else None
        if o is None:
            continue
        rows = o["rows"]
        folder = _base_results(n, results)
        ten = [read_json(folder / f"{round_base(n)}_seed{s}.json") for s in range(1, 11)]
        spread = [r["best_val_acc"] for r in ten] if None not in ten else list(rows["base"]["val"].values())
        sd = statistics.stdev(spread)
        for name in LATE_RULES[n]["candidates"]:
            v = rows[name]
            se = sd * math.sqrt(2 / len(v["val"]))
            out.append({"round": n, "name": name, "change": v["change"], "delta": v["delta"], "sd": sd, "se": se,
                        "z": v["delta"] / se, "group": f"{folder.name}/{round_base(n)}"})
    return out


SEARCH_TRIALS = 100_000
"""Simulated searches in which no candidate helps, for `search_verdict`."""


def search_verdict(results: Path = RESULTS) -> Optional[dict]:
    """The late rounds read together: candidates beyond ±2 standard errors, and what luck alone would give.

    Luck is simulated (SEARCH_TRIALS searches of the same shape in which no candidate changes anything: each candidate's
    mean and each base's mean drawn independently, candidates of one group sharing their base's draw). "expected_up"
    and "expected_down" are the mean counts of z >= 2 and z <= -2 there; "p_top" is the share of those searches whose
    best z reaches the best candidate's; "detectable" is the gain five seeds find 80 % of the time, (2 + 0.84)·se;
    "seeds_for_margin" is how many seeds per candidate (and base) would find a true gain of ADOPTION_MIN_GAIN that often.
    """
    rows = search_z_scores(results)
    if not rows:
        return None
    groups = sorted({r["group"] for r in rows})
    g = torch.Generator().manual_seed(0)
    base = torch.randn(SEARCH_TRIALS, len(groups), generator=g)  # each mean in units of its own spread, sd/√n
    cand = torch.randn(SEARCH_TRIALS, len(rows), generator=g)
    null = (cand - base[:, [groups.index(r["group"]) for r in rows]]) / math.sqrt(2)
    top = max(rows, key=lambda r: r["z"])
    power = 2 + NormalDist().inv_cdf(0.8)  # a true gain this many standard errors large reaches z >= 2 80 % of the time
    sd = statistics.mean(r["sd"] for r in rows)  # one run's spread, averaged over the candidates' rounds
    return {"rows": rows, "up": [r for r in rows if r["z"] >= 2], "down": [r for r in rows if r["z"] <= -2], "top": top,
            "expected_up": (null >= 2).sum(1).float().mean().item(),
            "expected_down": (null <= -2).sum(1).float().mean().item(),
            "p_top": (null.max(1).values >= top["z"]).float().mean().item(),
            "detectable": power * statistics.mean(r["se"] for r in rows),
            "seeds_for_margin": math.ceil(2 * (power * sd / ADOPTION_MIN_GAIN) ** 2)}


def search_summary(results: Path = RESULTS) -> str:
    """The README's sentence on the late rounds read together (notebook 02 plots it)."""
    v = search_verdict(results)
    if v is None:
        return "_No late round is complete yet._"
    rounds = sorted({r["round"] for r in v["rows"]})
    return (f"{len(v['rows'])} candidates under 8,000 parameters in rounds {rounds[0]}-{rounds[-1]}: {len(v['down'])} at "
            f"z <= -2 (luck alone would put {v['expected_down']:.1f} there on average), {len(v['up'])} at z >= 2 (luck: "
            f"{v['expected_up']:.1f}). In {pct(v['p_top'], 0)} of simulated searches of this shape in which nothing helps, "
            f"the best candidate reaches the z of this search's best, `{v['top']['name']}` (round {v['top']['round']}, "
            f"z = {v['top']['z']:.1f}). {len(LATE_SEEDS)} seeds per candidate find a gain 80 % of the time only from about "
            f"{100 * v['detectable']:.2f} pp up: the rounds would have caught gains that large, and could miss smaller ones. To "
            f"catch a true gain of {100 * ADOPTION_MIN_GAIN:.2f} pp (the rules' margin) as often would take about "
            f"{v['seeds_for_margin']} seeds per candidate and as many for the base.")


def round1_decision(results: Path = RESULTS) -> str:
    """Round 1's rule (6b replaces step 6 if its five-seed mean best validation accuracy is >= 0.03 pp higher), applied."""
    base = [read_json(results / f"{TUNING_BASE}_seed{s}.json") for s in range(1, 6)]
    tuned = [read_json(results / f"6b_tuned_recipe_seed{s}.json") for s in range(1, 6)]
    if None in base or None in tuned:
        return "_Round 1's five-seed runs are missing: `bash scripts/reproduce_results.sh`._"
    b, t = [r["best_val_acc"] for r in base], [r["best_val_acc"] for r in tuned]
    gain = statistics.mean(t) - statistics.mean(b)
    better = sum(x > y for x, y in zip(t, b))
    return (f"Five seeds each, validation only: `6b_tuned_recipe` {pct(statistics.mean(t), 3)} against "
            f"`{TUNING_BASE}`'s {pct(statistics.mean(b), 3)} ({pp(gain, 3)}; higher on {better} of 5 "
            f"seeds). The rule, set before any of its test results were read: adopt if the gain is at least "
            f"{100 * ADOPTION_MIN_GAIN:.2f} pp: **{'adopted' if reaches_margin(gain) else 'not adopted'}**.")


ROUND2_RULE = {"candidates": ("pad_nodrop_ema", "pad_aug5", "pad_aug5_ema"), "min_gain": ADOPTION_MIN_GAIN,
               "stretch_candidates": ("stretch_6b", "stretch_pad"), "becomes": "8_padding_ema",
               "stretch_becomes": "9_stretch_tuned"}
"""Round 2's adoption rule, fixed before any candidate's test number was read (see scripts/try_recipes.py)."""


def round2_decision(results: Path = RESULTS) -> str:
    """The round-2 adoption rule applied to the validation results, as sentences computed from the files."""
    rows = {v["name"]: v for v in round2_rows(results)}
    cands = [rows[n] for n in ROUND2_RULE["candidates"] if n in rows]
    if "base" not in rows or not cands:
        return "_Round 2 has not been run: `python scripts/try_recipes.py --round 2 --publish`._"
    base, best = rows["base"], max(cands, key=lambda v: v["mean"])
    gain = best["mean"] - base["mean"]
    adopted = gain >= ROUND2_RULE["min_gain"]
    tta = max(best["tta5_gain"], best["tta9_gain"])
    stretch = max((rows[n] for n in ROUND2_RULE["stretch_candidates"] if n in rows), key=lambda v: v["mean"],
                  default=None)
    text = (f"Rule: the candidate with the highest {len(best['val'])}-seed mean best-validation accuracy among "
            f"{', '.join(f'`{n}`' for n in ROUND2_RULE['candidates'])} replaces 6b if it beats 6b's mean by at "
            f"least {100 * ROUND2_RULE['min_gain']:.2f} pp; test-time augmentation only if it adds as much. "
            f"Applied: `{best['name']}` ({best['change']}) averaged {pct(best['mean'], 3)} against 6b's "
            f"{pct(base['mean'], 3)}, {pp(gain, 3)}: **{'adopted' if adopted else 'not adopted'}**"
            f"{', as `' + ROUND2_RULE['becomes'] + '`' if adopted else ''}. Its best TTA gain was {pp(tta, 3)}: TTA "
            f"**{'adopted' if tta >= ROUND2_RULE['min_gain'] else 'not adopted'}**.")
    if stretch is not None:
        text += (f" Under 20,000 parameters the higher mean was `{stretch['name']}` ({stretch['change']}, "
                 f"{pct(stretch['mean'], 3)}), now `{ROUND2_RULE['stretch_becomes']}`.")
    return text


def round_finalist(n: int, results: Path = RESULTS) -> Optional[str]:
    """A two-stage round's candidate that passed stage 1 and so trains the fresh seeds; None if none did (or not yet)."""
    o = _stage_one(n, results)
    return o["best"]["name"] if o is not None and reaches_margin(o["gain"]) else None


def late_round_outcome(n: int, results: Path = RESULTS) -> Optional[dict]:
    """A late round's rule applied: the rows it compared (by name), the gains and what was adopted; None until every run is there."""
    out = _stage_one(n, results)
    if out is None or "confirm" not in LATE_RULES[n] or not out["adopted"]:
        return out
    seeds = LATE_RULES[n]["confirm"]
    base = _published_base(round_base(n), seeds, _base_results(n, results))
    rows = {v["name"]: v for v in round_rows(f"tried_round{n}_confirm", base, results)}
    fresh = rows.get(out["best"]["name"])
    if base is None or fresh is None or len(fresh["val"]) < len(seeds):
        return None
    out["confirm"], out["confirm_gain"] = fresh, fresh["delta"]
    out["adopted"] = reaches_margin(fresh["delta"])
    return out


def _powered_outcome(n: int, rows: dict) -> Optional[dict]:
    """A many-seed round's rule (one with "min_z"): one candidate's gain, its standard error and z over seeds 1-K; None below min_seeds."""
    rule = LATE_RULES[n]
    if len(rule["candidates"]) != 1:
        raise ValueError(f"round {n}'s rule has min_z, which compares one candidate with its base; it names "
                         f"{len(rule['candidates'])}: give each candidate its own round")
    names = ("base", *rule["candidates"])
    if not all(k in rows for k in names):
        return None
    seeds = list(takewhile(lambda s: all(s in rows[k]["val"] for k in names), rule["seeds"]))
    if len(seeds) < rule["min_seeds"]:
        return None
    vals = {k: [rows[k]["val"][s] for s in seeds] for k in names}
    base, best = ({**rows[k], "mean": statistics.mean(vals[k])} for k in names)
    gain = best["mean"] - base["mean"]
    se = math.sqrt(sum(statistics.variance(v) for v in vals.values()) / len(seeds))
    return {"base": base, "best": best, "gain": gain, "se": se, "z": gain / se, "seeds": seeds, "rows": rows,
            "adopted": gain / se >= rule["min_z"],
            "upper95": gain + NormalDist().inv_cdf(0.95) * se,  # one-sided 95 % upper bound on the true gain
            "power": NormalDist().cdf(ADOPTION_MIN_GAIN / se - rule["min_z"])}  # P(z >= min_z) for a true gain of the margin


def _stage_one(n: int, results: Path = RESULTS) -> Optional[dict]:
    """A late round's rule on LATE_SEEDS (all of it, for a one-stage round); None until every run is there."""
    rule = LATE_RULES[n]
    rows = {v["name"]: v for v in late_round_rows(n, results)}
    if "min_z" in rule:
        return _powered_outcome(n, rows)
    cands = [rows.get(c) for c in rule["candidates"]]
    stretch = rows.get(rule["stretch_candidate"]) if "stretch_candidate" in rule else None
    sbase = _published_base(rule["stretch_base"], LATE_SEEDS, _base_results(n, results)) if "stretch_base" in rule else None
    complete = lambda v: v is not None and len(v["val"]) >= len(LATE_SEEDS)  # noqa: E731
    if "base" not in rows or not all(map(complete, cands)) or ("stretch_candidate" in rule and not (
            complete(stretch) and sbase is not None)):
        return None
    base, best = rows["base"], max(cands, key=lambda v: v["mean"])
    out = {"base": base, "best": best, "gain": best["mean"] - base["mean"], "rows": rows}
    out["adopted"] = reaches_margin(out["gain"])
    if stretch is not None:
        out["stretch"], out["stretch_base_mean"] = stretch, statistics.mean(sbase["val"].values())
        out["stretch_gain"] = stretch["mean"] - out["stretch_base_mean"]
        out["stretch_adopted"] = reaches_margin(out["stretch_gain"])
    return out


TTA_RULE = {"model": "10_separable", "seeds": tuple(range(1, 11))}
"""Round 9 (scripts/try_tta.py, rule written before it ran): the shift set with the larger mean validation gain over
these checkpoints is adopted for the final model if that gain is at least ADOPTION_MIN_GAIN."""


def tta_outcome(results: Path = RESULTS) -> Optional[dict]:
    """Round 9's rule applied: the runs, the mean validation accuracy without TTA and with each shift set, the best set, adopted?"""
    runs = [read_json(results / "tried_tta" / f"{TTA_RULE['model']}_seed{s}.json") for s in TTA_RULE["seeds"]]
    if None in runs:
        return None
    mean = {k: statistics.mean(r["val"][k] for r in runs) for k in runs[0]["val"]}
    best = max((k for k in mean if k != "none"), key=lambda k: mean[k])
    gain = mean[best] - mean["none"]
    counts = {k: (sum(r["val"][k] > r["val"]["none"] for r in runs), sum(r["val"][k] < r["val"]["none"] for r in runs))
              for k in mean if k != "none"}  # checkpoints it helped, and hurt
    return {"runs": runs, "mean": mean, "best": best, "gain": gain, "adopted": reaches_margin(gain),
            "counts": counts, "better": counts[best][0], "worse": counts[best][1], "n": len(runs)}


def tta_table(results: Path = RESULTS) -> str:
    """Round 9 as a markdown table: the final model's checkpoints on validation without TTA and with each shift set."""
    o = tta_outcome(results)
    if o is None:
        return "_Round 9 has not been run: `python scripts/try_tta.py --publish`._"
    names = {"none": "without TTA", "cross1": "`cross1`, 5 shifts: the image and its 4 one-pixel moves (up, down, left, right)",
             "square1": "`square1`, 9 shifts: the image and its 8 one-pixel moves (diagonals too)"}
    rows = [[names.get(k, k), pct(m, 3), "" if k == "none" else signed(100 * (m - o['mean']['none']), 3),
             "" if k == "none" else "{} / {}".format(*o["counts"][k])]
            for k, m in o["mean"].items()]
    return markdown_table([f"`{TTA_RULE['model']}`, {o['n']} published checkpoints", "Mean val acc", "Gain (pp)",
                           "Seeds better / worse"], rows)


def tta_decision(results: Path = RESULTS) -> str:
    """Round 9's rule applied, as a sentence computed from the files."""
    o = tta_outcome(results)
    if o is None:
        return "_Round 9 has not been run: `python scripts/try_tta.py --publish`._"
    return (f"Rule, written down before this evaluation first ran: the shift set with the larger mean validation gain "
            f"over the {o['n']} checkpoints is adopted for every evaluation of `{TTA_RULE['model']}` if that gain is at "
            f"least {100 * ADOPTION_MIN_GAIN:.2f} pp. Applied: `{o['best']}` gained {pp(o['gain'], 3)} (better "
            f"on {o['better']} checkpoints, worse on {o['worse']}): **{'adopted' if o['adopted'] else 'not adopted'}**"
            + ("." if o["adopted"] else "; the final model is evaluated without TTA."))


def late_round_decision(n: int, results: Path = RESULTS) -> str:
    """A late round's adoption rule applied to the validation results, as sentences computed from the files."""
    o, rule, base = late_round_outcome(n, results), LATE_RULES[n], round_base(n)
    stretch_round = rule.get("replaces") == "stretch"  # a round of < 20k candidates only
    role = "the < 20,000-parameter model" if stretch_round else "the final model"
    if o is None:
        return (f"_Round {n} is not complete ({len(round_seeds(n))} seeds of every variation): "
                f"`python scripts/try_recipes.py --round {n} --publish`._")
    best, names = o["best"], ", ".join(f"`{c}`" for c in rule["candidates"])
    becomes = rule.get("becomes", STRETCH if stretch_round else FINAL)
    verdict = (f"**{'adopted' if o['adopted'] else 'not adopted'}**"
               f"{f', as `{becomes}`' if o['adopted'] else f'; `{base}` stayed {role}'}.")
    if "min_z" in rule:
        k, n_all = len(o["seeds"]), len(rule["seeds"])
        return (f"Rule, written down before these runs started: {names} replaces `{base}` if its mean best-validation "
                f"accuracy over seeds {seed_ranges(rule['seeds'])} beats that model's published GPU runs of the same seeds "
                f"by at least {rule['min_z']:g} standard errors of the difference (over seeds 1-K, K >= "
                f"{rule['min_seeds']}, if the GPU time ran out first). Applied"
                + ("" if k == n_all else f" over seeds {seed_ranges(o['seeds'])} (the others are missing)")
                + f": `{best['name']}` ({best['change']}) averaged {pct(best['mean'], 3)} against {pct(o['base']['mean'], 3)}"
                f", {pp(o['gain'], 3)} with a standard error of {100 * o['se']:.3f} pp, z = {o['z']:.2f} (it took a "
                f"gain of {pp(rule['min_z'] * o['se'], 3)} to reach {rule['min_z']:g}): " + verdict
                + f" With this spread, a true gain of {100 * ADOPTION_MIN_GAIN:.2f} pp (the other rounds' margin) would have "
                f"reached z >= {rule['min_z']:g} with probability {pct(o['power'], 0)}"
                f", a candidate that changes nothing with about {pct(1 - NormalDist().cdf(rule['min_z']), 1)} (normal "
                f"approximation). The true gain is below {pp(o['upper95'], 3)} with 95 % confidence (one-sided), "
                + ("so a gain of the margin is ruled out at that level." if o["upper95"] < ADOPTION_MIN_GAIN
                   else "so a gain of the margin is not ruled out."))
    mean = f"{len(LATE_SEEDS)}-seed mean best-validation accuracy"
    who, beats = ((f"the candidate with the highest {mean} among {names}", "it beats") if len(rule["candidates"]) > 1
                  else (names, f"its {mean} beats"))
    device = "GPU" if rule.get("device") == "gpu" else "CPU"
    text = (f"Rule, written down before these runs started: {who} replaces `{base}` if {beats} that model's "
            f"published {device} runs of the same seeds by at least {100 * ADOPTION_MIN_GAIN:.2f} pp"
            + (f", and then again on fresh seeds {seed_ranges(rule['confirm'])}" if "confirm" in rule else "")
            + (f"; `{rule['stretch_candidate']}` replaces `{rule['stretch_base']}` on the same terms" if "stretch" in o
               else "")
            + f". Applied: `{best['name']}` ({best['change']}) averaged {pct(best['mean'], 3)} against "
            f"{pct(o['base']['mean'], 3)}, {pp(o['gain'], 3)}"
            + (f" (exactly the margin: {round(o['gain'] * N_VAL * len(LATE_SEEDS))} more validation digits right over "
               f"{len(LATE_SEEDS)} seeds)" if at_margin(o["gain"]) else ""))
    if "confirm" in o:
        text += (f", so it trained seeds {seed_ranges(rule['confirm'])}, where it averaged {pct(o['confirm']['mean'], 3)} "
                 f"against the base's {pct(o['confirm']['mean'] - o['confirm_gain'], 3)}, "
                 f"{pp(o['confirm_gain'], 3)}")
    elif "confirm" in rule and not o["adopted"]:
        text += (", so it trained no fresh seeds" if len(rule["candidates"]) == 1
                 else ", so no candidate went on to fresh seeds")
    text += ": " + verdict
    if "stretch" in o:
        sb = rule["stretch_base"]
        text += (f" `{rule['stretch_candidate']}` averaged {pct(o['stretch']['mean'], 3)} against `{sb}`'s "
                 f"{pct(o['stretch_base_mean'], 3)}, {pp(o['stretch_gain'], 3)}: "
                 f"**{'adopted' if o['stretch_adopted'] else 'not adopted'}**"
                 f"{f', as `{STRETCH}`' if o['stretch_adopted'] else f'; `{sb}` stayed'}.")
    return text



BLOCKS = {"requirements": requirements_table, "seeds": seeds_table, "seeds_gpu": gpu_seeds_table,
          "seeds_gpu_all": gpu_all_seeds_line,
          "seeds_cpu_all": cpu_all_seeds_line,
          "devices": devices_line,
          "seeds_gpu_fp32": gpu_fp32_seeds,
          "tf32": tf32_line, "gpu_model": gpu_model_line, "margin": margin_table, "same_seed": same_seed_line,
          "pick": pick_line,
          "previous_final": previous_final_line,
          "stretch": stretch_table, "iterations": iterations_table, "speed": speed_table, "tried": tried_table,
          "tried_round2": round2_table, "round2_decision": round2_decision, "round1_decision": round1_decision,
          "tried_tta": tta_table, "tta_decision": tta_decision, "search_summary": search_summary}
for _n in LATE_RULES:  # every late round has a table and a decision block
    BLOCKS[f"tried_round{_n}"], BLOCKS[f"round{_n}_decision"] = partial(late_round_table, _n), partial(late_round_decision, _n)


def render(text: str) -> str:
    """`text` with every `<!-- begin:NAME -->...<!-- end:NAME -->` block regenerated."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- begin:{name} -->\n).*?(<!-- end:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Rewrite README.md's generated blocks, or check that they are current."""
    p = argparse.ArgumentParser(prog="python -m utils.report", description=__doc__.split("\n")[0],
                                epilog="Without --check it rewrites the README's generated blocks in place "
                                       "(README.md is tracked by git: `git diff README.md` shows what changed).")
    p.add_argument("--check", action="store_true",
                   help="change nothing: exit 1 if the README's generated blocks are out of date with the result files")
    p.add_argument("--readme", default=str(ROOT / "README.md"),
                   help="the markdown file whose <!-- begin:NAME --> ... <!-- end:NAME --> blocks to render "
                        "(default: the repository's README.md)")
    args = p.parse_args(argv)
    readme = Path(args.readme).expanduser()
    if not readme.is_file():
        p.error(f"--readme {readme} is not a file: give the README.md to render")
    old = readme.read_text()
    names = re.findall(r"<!-- begin:(\w+) -->", old)
    if not names:
        p.error(f"{readme} has no <!-- begin:NAME --> blocks to render: give the repository's README.md")
    unknown = [n for n in names if n not in BLOCKS]
    if unknown:
        p.error(f"{readme} has a block this module cannot render: {', '.join(unknown)} (it renders "
                f"{', '.join(BLOCKS)})")
    unclosed = [n for n in names if f"<!-- end:{n} -->" not in old.split(f"<!-- begin:{n} -->", 1)[1]]
    if unclosed:
        p.error(f"{readme}: the block {', '.join(unclosed)} has no <!-- end:NAME --> after its begin")
    new = render(old)
    stale = [n for n in names if _block(old, n) != _block(new, n)]
    if args.check:
        if stale:
            again = "python -m utils.report" + ("" if readme == ROOT / "README.md" else f" --readme {readme}")
            print(f"{readme} is out of date with the result files in {len(stale)} of its {len(names)} generated "
                  f"blocks ({', '.join(stale)}): run {again}")
            return 1
        print(f"{readme}: its {len(names)} generated blocks are current")
        return 0
    readme.write_text(new)
    print(f"{readme}: {len(stale)} of its {len(names)} generated blocks rewritten" + (f" ({', '.join(stale)})" if stale else ""))
    return 0


def _block(text: str, name: str) -> str:
    """What stands between a generated block's begin and end markers."""
    return text.split(f"<!-- begin:{name} -->", 1)[1].split(f"<!-- end:{name} -->", 1)[0]


if __name__ == "__main__":
    raise SystemExit(main())
