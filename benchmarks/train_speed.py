"""Training-speed benchmark: the whole-tensor pipeline against the classic DataLoader pipeline.

    python -m benchmarks.train_speed                  # modes pipeline + tweaks (about 15 minutes)
    python -m benchmarks.train_speed --mode full      # + full trainings: final recipe vs baseline recipe
    python -m benchmarks.train_speed --render-only    # measure nothing: rewrite the table from results.json

Every measurement runs in a fresh subprocess (so peak memory and allocator settings belong to one
measurement), the two pipelines alternate, and the results are merged into benchmarks/results.json
together with the markdown table that the README shows.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch

OUT = Path(__file__).resolve().parent / "results.json"
EPOCH_BATCHES = 391  # 50,000 images / 128


def _augment() -> dict:
    from utils.models import FINAL, STEPS

    return STEPS[FINAL].config.augment


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------- workers (one per subprocess)

def worker_pipeline(kind: str, batches: int, engine: str = "fit", warmup: int = 5, data_root=None) -> dict:
    """Time `batches` training steps of the baseline model through one pipeline, with augmentation.

    kind: "dataloader" (main process), "dataloader-2w" (two loader worker processes) or "tensor";
    engine: "fit" prepares the model as `fit` does (allocator, channels-last), "defaults" leaves torch's.
    """
    from utils.data import iterate_batches, load_splits, make_dataloaders
    from utils.engine import make_optimizer, prepare_for_training, seed_everything, train_one_epoch
    from utils.models import BASELINE, STEPS

    seed_everything(0)
    step = STEPS[BASELINE]
    model = step.build()
    if engine == "fit":
        prepare_for_training(model, "cpu")
    opt, sched = make_optimizer(model, step.config, EPOCH_BATCHES)
    if kind.startswith("dataloader"):
        workers = 2 if kind == "dataloader-2w" else 0
        loader, _ = make_dataloaders(data_root, 128, **_augment(), seed=0, num_workers=workers)
        it = iter(loader)
    else:
        splits = load_splits(data_root)
        augment = dict(_augment(), fill=splits.background)
        it = iterate_batches(splits.train_x, splits.train_y, 128, shuffle=True,
                             generator=torch.Generator().manual_seed(0), augment=augment)
    train_one_epoch(model, (next(it) for _ in range(warmup)), opt, sched, progress=False)
    start = time.perf_counter()
    train_one_epoch(model, (next(it) for _ in range(batches)), opt, sched, progress=False)
    seconds = time.perf_counter() - start
    return {"seconds_per_batch": seconds / batches, "peak_rss_mb": _peak_rss_mb()}


def worker_augment(repeats: int = 300, data_root=None) -> dict:
    """Milliseconds to augment one batch of 128: with torch's `F.affine_grid` and with `utils.augment.affine_grid`."""
    import torch.nn.functional as F

    import utils.augment as augment_module
    from utils.data import load_splits

    splits = load_splits(data_root)
    x, kwargs = splits.train_x[:128], dict(_augment(), fill=splits.background)
    grids = {"torch": lambda theta, size: F.affine_grid(theta, size, align_corners=False),
             "utils": augment_module.affine_grid}
    times: dict = {k: [] for k in grids}
    generator = torch.Generator().manual_seed(0)
    try:
        for _ in range(repeats):  # alternating, so both see the same machine load
            for name, grid in grids.items():
                augment_module.affine_grid = grid  # random_affine looks it up at call time
                start = time.perf_counter()
                augment_module.random_affine(x, generator=generator, **kwargs)
                times[name].append(time.perf_counter() - start)
    finally:
        augment_module.affine_grid = grids["utils"]
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {"ms_per_batch": ms, "seconds_per_epoch": {k: v * EPOCH_BATCHES / 1000 for k, v in ms.items()},
            "repeats": repeats}


