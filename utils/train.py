"""Command line: train a model of the road (default: the final one), save its weights and a metrics JSON.

    python -m utils.train --epochs 15 --seed 1            # -> runs/ (ignored by git)
    python -m utils.train --seeds 1 2 3 4 5               # + a mean +- std summary
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from .data import ENV_VAR, load_splits, load_test_set, repo_root
from .engine import evaluate, fit, pick_device
from .models import FINAL, STEPS, build_model, count_parameters, final_receptive_field


PUBLISHED = (repo_root() or Path.cwd()) / "results"
"""The published runs: only scripts/reproduce_results.sh writes here (the command line's --publish)."""


def _is_inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def write_json(data: dict, path: str | os.PathLike) -> Path:
    """Write `data` as indented JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def train_model(
    model_name: str = FINAL,
    seed: int = 1,
    epochs: Optional[int] = None,
    out: str | os.PathLike = "results",
    data_root: Optional[str] = None,
    device: Optional[str] = None,
    subset: Optional[int] = None,
    test: bool = True,
    progress: bool = True,
    log=print,
) -> dict:
    """Train one model with one seed; write `<out>/<model>_seed<seed>.pt` and `.json`; return the metrics.

    The checkpoint is chosen on the validation split; the official test set is evaluated once, at
    the end, on that checkpoint (skipped with test=False, as for the architecture iterations).
    """
    step = STEPS[model_name]
    config = step.config if epochs is None else replace(step.config, epochs=epochs)
    dev = pick_device(device)
    splits = load_splits(data_root, device=dev, subset=subset)
    model = build_model(model_name, seed=seed)
    stem = Path(out) / f"{model_name}_seed{seed}"
    log(f"{model_name}: {count_parameters(model):,} parameters, {config.epochs} epochs, seed {seed}, on {dev}")
    start = time.perf_counter()
    history = fit(model, splits, config, seed=seed, progress=progress, checkpoint_path=stem.with_suffix(".pt"),
                  model_name=model_name, log=log)
    seconds = time.perf_counter() - start
    metrics = {
        "model": model_name,
        "seed": seed,
        "parameters": count_parameters(model),
        "receptive_field": final_receptive_field(model),
        "epochs": config.epochs,
        "best_epoch": history["best_epoch"],
        "best_val_acc": history["best_val_acc"],
        "best_train_acc": history["best_train_acc"],
        "train_val_gap": history["best_train_acc"] - history["best_val_acc"],
        "test_acc": None,
        "test_loss": None,
        "seconds": seconds,
        "subset": subset,
        "torch": torch.__version__,
        "device": str(dev),
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "config": config.to_dict(),
        "spec": list(step.spec),
        "batchnorm": step.batchnorm,
        "dropout": step.dropout,
        "history": history,
    }
    if test:
        test_x, test_y = load_test_set(splits.mean, splits.std, data_root, device=dev)
        metrics["test_loss"], metrics["test_acc"] = evaluate(model, test_x, test_y)
        log(f"chosen epoch {history['best_epoch']} (val acc {history['best_val_acc']:.4f}); "
            f"test acc {metrics['test_acc']:.4f}")
    write_json(metrics, stem.with_suffix(".json"))
    return metrics


def summarize_seeds(runs: Sequence[dict]) -> dict:
    """Per-seed figures of several runs of one model, with mean, std, min and max of the test accuracy."""
    accs = [r["test_acc"] for r in runs]
    return {
        "model": runs[0]["model"],
        "parameters": runs[0]["parameters"],
        "epochs": runs[0]["epochs"],
        "seeds": [
            {k: r[k] for k in ("seed", "test_acc", "best_val_acc", "best_epoch", "seconds")} for r in runs
        ],
        "test_acc_mean": statistics.mean(accs),
        "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "test_acc_min": min(accs),
        "test_acc_max": max(accs),
        "val_acc_mean": statistics.mean(r["best_val_acc"] for r in runs),
        "torch": runs[0]["torch"],
        "device": runs[0]["device"],
        "cpu_threads": runs[0].get("cpu_threads"),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and train."""
    p = argparse.ArgumentParser(prog="python -m utils.train", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=FINAL, choices=list(STEPS), help="which step of the road (default: final)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (default 15)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", help="several seeds; also writes <model>_seeds.json")
    p.add_argument("--out", default="runs", help="folder for the weights and metrics (default runs/, ignored by git)")
    p.add_argument("--publish", action="store_true",
                   help="allow --out inside results/, the published runs (scripts/reproduce_results.sh passes it)")
    p.add_argument("--data-root", default=None, help=f"folder holding MNIST/raw (default: ${ENV_VAR}, else data/)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--subset", type=int, default=None, help="use only N images per split (smoke tests)")
    p.add_argument("--no-test", action="store_true", help="do not evaluate the test set (architecture iterations)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--summarize", action="store_true",
                   help="train nothing: summarize the existing <out>/<model>_seed<N>.json of --seeds")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.epochs is not None and not 1 <= args.epochs < 20:
        p.error("--epochs must be between 1 and 19 (the exercise allows fewer than 20)")
    args.out = Path(args.out).expanduser()
    if _is_inside(args.out, PUBLISHED) and not args.publish:
        p.error(f"{args.out} is inside {PUBLISHED}, which holds the published runs; write your own runs to "
                f"runs/ (the default) or another folder. Only scripts/reproduce_results.sh writes there (--publish).")
    seeds = args.seeds or [args.seed]
    if args.summarize:
        runs = [json.loads((Path(args.out) / f"{args.model}_seed{s}.json").read_text()) for s in seeds]
    else:
        runs = [
            train_model(args.model, s, args.epochs, args.out, args.data_root, args.device, args.subset,
                        test=not args.no_test, progress=not args.no_progress)
            for s in seeds
        ]
    if len(runs) > 1 and not args.no_test:
        summary = summarize_seeds(runs)
        path = write_json(summary, Path(args.out) / f"{args.model}_seeds.json")
        print(f"test acc over {len(runs)} seeds: {summary['test_acc_mean']:.4f} +- {summary['test_acc_std']:.4f} "
              f"(min {summary['test_acc_min']:.4f}, max {summary['test_acc_max']:.4f}) -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
