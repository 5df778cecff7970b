"""Round 9: test-time augmentation (TTA) for the final model, judged on the validation split with its published checkpoints.

    python scripts/try_tta.py    # about five minutes on one CPU thread; writes runs/tried_tta/<model>_seed<seed>.json

The published files, results/tried_tta/, are written only by scripts/reproduce_results.sh, which passes --publish.

No training: each of the final model's ten published checkpoints (results/<model>_seed<N>.pt) is evaluated on the
validation split without TTA and with each shift set of `utils.engine.TTA_SHIFTS` (the predicted probabilities of
the image and its copies moved by one pixel are averaged: 5 copies for "cross1", 9 for "square1"). The test set is
not touched.

Adoption rule, written down before this script first ran (no TTA number of these checkpoints existed): the shift set
with the larger mean gain in validation accuracy over the ten checkpoints (with it minus without) is adopted for
every evaluation of the final model (training's test number, the CLI, the notebooks, the claims tests) if that
mean gain is at least 0.03 pp, the threshold of every round; otherwise the final model is evaluated without TTA.
`utils.report.tta_outcome` applies it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

OUT = "tried_tta"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Evaluate the final model's published checkpoints on validation with and without each TTA shift set."""
    from utils.train import PUBLISHED, RUNS, USER_ERRORS, print_user_error

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="About five minutes on one CPU thread; trains nothing.")
    ap.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $MNIST_ROOT, else data/)")
    ap.add_argument("--publish", action="store_true",
                    help="write to results/tried_tta/, the published runs (scripts/reproduce_results.sh passes it); "
                         "default: runs/tried_tta/, ignored by git")
    args = ap.parse_args(argv)
    try:
        return _evaluate_checkpoints(args, (PUBLISHED if args.publish else RUNS) / OUT)
    except USER_ERRORS as err:  # missing data, a missing or damaged checkpoint: one line, no traceback
        return print_user_error(ap.prog, err)


def _evaluate_checkpoints(args: argparse.Namespace, out: Path) -> int:
    """Each published checkpoint's validation accuracy with every shift set, one JSON per seed in `out`."""
    import torch

    from utils.data import load_splits
    from utils.engine import load_trained_model, tta_accuracies, tune_cpu_allocator
    from utils.report import TTA_RULE
    from utils.train import PUBLISHED

    torch.set_num_threads(1)
    tune_cpu_allocator()  # as `fit` does: without it every 2,000-image batch maps fresh pages (2.5x the CPU time here)
    splits = load_splits(args.data_root)
    out.mkdir(parents=True, exist_ok=True)
    model_name = TTA_RULE["model"]
    for seed in TTA_RULE["seeds"]:
        model, _ = load_trained_model(PUBLISHED / f"{model_name}_seed{seed}.pt")
        val = tta_accuracies(model, splits.val_x, splits.val_y, fill=splits.background)
        result = {"model": model_name, "seed": seed, "val": val, "torch": torch.__version__}
        (out / f"{model_name}_seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"seed {seed}: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in val.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