def worker_tweak(tweak: str, batches: int, data_root=None) -> dict:
    """Training images per second of the final model on the tensor pipeline under one setting."""
    import torch.nn as nn

    from utils.data import iterate_batches, load_splits
    from utils.engine import evaluate, make_optimizer, seed_everything, train_one_epoch, tune_cpu_allocator
    from utils.models import FINAL, STEPS

    step = STEPS[FINAL]
    config = step.config
    if tweak != "plain":
        tune_cpu_allocator()
    if tweak == "1 thread":
        torch.set_num_threads(1)
    if tweak == "batch 256":
        config = replace(config, batch_size=256)
    seed_everything(0)
    model = step.build()
    if tweak == "per-pixel dropout before the pool too":
        layers = list(model.layers)
        relus = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)][:2]
        for i in reversed(relus):
            layers.insert(i + 1, nn.Dropout(step.dropout))
        model.layers = nn.Sequential(*layers)
    if tweak not in ("plain", "allocator"):
        model = model.to(memory_format=torch.channels_last)
    if tweak == "torch.compile":
        model = torch.compile(model)
    splits = load_splits(data_root)
    opt, sched = make_optimizer(model, config, EPOCH_BATCHES)
    augment = None if tweak == NO_AUGMENT else dict(config.augment, fill=splits.background)
    it = iterate_batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True,
                         generator=torch.Generator().manual_seed(0), augment=augment)
    train_one_epoch(model, (next(it) for _ in range(5)), opt, sched, progress=False)
    n = batches * 128 // config.batch_size
    start = time.perf_counter()
    train_one_epoch(model, (next(it) for _ in range(n)), opt, sched, progress=False)
    train_ips = n * config.batch_size / (time.perf_counter() - start)
    evals = {}
    for bs in (500, 2000, 10000):
        start = time.perf_counter()
        evaluate(model, splits.val_x, splits.val_y, bs)
        evals[bs] = time.perf_counter() - start
    return {"train_images_per_s": train_ips, "val_seconds_by_batch": evals, "peak_rss_mb": _peak_rss_mb()}


def worker_full(kind: str, data_root=None) -> dict:
    """A whole training: the final recipe (tensor pipeline) or the baseline recipe (DataLoader, no augmentation)."""
    from utils.data import load_splits, load_test_set, make_dataloaders
    from utils.engine import (evaluate, evaluate_batches, fit, make_optimizer, seed_everything,
                              train_one_epoch)
    from utils.models import BASELINE, FINAL, STEPS, build_model

    start = time.perf_counter()
    if kind == "final":
        splits = load_splits(data_root)
        model = build_model(FINAL, seed=1)
        history = fit(model, splits, STEPS[FINAL].config, seed=1, progress=False, log=None)
        val_acc = history["best_val_acc"]
        seconds = time.perf_counter() - start
        test_x, test_y = load_test_set(splits.mean, splits.std, data_root)
        test_acc = evaluate(model, test_x, test_y)[1]
        epochs = STEPS[FINAL].config.epochs
    else:
        config = STEPS[BASELINE].config
        seed_everything(1)
        model = build_model(BASELINE, seed=1)
        train, val = make_dataloaders(data_root, config.batch_size, seed=1)
        opt, sched = make_optimizer(model, config, len(train))
        for _ in range(config.epochs):
            train_one_epoch(model, train, opt, sched, progress=False)
            val_acc = evaluate_batches(model, val)[1]
        seconds = time.perf_counter() - start
        test_acc, epochs = None, config.epochs
    return {"model": FINAL if kind == "final" else BASELINE, "seconds": seconds, "epochs": epochs,
            "val_acc": val_acc, "test_acc": test_acc, "peak_rss_mb": _peak_rss_mb()}


WORKERS = {"pipeline": worker_pipeline, "augment": worker_augment, "tweak": worker_tweak, "full": worker_full}


def run_worker(name: str, **kwargs) -> dict:
    """Run one worker in a fresh Python process and return its result."""
    cmd = [sys.executable, "-m", "benchmarks.train_speed", "--worker", json.dumps({"name": name, **kwargs})]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker {name} {kwargs} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- modes

PIPELINES = ("dataloader", "dataloader-2w", "tensor")
ENGINES = ("fit", "defaults")


def mode_pipeline(rounds: int, batches: int, data_root) -> dict:
    """(a) DataLoader + per-sample PIL transforms vs (b) whole tensors + batched augmentation, alternating.

    Measured twice: with the model prepared as `fit` prepares it, and with torch's defaults. The
    headline ratio compares (b) with the faster of the two (a) variants, as `fit` runs them.
    """
    runs = {e: {k: [] for k in PIPELINES} for e in ENGINES}
    for r in range(rounds):
        for engine in ENGINES:
            for kind in PIPELINES:
                res = run_worker("pipeline", kind=kind, batches=batches, engine=engine, data_root=data_root)
                runs[engine][kind].append(res)
                print(f"round {r + 1}/{rounds} engine {engine:8s} {kind:13s} "
                      f"{res['seconds_per_batch'] * EPOCH_BATCHES:6.1f} s/epoch", flush=True)
    summary: dict = {"engines": {}}
    for engine, by_kind in runs.items():
        e: dict = {}
        for kind, rs in by_kind.items():
            spe = statistics.median(x["seconds_per_batch"] for x in rs) * EPOCH_BATCHES
            e[kind] = {"seconds_per_epoch_median": spe, "images_per_s": 50_000 / spe,
                       "peak_rss_mb": max(x["peak_rss_mb"] for x in rs),
                       "seconds_per_epoch_all": [x["seconds_per_batch"] * EPOCH_BATCHES for x in rs]}
        best_a = min((k for k in PIPELINES if k != "tensor"), key=lambda k: e[k]["seconds_per_epoch_median"])
        e["best_dataloader"] = best_a
        e["ratio"] = e[best_a]["seconds_per_epoch_median"] / e["tensor"]["seconds_per_epoch_median"]
        summary["engines"][engine] = e
    summary["ratio"] = summary["engines"]["fit"]["ratio"]
    summary["augment"] = run_worker("augment", data_root=data_root)
    summary["setup"] = {"model": "1_skeleton", "batch_size": 128, "augment": _augment(), "batches": batches,
                        "rounds": rounds}
    return summary


