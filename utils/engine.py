"""Training and evaluation loops, seeding, device choice and checkpoints."""

from __future__ import annotations

import copy
import ctypes
import io
import os
import random
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .config import TrainConfig
from .augment import shift_images
from .data import MNISTSplits, iterate_batches, num_batches

CHECKPOINT_FORMAT = "mnist-under-20k/1"
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable or belongs to another architecture."""


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy (if present) and torch on every device; make cuDNN deterministic."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def tune_cpu_allocator() -> bool:
    """Let glibc keep freed memory instead of returning it to the OS after every batch.

    Training allocates and frees the same few-MB activation buffers on every batch; with glibc's
    defaults each one is a fresh mmap + page faults + munmap, which cost a third of the time on a
    2-core CPU. Raising the mmap and trim thresholds (as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_
    would) removes that. Returns False where it does not apply (not Linux/glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, 1 << 30) or libc.mallopt(m_mmap_threshold, 32 << 20)
    return bool(ok and libc.mallopt(m_trim_threshold, 1 << 30))


def prepare_for_training(model: nn.Module, device: str | torch.device) -> nn.Module:
    """Move the model to `device` in channels-last layout and, on a CPU, tune the allocator: what `fit` does."""
    device = torch.device(device)
    if device.type == "cpu":
        tune_cpu_allocator()
    # channels-last memory layout: a little faster on the CPU (see benchmarks/results.json), fine on a GPU.
    return model.to(device, memory_format=torch.channels_last)


class WeightEMA:
    """An exponential moving average of a model's weights and BatchNorm statistics; `.module` is a plain model.

    After the first update copies the model, every update moves each average a fraction (1 - decay)
    of the way towards the live value: the same numbers as torch's `AveragedModel` with
    `get_ema_multi_avg_fn(decay)` and `use_buffers=True`, without its host sync on every step.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"the EMA decay must be between 0 and 1 (e.g. 0.999), got {decay}")
        self.module = copy.deepcopy(model)
        self.decay = decay
        self.updates = 0
        self._avg = list(self.module.state_dict().values())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights and statistics into the average."""
        live = list(model.state_dict().values())
        if self.updates == 0:
            for a, v in zip(self._avg, live):
                a.copy_(v)
        else:
            floats = [(a, v) for a, v in zip(self._avg, live) if a.is_floating_point()]
            torch._foreach_lerp_([a for a, _ in floats], [v for _, v in floats], 1 - self.decay)
            for a, v in zip(self._avg, live):
                if not a.is_floating_point():  # BatchNorm's batch counter: a count, not averaged
                    a.copy_(v)
        self.updates += 1


def pick_device(preferred: Optional[str] = None) -> torch.device:
    """`preferred` if given, else CUDA, else Apple's MPS, else the CPU."""
    if preferred and preferred != "auto":
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_optimizer(model: nn.Module, config: TrainConfig, steps_per_epoch: int):
    """The optimizer and per-batch learning-rate scheduler that `config` names."""
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                              nesterov=True, weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; use 'sgd' or 'adam'")
    if config.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch)
    elif config.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, config.step_size * steps_per_epoch, config.gamma)
    elif config.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"unknown schedule {config.schedule!r}; use 'onecycle', 'step' or 'constant'")
    return opt, sched


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    label_smoothing: float = 0.0,
    progress: bool = True,
    desc: str = "train",
    total: Optional[int] = None,
    ema: Optional["WeightEMA"] = None,
) -> tuple[float, float]:
    """One pass over the batches (any iterable of (images, labels): tensors or a DataLoader); (mean loss, acc).

    `ema` (a `WeightEMA`) is updated after every optimizer step.
    """
    model.train()
    total_loss, correct, n = 0.0, 0, 0
    for xb, yb in tqdm(batches, total=total, desc=desc, leave=False, disable=not progress):
        log_probs = model(xb)
        loss = F.cross_entropy(log_probs, yb, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update(model)
        # Accumulate on the device: no host sync per batch.
        total_loss = total_loss + loss.detach() * len(yb)
        correct = correct + (log_probs.argmax(1) == yb).sum()
        n += len(yb)
    return float(total_loss) / n, int(correct) / n


TTA_SHIFTS = {
    "none": ((0, 0),),
    "cross1": ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)),
    "square1": tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)),
}
"""Test-time augmentation: the whole-pixel shifts whose predicted probabilities are averaged."""


