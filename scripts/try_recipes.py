"""Variations of the road's final recipe (`6_onecycle`), judged on the validation split only (the test set is not touched).

    python scripts/try_recipes.py            # train every variation and seed that has no result file yet
    python scripts/try_recipes.py --jobs 2   # two at a time (one CPU thread each)
    python scripts/try_recipes.py --list     # what is there, without training

Each run is that recipe (`utils.models.TUNING_BASE`) with one or two changes, seeded like `utils.train`
(`torch.manual_seed(seed)` before the model is built, `fit(..., seed=seed)`), trained for the full
15 epochs with one CPU thread; its best validation accuracy is written to
results/tried/<variation>_seed<seed>.json, and `python -m utils.report` turns them into the README's
table next to that recipe's own validation accuracy for the same seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from utils.models import STEPS, TUNING_BASE

OUT = Path(__file__).resolve().parent.parent / "results" / "tried"
SEEDS = (1, 2)
_SPEC = " ".join(STEPS[TUNING_BASE].spec)
_P = STEPS[TUNING_BASE].dropout

# name: (what changes, spec, dropout, TrainConfig overrides)
VARIATIONS: dict[str, tuple[str, str, float, dict]] = {
    "batch64": ("batch 64 (twice the steps)", _SPEC, _P, {"batch_size": 64}),
    "batch256": ("batch 256, max lr 0.2 (half the steps, faster)", _SPEC, _P,
                 {"batch_size": 256, "lr": 0.2}),
    "deeper_rf26": ("five 3x3 convs after the pool, RF 26 px (7,928 params)",
                    "c8 c16 M t8 c10 c10 c12 c14 c16 G", 0.05, {}),
    "weight_decay": ("weight decay 5e-4", _SPEC, _P, {"weight_decay": 5e-4}),
    "max_lr_0.2": ("max lr 0.2", _SPEC, _P, {"lr": 0.2}),
    "dropout_0.02": ("dropout 0.02", _SPEC, 0.02, {}),
    "lr_0.2_dropout_0.02": ("max lr 0.2 + dropout 0.02", _SPEC, 0.02, {"lr": 0.2}),
    "lr_dropout_wd": ("max lr 0.2 + dropout 0.02 + weight decay 5e-4", _SPEC, 0.02,
                      {"lr": 0.2, "weight_decay": 5e-4}),
    "zoom_0.1": ("+ random zoom ±10 %", _SPEC, _P, {"scale": 0.1}),
}


def run_one(name: str, seed: int, data_root: str | None = None) -> dict:
    """Train one variation with one seed (one CPU thread) and write its result file."""
    import torch

    from utils.data import load_splits
    from utils.engine import fit
    from utils.models import Net, count_parameters

    change, spec, dropout, overrides = VARIATIONS[name]
    torch.set_num_threads(1)
    config = replace(STEPS[TUNING_BASE].config, **overrides)
    splits = load_splits(data_root)
    torch.manual_seed(seed)
    model = Net(spec.split(), True, dropout)
    start = time.perf_counter()
    history = fit(model, splits, config, seed=seed, progress=False, log=None)
    result = {"name": name, "change": change, "seed": seed, "spec": spec.split(), "dropout": dropout,
              "overrides": overrides, "params": count_parameters(model), "best_val": history["best_val_acc"],
              "best_epoch": history["best_epoch"], "val": history["val_acc"], "train": history["train_acc"],
              "seconds": time.perf_counter() - start, "torch": torch.__version__}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}_seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train the variations that have no result file yet."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, one thread each")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--list", action="store_true", help="show what is there; train nothing")
    ap.add_argument("--one", nargs=2, metavar=("NAME", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        run_one(args.one[0], int(args.one[1]), args.data_root)
        return 0
    todo = [(n, s) for n in VARIATIONS for s in SEEDS if not (OUT / f"{n}_seed{s}.json").is_file()]
    if args.list:
        print(f"{len(todo)} of {len(VARIATIONS) * len(SEEDS)} runs missing: {todo}")
        return 0

    def launch(job):
        cmd = [sys.executable, __file__, "--one", job[0], str(job[1])]
        if args.data_root:
            cmd += ["--data-root", args.data_root]
        subprocess.run(cmd, check=True)
        print(f"done: {job[0]} seed {job[1]}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(launch, todo))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