NO_AUGMENT = "no augmentation (what any cheaper augmentation could save at most)"
TWEAKS = ["plain", "allocator", "channels-last", "1 thread", "batch 256", "torch.compile", NO_AUGMENT,
          "per-pixel dropout before the pool too"]


def mode_tweaks(rounds: int, batches: int, data_root) -> dict:
    """Each setting tried on the final model, one subprocess each, all settings in turn per round; medians.

    Cumulative from 'plain' to 'channels-last'; later rows add one setting to 'channels-last'.
    """
    runs: dict = {t: [] for t in TWEAKS}
    for r in range(rounds):
        for t in TWEAKS:
            runs[t].append(run_worker("tweak", tweak=t, batches=batches, data_root=data_root))
            print(f"round {r + 1}/{rounds} {t[:40]:40s} {runs[t][-1]['train_images_per_s']:6.0f} images/s", flush=True)
    return {t: {"train_images_per_s": statistics.median(x["train_images_per_s"] for x in rs),
                "train_images_per_s_all": [x["train_images_per_s"] for x in rs],
                "val_seconds_by_batch": {bs: statistics.median(x["val_seconds_by_batch"][bs] for x in rs)
                                         for bs in rs[0]["val_seconds_by_batch"]},
                "peak_rss_mb": max(x["peak_rss_mb"] for x in rs), "rounds": rounds}
            for t, rs in runs.items()}


def mode_full(data_root) -> dict:
    """Full trainings, baseline recipe first, then the final recipe."""
    res = {}
    for kind in ("baseline", "final"):
        res[kind] = run_worker("full", kind=kind, data_root=data_root)
        print(f"{kind}: {res[kind]['seconds']:.0f} s, val acc {res[kind]['val_acc']:.4f}", flush=True)
    res["ratio"] = res["final"]["seconds"] / res["baseline"]["seconds"]
    return res


MODES = ["pipeline", "tweaks", "full"]
DEFAULT_MODES = ["pipeline", "tweaks"]


def command(results: dict) -> str:
    """The command line that measures every mode these results hold."""
    modes = [m for m in MODES if m in results]
    return "python -m benchmarks.train_speed" + ("" if modes == DEFAULT_MODES else " --mode " + " ".join(modes))