def tta_log_probs(model: nn.Module, x: Tensor, shifts=TTA_SHIFTS["none"], fill: float = 0.0) -> Tensor:
    """Log of the mean predicted probabilities over copies of x shifted by `shifts` (one copy: the model's output)."""
    if len(shifts) == 1 and tuple(shifts[0]) == (0, 0):
        return model(x)
    probs = sum(model(shift_images(x, dx, dy, fill)).exp() for dx, dy in shifts)
    return (probs / len(shifts)).log()


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    """Log-probabilities (N x 10) of the model in eval mode."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate_batches(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], shifts=TTA_SHIFTS["none"], fill: float = 0.0
) -> tuple[float, float]:
    """(mean loss, accuracy) of the model in eval mode over any iterable of (images, labels), optionally with TTA."""
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    for xb, yb in batches:
        log_probs = tta_log_probs(model, xb, shifts, fill)
        # Summed on the device (no host sync per batch), in float64 as a Python float would be: same numbers.
        total_loss = total_loss + F.nll_loss(log_probs, yb, reduction="sum").double()
        correct = correct + (log_probs.argmax(1) == yb).sum()
        n += len(yb)
    return float(total_loss) / n, int(correct) / n


def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2000, shifts=TTA_SHIFTS["none"], fill: float = 0.0
) -> tuple[float, float]:
    """(mean loss, accuracy) of the model in eval mode on whole tensors (`shifts`: test-time augmentation)."""
    return evaluate_batches(model, iterate_batches(x, y, batch_size), shifts, fill)


def fit(
    model: nn.Module,
    splits: MNISTSplits,
    config: TrainConfig,
    seed: int = 1,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    model_name: str = "",
    log: Optional[Callable[[str], None]] = print,
) -> dict:
    """Train for `config.epochs`, keep the weights best on validation, and return the per-epoch history.

    `seed` fixes the batch order, the augmentation and dropout; the initial weights are the
    model's own (build it with `build_model(name, seed=...)` for a fully reproducible run).
    The model ends holding the best-on-validation weights (highest accuracy, then lowest loss);
    they are also written to `checkpoint_path` when one is given. The test set is not touched.
    """
    device = splits.train_x.device
    seed_everything(seed)
    prepare_for_training(model, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    steps = num_batches(len(splits.train_x), config.batch_size)
    optimizer, scheduler = make_optimizer(model, config, steps)
    augment = dict(config.augment, fill=splits.background) if config.augment else None
    # With `config.ema`, an exponential moving average of the weights and BatchNorm statistics follows
    # training; it is the model that is validated and kept (the live weights' accuracy is logged too).
    ema = WeightEMA(model, config.ema) if config.ema else None
    history: dict = {k: [] for k in HISTORY_COLUMNS}
    if ema is not None:
        history["live_val_acc"] = []
    best_key, best_state = None, None
    for epoch in range(1, config.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        batches = iterate_batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True,
                                  generator=generator, augment=augment)
        train_loss, train_acc = train_one_epoch(
            model, batches, optimizer, scheduler, config.label_smoothing, progress=progress,
            desc=f"epoch {epoch}/{config.epochs}", total=steps, ema=ema)
        kept = model if ema is None else ema.module
        val_loss, val_acc = evaluate(kept, splits.val_x, splits.val_y, config.eval_batch_size)
        if ema is not None:
            history["live_val_acc"].append(evaluate(model, splits.val_x, splits.val_y, config.eval_batch_size)[1])
        seconds = time.perf_counter() - start
        for k, v in zip(HISTORY_COLUMNS, (epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds)):
            history[k].append(v)
        key = (val_acc, -val_loss)
        if best_key is None or key > best_key:
            best_key = key
            best_state = {k: v.detach().clone() for k, v in kept.state_dict().items()}
            history["best_epoch"] = epoch
        if log:
            log(f"epoch {epoch:2d}/{config.epochs}  lr {lr:.4f}  train loss {train_loss:.4f} acc {train_acc:.4f}"
                f"  val loss {val_loss:.4f} acc {val_acc:.4f}  {seconds:.1f}s")
    model.load_state_dict(best_state)
    history["best_val_acc"] = history["val_acc"][history["best_epoch"] - 1]
    history["best_train_acc"] = max(history["train_acc"])
    if checkpoint_path is not None:
        save_checkpoint(model, checkpoint_path, model_name, splits.mean, splits.std,
                        {"best_epoch": history["best_epoch"], "best_val_acc": history["best_val_acc"]})
    return history


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, model_name: str, mean: float, std: float, info: Optional[dict] = None
) -> Path:
    """Write the weights with what is needed to use them, atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "mean": mean,
        "std": std,
        "info": info or {},
    }
    buffer = io.BytesIO()  # saved in memory first: the archive's inner names do not depend on the file's name
    torch.save(payload, buffer)
    write_atomically(path, buffer.getvalue())
    return path


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a partial one (mode 0644 under the usual umask)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _read_checkpoint(path: Path, device: str | torch.device) -> dict:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one first (python -m utils.train) or fix the path")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(err).__name__}); the file is corrupt or truncated: "
            f"delete it and train again (python -m utils.train)") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} was not written by utils.engine.save_checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def load_checkpoint(path: str | os.PathLike, model: nn.Module, device: str | torch.device = "cpu") -> dict:
    """Load weights saved by `save_checkpoint` into `model`; returns the checkpoint's other fields."""
    path = Path(path)
    payload = _read_checkpoint(path, device)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:3]
        raise CheckpointError(
            f"{path} holds weights of model {payload.get('model_name')!r}, which do not fit the "
            f"{type(model).__name__} given ({'; '.join(s.strip() for s in first)}). Build the model "
            f"named in the checkpoint: utils.models.build_model({payload.get('model_name')!r})") from None
    model.to(device)
    return {k: v for k, v in payload.items() if k != "state_dict"}


def load_trained_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model named in a checkpoint, built and loaded with its weights, and the checkpoint's other fields."""
    from .models import STEPS, build_model

    name = _read_checkpoint(Path(path), "cpu").get("model_name")
    if name not in STEPS:
        raise CheckpointError(f"{path} names model {name!r}, which utils.models does not define")
    model = build_model(name)
    return model, load_checkpoint(path, model, device)
