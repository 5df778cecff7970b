"""Markdown tables built from the result files the code wrote, for the README and the notebooks.

    python -m utils.report           # rewrite the generated blocks of README.md
    python -m utils.report --check   # exit 1 if README.md is out of date with results/
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Optional, Sequence

from .data import repo_root
from .models import FINAL, STEPS, STRETCH, TUNING_BASE, build_model, count_parameters

ROOT = repo_root() or Path.cwd()
RESULTS = ROOT / "results"
BENCHMARK = ROOT / "benchmarks" / "results.json"


def read_json(path: Path) -> Optional[dict]:
    """The parsed file, or None when it does not exist yet."""
    return json.loads(path.read_text()) if path.is_file() else None


def pct(x: float, digits: int = 2) -> str:
    """0.99456 -> '99.46 %'."""
    return f"{100 * x:.{digits}f} %"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def requirements_table(results: Path = RESULTS) -> str:
    """The exercise's requirements (and our goals) against what the final model achieved over its seeds."""
    s = read_json(results / f"{FINAL}_seeds.json")
    if s is None:
        return "_No multi-seed result yet: run `python -m utils.train --seeds 1 2 3 4 5`._"
    step = STEPS[FINAL]
    rows = [
        ["Test accuracy (every seed)", ">= 99.40 %", f"min {pct(s['test_acc_min'])} over {len(s['seeds'])} seeds",
         _ok(s["test_acc_min"] >= 0.994)],
        ["Test accuracy (mean of seeds, our goal)", ">= 99.50 %",
         f"{pct(s['test_acc_mean'])} ± {pct(s['test_acc_std'])}", _ok(s["test_acc_mean"] >= 0.995)],
        ["Parameters", "< 20,000 (our goal: < 8,000)", f"{s['parameters']:,}", _ok(s["parameters"] < 8000)],
        ["Epochs", "< 20 (our goal: <= 15)", s["epochs"], _ok(s["epochs"] <= 15)],
        ["BatchNorm", "yes", "yes" if step.batchnorm else "no", _ok(step.batchnorm)],
        ["Dropout", "yes", f"p = {step.dropout}" if step.dropout else "no", _ok(step.dropout > 0)],
        ["Head", "GAP and/or FC", "GAP + 1x1 conv", _ok(True)],
        ["Checkpoint chosen on", "validation (never test)", "validation split (10k)", _ok(True)],
    ]
    return markdown_table(["Requirement", "Target", "Achieved", ""], rows)


def _ok(flag: bool) -> str:
    return "✅" if flag else "❌"


def seeds_table(results: Path = RESULTS, model: str = FINAL) -> str:
    """Per-seed test accuracy, validation accuracy, chosen epoch and training time of a model (default: final)."""
    s = read_json(results / f"{model}_seeds.json")
    if s is None:
        return f"_No multi-seed result for {model} yet: run `python -m utils.train --model {model} --seeds 1 2 3 4 5`._"
    rows = [[r["seed"], pct(r["test_acc"]), pct(r["best_val_acc"]), r["best_epoch"], f"{r['seconds']:.0f}"]
            for r in s["seeds"]]
    rows.append(["**mean ± std**", f"**{pct(s['test_acc_mean'])} ± {pct(s['test_acc_std'])}**",
                 pct(s["val_acc_mean"]), "", ""])
    table = markdown_table(["Seed", "Test acc", "Best val acc", "Chosen epoch", "Seconds"], rows)
    where = f"`{s['device']}`" + (f", {s['cpu_threads']} thread(s) per run" if s.get("cpu_threads") else "")
    return table + f"\n\nTrained with torch {s['torch']} on {where}; min {pct(s['test_acc_min'])}, " \
                   f"max {pct(s['test_acc_max'])}."


def iterations_rows(results: Path = RESULTS) -> list[dict]:
    """One dict per step of the road that has a result file (seed 1)."""
    rows = []
    for name in STEPS:
        r = read_json(results / f"{name}_seed1.json")
        if r is not None:
            rows.append(r)
    return rows


def iterations_table(results: Path = RESULTS) -> str:
    """Every step of the road: parameters, receptive field, best train / validation accuracy and the gap."""
    rows = [[r["model"], f"{r['parameters']:,}", r["receptive_field"], r["epochs"], pct(r["best_train_acc"]),
             pct(r["best_val_acc"]), f"{100 * r['train_val_gap']:+.2f}", r["best_epoch"]]
            for r in iterations_rows(results)]
    if not rows:
        return "_No iteration results yet: see scripts/reproduce_results.sh._"
    return markdown_table(["Step", "Params", "RF", "Epochs", "Best train", "Best val", "Gap (pp)",
                           "Chosen epoch"], rows)


def speed_table(path: Path = BENCHMARK) -> str:
    """The training-speed benchmark: what was measured, and the ratios."""
    b = read_json(path)
    if b is None:
        return "_No benchmark yet: run `python -m benchmarks.train_speed`._"
    return b.get("markdown", "")


def stretch_table(results: Path = RESULTS) -> str:
    """The stretch goal (< 20,000 parameters, mean test accuracy >= 99.60 % over 5 seeds) and its seeds."""
    s = read_json(results / f"{STRETCH}_seeds.json")
    if s is None:
        return seeds_table(results, STRETCH)
    verdict = "met" if s["test_acc_mean"] >= 0.996 and s["parameters"] < 20_000 else "not met"
    return (f"`{STRETCH}`: {s['parameters']:,} parameters, {s['epochs']} epochs, mean test accuracy "
            f"{pct(s['test_acc_mean'])} ± {pct(s['test_acc_std'])} over {len(s['seeds'])} seeds: stretch goal "
            f"(mean >= 99.60 %) **{verdict}**.\n\n" + seeds_table(results, STRETCH))


def tried_table(results: Path = RESULTS) -> str:
    """Variations of the road's final recipe (scripts/try_recipes.py): best validation accuracy per seed, and the change."""
    runs: dict[str, dict] = {}
    for path in sorted((results / "tried").glob("*_seed*.json")):
        r = read_json(path)
        runs.setdefault(r["name"], {"change": r["change"], "params": r["params"], "val": {}})["val"][r["seed"]] = \
            r["best_val"]
    if not runs:
        return "_No variations tried yet: run `python scripts/try_recipes.py`._"
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
                    + [pct(mean), f"{100 * delta:+.2f}"])
    header = ["Recipe", "Params"] + [f"Val, seed {s}" for s in seeds] + ["Mean val", f"vs {TUNING_BASE} (pp)"]
    return markdown_table(header, rows)


BLOCKS = {"requirements": requirements_table, "seeds": seeds_table, "stretch": stretch_table,
          "iterations": iterations_table, "speed": speed_table, "tried": tried_table}


def render(text: str) -> str:
    """`text` with every `<!-- begin:NAME -->...<!-- end:NAME -->` block regenerated."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- begin:{name} -->\n).*?(<!-- end:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Rewrite README.md's generated blocks, or check that they are current."""
    p = argparse.ArgumentParser(prog="python -m utils.report", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    args = p.parse_args(argv)
    readme = Path(args.readme)
    old = readme.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print(f"{readme} is out of date with the result files: run python -m utils.report")
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
