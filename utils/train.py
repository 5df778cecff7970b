"""Command line: train a model of the road (default: the final one), save its weights and a metrics JSON.

    python -m utils.train --epochs 15 --seed 1            # -> runs/ (ignored by git)
    python -m utils.train --seeds 1 2 3 4 5               # + a mean +- std summary
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from .data import (ENV_VAR, N_TRAIN, N_VAL, DatasetNotFoundError, MNISTFileError, load_splits, load_test_set,
                   repo_root)
from .engine import (CheckpointError, DeviceError, InputError, OutputFolderError, RunFilesError, UnknownDeviceError,
                     check_writable_folder, checkpoint_bytes, evaluate, fit, pick_device, read_run, save_run,
                     tf32_convolutions, tf32_disabled, write_atomically)
from .models import FINAL, STEPS, build_model, count_parameters, final_receptive_field, step_of
from .report import count_of


PUBLISHED = (repo_root() or Path.cwd()) / "results"
"""The published runs: only scripts/reproduce_results.sh writes here (the command line's --publish)."""
RUNS = (repo_root() or Path.cwd()) / "runs"
"""Where runs go by default: `runs/` at the repository root, ignored by git."""
DEBUG_VAR = "MNIST_DEBUG"
"""Set to 1 (or pass --debug) to see the traceback behind an error message."""


class RunsDisagreeError(ValueError):
    """Runs to be summarized together differ in what they measured."""


class Terminated(BaseException):
    """The process got SIGTERM (`kill`): raised like Ctrl-C's KeyboardInterrupt, so clean-up code runs."""


def raise_on_sigterm() -> None:
    """Turn SIGTERM into a `Terminated` exception (main thread only): temp files are removed on the way out."""
    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


USER_ERRORS = (DatasetNotFoundError, MNISTFileError, CheckpointError, RunFilesError, OutputFolderError,
               DeviceError, InputError, RunsDisagreeError)
"""Errors about what the user gave (files, folders, devices): one line on the command line, no traceback."""


def _is_inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def write_json(data: dict, path: str | os.PathLike) -> Path:
    """Write `data` as indented JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, (json.dumps(data, indent=1) + "\n").encode())


def train_model(
    model_name: str = FINAL,
    seed: int = 1,
    epochs: Optional[int] = None,
    out: str | os.PathLike = RUNS,
    data_root: Optional[str] = None,
    device: Optional[str] = None,
    subset: Optional[int] = None,
    test: bool = True,
    progress: bool = True,
    log=print,
    tf32: bool = True,
) -> dict:
    """Train one model with one seed; write `<out>/<model>_seed<seed>.pt` and `.json`; return the metrics.

    The checkpoint is chosen on the validation split; the official test set is evaluated once, at
    the end, on that checkpoint (skipped with test=False, as for the architecture iterations). Nothing
    is written until everything is computed; then the two files are replaced as a pair (`save_run`),
    and the JSON records the checkpoint's sha256 (`utils.engine.read_run` checks it). tf32=False makes
    a GPU compute in full float32 (`utils.engine.tf32_disabled`), as GPUs without TF32 (a T4, say) always do.
    """
    step = step_of(model_name)
    config = step.config if epochs is None else replace(step.config, epochs=epochs)
    dev = pick_device(device)
    if not tf32:  # the same run inside the context (tf32=True there: leave the setting as the context made it)
        with tf32_disabled():
            return train_model(model_name, seed, epochs, out, data_root, device, subset, test, progress, log, tf32=True)
    out = check_writable_folder(out)  # before hours of training, not after
    splits = load_splits(data_root, device=dev, subset=subset)
    # Loaded (and its files checked) now, so a damaged test file stops the run before training; used once, at the end.
    test_x, test_y = load_test_set(splits.mean, splits.std, data_root, device=dev) if test else (None, None)
    model = build_model(model_name, seed=seed)
    stem = out / f"{model_name}_seed{seed}"
    log(f"{model_name}: {count_parameters(model):,} parameters, {count_of(config.epochs, 'epoch')}, seed {seed}, on {dev}")
    start = time.perf_counter()
    history = fit(model, splits, config, seed=seed, progress=progress, model_name=model_name, log=log)
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
    if dev.type == "cuda":  # (round 13's GPU runs predate both keys: an H100, torch's default TF32; round 14's, `gpu`)
        metrics["gpu"], metrics["cuda_tf32"] = torch.cuda.get_device_name(dev), tf32_convolutions(dev)
    if test:
        metrics["test_loss"], metrics["test_acc"] = evaluate(model, test_x, test_y)
        log(f"chosen epoch {history['best_epoch']} (val acc {history['best_val_acc']:.4f}); "
            f"test acc {metrics['test_acc']:.4f}")
    checkpoint = checkpoint_bytes(model, model_name, splits.mean, splits.std,
                                  {"best_epoch": history["best_epoch"], "best_val_acc": history["best_val_acc"]})
    replaced = stem.with_name(stem.name + ".json").exists()
    metrics = save_run(stem, checkpoint, metrics)
    log(f"saved {stem}.pt and .json" + (" (replacing the earlier run of this model and seed there)" if replaced else ""))
    return metrics


SAME_IN_A_SUMMARY = ("model", "epochs", "subset", "config", "cuda_tf32")
"""What every run of a summary must share (besides being evaluated on the test set)."""


def summarize_seeds(runs: Sequence[dict]) -> dict:
    """Per-seed figures of several runs of one model, with mean, std, min and max of the test accuracy.

    Raises `RunsDisagreeError` if the runs differ in model, epochs, subset, recipe or TF32 setting, or if one of them
    was trained without the test set.
    """
    if not runs:
        raise RunsDisagreeError("no runs to summarize")
    for r in runs:
        if r.get("test_acc") is None:
            raise RunsDisagreeError(f"the run of {r.get('model')} seed {r.get('seed')} has no test accuracy "
                                    f"(trained with --no-test): train it again with the test set to summarize it")
        for key in SAME_IN_A_SUMMARY:
            if r.get(key) != runs[0].get(key):
                shown = lambda v: "whole splits" if key == "subset" and v is None else v  # noqa: E731
                what = {"config": "recipe (config)", "cuda_tf32": "TF32 setting (--no-tf32)"}.get(key, key)
                raise RunsDisagreeError(
                    f"the runs differ in {what}: seed {runs[0].get('seed')} has {shown(runs[0].get(key))}, "
                    f"seed {r.get('seed')} has {shown(r.get(key))}; summarize only runs of one protocol")
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
        **({"cuda_tf32": runs[0]["cuda_tf32"]} if "cuda_tf32" in runs[0] else {}),
    }


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="python -m utils.train", description=__doc__.split("\n")[0],
        epilog=f"A bad option or value stops at once with one line and exit status 2. A problem with what the "
               f"run needs (MNIST files missing or damaged, a device this machine lacks, an --out that cannot "
               f"be written, result files that do not match) stops before training with one line and exit "
               f"status 1; Ctrl-C exits with 130 and writes nothing for the run in progress. --debug (or "
               f"{DEBUG_VAR}=1) shows the traceback too.")
    p.add_argument("--model", default=FINAL, choices=list(STEPS),
                   help=f"which step of the road (default: {FINAL}, the final model)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (1-19; default 15)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the weights, batch order, augmentation (>= 0; default 1)")
    p.add_argument("--seeds", type=int, nargs="+", help="several seeds instead of --seed; also writes <model>_seeds.json")
    p.add_argument("--out", default=None,
                   help="folder for the weights and metrics (default runs/ at the repository root, ignored by git)")
    p.add_argument("--publish", action="store_true",
                   help="allow --out inside results/, the published runs (scripts/reproduce_results.sh passes it)")
    p.add_argument("--data-root", default=None, help=f"folder holding MNIST/raw (default: ${ENV_VAR}, else data/)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: the best available)")
    p.add_argument("--subset", type=int, default=None,
                   help=f"train and validate on only the first N images of each split, 1 to {N_TRAIN:,} "
                        f"(smoke tests; validation keeps at most its {N_VAL:,}, the test set stays whole)")
    p.add_argument("--no-test", action="store_true", help="do not evaluate the test set (architecture iterations)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-tf32", action="store_true",
                   help="on a GPU, compute in full float32: no TF32 rounding in convolutions (torch's default allows it)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch, >= 1 (default: torch's choice)")
    p.add_argument("--summarize", action="store_true",
                   help="train nothing: summarize the existing <out>/<model>_seed<N>.json of --seeds")
    p.add_argument("--debug", action="store_true", help=f"show tracebacks behind error messages (or {DEBUG_VAR}=1)")
    return p


def one_line(err: BaseException) -> str:
    """An error's message on one line, however its text was wrapped."""
    return " ".join(str(err).split())


def print_user_error(prog: str, err: BaseException) -> int:
    """Print "<prog>: error: <message>" on one line to stderr, as argparse does; the exit status 1 to return."""
    print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and train; errors in the input end in one line, not a traceback."""
    p = _parser()
    args = p.parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_VAR, "").strip() not in ("", "0")
    previous = signal.getsignal(signal.SIGTERM)
    raise_on_sigterm()
    try:
        return _run(p, args)
    except USER_ERRORS as err:
        if debug:
            raise
        return print_user_error(p.prog, err)
    except (KeyboardInterrupt, Terminated) as err:
        if debug:
            raise
        print(f"{p.prog}: {'interrupted' if isinstance(err, KeyboardInterrupt) else 'terminated'}: the runs "
              f"finished before are saved; the run in progress wrote nothing (or its whole pair, if it was saving)",
              file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.epochs is not None and not 1 <= args.epochs < 20:
        p.error(f"--epochs must be between 1 and 19 (the exercise allows fewer than 20), got {args.epochs}")
    if args.seeds and args.seed is not None:
        p.error(f"give --seed or --seeds, not both (--seeds {' '.join(map(str, args.seeds))} trains those seeds)")
    seeds = args.seeds or [1 if args.seed is None else args.seed]
    if any(s < 0 for s in seeds):
        p.error(f"seeds must be 0 or more, got {min(seeds)}")
    if len(set(seeds)) < len(seeds):
        p.error(f"--seeds lists a seed twice: {' '.join(map(str, seeds))}")
    if args.subset is not None and not 1 <= args.subset <= N_TRAIN:
        p.error(f"--subset must be 1 to {N_TRAIN} (images per split; the training split has {N_TRAIN}), "
                f"got {args.subset}; leave it out to use the whole splits")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}; leave it out for torch's choice")
    if args.summarize and args.no_test:
        p.error("--summarize reads test accuracies, which --no-test runs do not have")
    if args.summarize and (args.epochs is not None or args.subset is not None):
        p.error("--summarize trains nothing, so --epochs and --subset do not apply: it reads them from the runs")
    if args.out is not None and not args.out.strip():
        p.error("--out is empty: give a folder, or leave --out out to write to runs/")
    args.out = Path(args.out).expanduser() if args.out is not None else RUNS
    if args.data_root is not None:
        args.data_root = str(Path(args.data_root).expanduser())
    if _is_inside(args.out, PUBLISHED) and not args.publish:
        p.error(f"{args.out} is inside {PUBLISHED}, which holds the published runs; write your own runs to "
                f"runs/ (the default) or another folder. Only scripts/reproduce_results.sh writes there (--publish).")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.summarize:
        runs = [read_run(args.out / f"{args.model}_seed{s}.json") for s in seeds]  # each pair checked
        check_writable_folder(args.out)
    else:
        try:
            pick_device(args.device)  # these fail before any training starts
        except UnknownDeviceError as err:  # a misspelt value, like any bad option: status 2
            p.error(one_line(err))
        check_writable_folder(args.out)
        runs = [
            train_model(args.model, s, args.epochs, args.out, args.data_root, args.device, args.subset,
                        test=not args.no_test, progress=not args.no_progress, tf32=not args.no_tf32)
            for s in seeds
        ]
    if (len(runs) > 1 or args.summarize) and not args.no_test:
        summary = summarize_seeds(runs)
        path = write_json(summary, args.out / f"{args.model}_seeds.json")
        print(f"test acc over {len(runs)} seeds: {summary['test_acc_mean']:.4f} +- {summary['test_acc_std']:.4f} "
              f"(min {summary['test_acc_min']:.4f}, max {summary['test_acc_max']:.4f}) -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