def markdown(results: dict) -> str:
    """The README's table of what was measured."""
    lines = []
    env = results.get("environment", {})
    p = results.get("pipeline")
    if p:
        lines += [
            f"Measured by `{command(results)}` on {env.get('machine', '?')} "
            f"({env.get('cpu_count', '?')} CPU threads, torch {env.get('torch', '?')}, no GPU). "
            f"Same model (`1_skeleton`, Adam), same augmentation (±{p['setup']['augment']['degrees']:g}°, "
            f"±{100 * p['setup']['augment']['translate']:g} % shift), batch 128, "
            f"median of {p['setup']['rounds']} alternating rounds of {p['setup']['batches']} batches, "
            "each in a fresh process; the model prepared as `fit` prepares it (glibc allocator tuned, "
            "channels-last) or left at torch's defaults:",
            "",
            "| Pipeline | engine | s / epoch | images / s | peak memory |",
            "|---|---|---|---|---|",
        ]
        labels = {"dataloader": "(a) `DataLoader` + torchvision per-sample transforms",
                  "dataloader-2w": "(a) the same, 2 loader worker processes",
                  "tensor": "(b) whole split as one tensor + batched `affine_grid` augmentation"}
        for engine, e in p["engines"].items():
            for kind, label in labels.items():
                s = e[kind]
                lines.append(f"| {label} | {engine} | {s['seconds_per_epoch_median']:.1f} | "
                             f"{s['images_per_s']:.0f} | {s['peak_rss_mb']:.0f} MB |")
        ratios = ", ".join(f"{engine}: {e['ratio']:.2f}x" for engine, e in p["engines"].items())
        lines += ["", f"**(b) is {p['ratio']:.2f}x faster than the faster (a)** as `fit` runs them "
                  f"(goal: >= 3x; by engine: {ratios})."]
        aug = p.get("augment")
        if aug:
            ms, spe = aug["ms_per_batch"], aug["seconds_per_epoch"]
            lines += ["", f"Augmenting one batch of 128 in (b) (median of {aug['repeats']}, alternating): "
                      f"{ms['torch']:.2f} ms with torch's `F.affine_grid`, {ms['utils']:.2f} ms with "
                      f"`utils.augment.affine_grid` (the same grid up to rounding, no batched matmul), which (b) and `fit` use: "
                      f"{spe['torch'] - spe['utils']:.2f} s saved per epoch."]
    f = results.get("full")
    if f:
        b, fi = f["baseline"], f["final"]
        lines += [
            "",
            "Full trainings, same process order every time (baseline first):",
            "",
            "| Recipe | epochs | seconds | val acc | peak memory |",
            "|---|---|---|---|---|",
            f"| baseline: `1_skeleton`, Adam, `DataLoader`, no augmentation | {b['epochs']} | {b['seconds']:.0f} | "
            f"{100 * b['val_acc']:.2f} % | {b['peak_rss_mb']:.0f} MB |",
            f"| final: `{fi['model']}`, SGD + OneCycle, tensors, augmentation | {fi['epochs']} | {fi['seconds']:.0f} | "
            f"{100 * fi['val_acc']:.2f} % (test {100 * fi['test_acc']:.2f} %) | {fi['peak_rss_mb']:.0f} MB |",
            "",
            f"**The final recipe takes {f['ratio']:.2f} of the baseline's time** (goal: <= 0.33).",
        ]
        if p:
            budget = b["seconds"] / 3
            skeleton = p["engines"]["fit"]["tensor"]["seconds_per_epoch_median"]
            lines += ["", f"Meeting that goal would leave the final recipe {budget:.0f} s for {fi['epochs']} epochs, "
                      f"{budget / fi['epochs']:.1f} s per epoch with its validation pass: "
                      f"{budget / fi['epochs'] / skeleton:.2f}x what the much smaller skeleton needs for one training "
                      f"epoch on pipeline (b) ({skeleton:.1f} s, above), while the final model is larger "
                      "and adds BatchNorm and Dropout."]
    t = results.get("tweaks")
    if t:
        base = t["plain"]["train_images_per_s"]
        lines += ["", "What was tried on the final model (training images / s on the tensor pipeline, "
                  f"median of {t['plain']['rounds']} rounds, one fresh process each; "
                  "'allocator' and later rows include the allocator setting, "
                  "rows after 'channels-last' include channels-last):", "",
                  "| Setting | train images / s | vs plain | val pass (10k) at eval batch 500 / 2000 / 10000 |",
                  "|---|---|---|---|"]
        for name, r in t.items():
            ev = r["val_seconds_by_batch"]
            evs = " / ".join(f"{ev[k]:.2f} s" for k in ("500", "2000", "10000"))
            lines.append(f"| {name} | {r['train_images_per_s']:.0f} | {r['train_images_per_s'] / base:.2f}x | {evs} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the chosen modes and merge their results into the JSON file."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.train_speed", description=__doc__.split("\n")[0],
        epilog="It merges what it measures into --out (default benchmarks/results.json, tracked by git: the README's "
               "speed section comes from it through python -m utils.report). The default modes take about 15 minutes "
               "on a 2-core CPU; all three about half an hour.")
    ap.add_argument("--mode", nargs="+", default=DEFAULT_MODES, choices=MODES,
                    help="pipeline: DataLoader against whole tensors; tweaks: engine settings on the final model; "
                         "full: two whole trainings (default: pipeline tweaks)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per measurement, medians reported (default 5)")
    ap.add_argument("--batches", type=int, default=100, help="timed batches per measurement (default 100)")
    ap.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $MNIST_ROOT, else data/)")
    ap.add_argument("--out", default=str(OUT), help="the results file to merge into (default: benchmarks/results.json)")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: rewrite the stored table from the stored measurements, and print it")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec.pop("name")](**spec)))
        return 0
    if args.rounds < 1 or args.batches < 1:
        ap.error(f"--rounds and --batches must be at least 1, got {args.rounds} and {args.batches}")
    out = Path(args.out).expanduser()
    if not args.out.strip() or out.is_dir():
        ap.error(f"--out must name a JSON file, got {args.out!r}")
    results = json.loads(out.read_text()) if out.is_file() else {}
    if args.render_only:
        if not any(m in results for m in MODES):
            ap.error(f"{out} holds no measurements to render; run the benchmark without --render-only first")
    else:
        results["environment"] = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                                  "cpu_count": torch.get_num_threads(), "torch": torch.__version__,
                                  "python": platform.python_version()}
        if "pipeline" in args.mode:
            results["pipeline"] = mode_pipeline(args.rounds, args.batches, args.data_root)
        if "tweaks" in args.mode:
            results["tweaks"] = mode_tweaks(args.rounds, args.batches, args.data_root)
        if "full" in args.mode:
            results["full"] = mode_full(args.data_root)
    results["markdown"] = markdown(results)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(results["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
