"""Training and evaluation loops, seeding, device choice and checkpoints."""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .config import TrainConfig
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
    x: Tensor,
    y: Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler,
    config: TrainConfig,
    generator: torch.Generator,
    fill: float = 0.0,
    progress: bool = True,
    desc: str = "train",
) -> tuple[float, float]:
    """One pass over (x, y) in shuffled, augmented batches; returns (mean loss, accuracy)."""
    model.train()
    augment = dict(config.augment, fill=fill) if config.augment else None
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    batches = iterate_batches(x, y, config.batch_size, shuffle=True, generator=generator, augment=augment)
    for xb, yb in tqdm(batches, total=num_batches(len(x), config.batch_size), desc=desc,
                       leave=False, disable=not progress):
        log_probs = model(xb)
        loss = F.cross_entropy(log_probs, yb, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        # Accumulate on the device: no host sync per batch.
        total_loss += loss.detach() * len(yb)
        correct += (log_probs.argmax(1) == yb).sum()
    return total_loss.item() / len(x), correct.item() / len(x)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    """Log-probabilities (N x 10) of the model in eval mode."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2000) -> tuple[float, float]:
    """(mean loss, accuracy) of the model in eval mode."""
    log_probs = predict(model, x, batch_size)
    return F.nll_loss(log_probs, y).item(), (log_probs.argmax(1) == y).float().mean().item()


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
    # channels-last memory layout: ~12 % faster convolutions on the CPU, no slower on a GPU.
    model.to(device, memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed(seed)
    steps = num_batches(len(splits.train_x), config.batch_size)
    optimizer, scheduler = make_optimizer(model, config, steps)
    history: dict = {k: [] for k in HISTORY_COLUMNS}
    best_key, best_state = None, None
    for epoch in range(1, config.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        train_loss, train_acc = train_one_epoch(
            model, splits.train_x, splits.train_y, optimizer, scheduler, config, generator,
            fill=splits.background, progress=progress, desc=f"epoch {epoch}/{config.epochs}")
        val_loss, val_acc = evaluate(model, splits.val_x, splits.val_y, config.eval_batch_size)
        seconds = time.perf_counter() - start
        for k, v in zip(HISTORY_COLUMNS, (epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds)):
            history[k].append(v)
        key = (val_acc, -val_loss)
        if best_key is None or key > best_key:
            best_key = key
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module, device: str | torch.device = "cpu") -> dict:
    """Load weights saved by `save_checkpoint` into `model`; returns the checkpoint's other fields."""
    path = Path(path)
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
