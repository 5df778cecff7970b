"""Training and evaluation loops, seeding, device choice and checkpoints."""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import io
import json
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .config import TrainConfig
from .augment import shift_images
from .data import N_TRAIN, MNISTSplits, iterate_batches, num_batches

CHECKPOINT_FORMAT = "mnist-under-20k/1"
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable or belongs to another architecture."""


class RunFilesError(RuntimeError):
    """A run's metrics file and checkpoint are missing, unreadable or do not belong together."""


class OutputFolderError(RuntimeError):
    """The folder for a run's files cannot be written to."""


class DeviceError(ValueError):
    """The device asked for is unknown or not available on this machine."""


class UnknownDeviceError(DeviceError):
    """A device name torch does not know (a misspelt value, rather than a device this machine lacks)."""


class InputError(ValueError):
    """Images or labels handed to `predict` / `evaluate` are not what the models take."""


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


def _tf32_switches() -> list[tuple[object, str, object]]:
    """(object, attribute, value that forbids TF32) for each of torch's TF32 settings, convolutions first.

    torch >= 2.9: the per-backend `fp32_precision` only (it raises if the old flags are read after these are set);
    before: the old `allow_tf32` flags.
    """
    if hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"):
        return [(b, "fp32_precision", "ieee") for b in (torch.backends.cudnn.conv, torch.backends.cudnn.rnn,
                                                       torch.backends.cuda.matmul)]
    return [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]


@contextlib.contextmanager
def tf32_disabled() -> Iterator[None]:
    """Inside, cuDNN's convolutions and CUDA's matmuls compute in full float32 (no TF32); the settings before come back after."""
    switches = _tf32_switches()
    before = [getattr(obj, name) for obj, name, _ in switches]
    for obj, name, off in switches:
        setattr(obj, name, off)
    try:
        yield
    finally:
        for (obj, name, _), value in zip(switches, before):
            setattr(obj, name, value)


def tf32_convolutions(device: str | torch.device | None = None) -> bool:
    """Whether cuDNN's float32 convolutions use TF32: allowed (torch's default; `tf32_disabled` forbids it) and, if a
    CUDA device is given, one that has TF32 (compute capability 8.0 and up: Ampere and later; a T4 is 7.5)."""
    obj, name, _ = _tf32_switches()[0]
    allowed = getattr(obj, name) in (True, "tf32")
    if device is not None and torch.device(device).type == "cuda":
        return allowed and torch.cuda.get_device_capability(device) >= (8, 0)
    return allowed


TF32_DROPPED_BITS = 13
"""float32 keeps 23 bits of mantissa, TF32 10: a TF32 convolution reads its inputs and weights without the last 13."""


def round_to_tf32(x: Tensor) -> Tensor:
    """`x` (float32) rounded to the nearest number with TF32's 10-bit mantissa (ties away from zero); NaN stays NaN.

    An emulation: NVIDIA does not document how its kernels convert float32 to TF32 (rounding, as here, errs by at most
    half a step, 2^-11 relative; dropping the bits would err by up to 2^-10).
    """
    if x.dtype != torch.float32:
        raise InputError(f"round_to_tf32 takes float32 tensors (TF32 replaces float32), got {x.dtype}")
    bits = x.detach().contiguous().view(torch.int32)
    half, dropped = 1 << (TF32_DROPPED_BITS - 1), (1 << TF32_DROPPED_BITS) - 1
    rounded = ((bits + half) & ~dropped).view(torch.float32)  # a carry out of the mantissa steps the exponent, as it should
    return torch.where(torch.isnan(x), x.detach(), rounded)


def with_tf32_convolutions(model: nn.Module) -> nn.Module:
    """A copy of `model` (float32) for inference whose every convolution reads TF32-rounded weights and inputs: at most what
    a GPU with TF32 on rounds (its depthwise convolutions may run in full float32), on any device. The model is left as it is."""
    model = copy.deepcopy(model)
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        conv.weight.data = round_to_tf32(conv.weight.data)  # once: the copy is not for training
        conv.register_forward_pre_hook(lambda module, args: (round_to_tf32(args[0]),) + tuple(args[1:]))
    return model


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


BN_IMAGES = 10_000
"""How many training images (the split's first ones, not augmented) measure recomputed BatchNorm statistics."""


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, x: Tensor, batch_size: int = 2000) -> nn.Module:
    """Set every BatchNorm's running mean and variance to their averages over the batches of x; returns the model.

    Averaged weights (an EMA, SWA) need this: the statistics that training left belong to other weights.
    Only the statistics change; dropout stays off, so no random numbers are drawn (torch's `swa_utils.update_bn`
    runs the whole model in train mode, where dropout would draw them). The model ends in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches, not a moving one
        m.train()
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
    return model


DISTILL_RAMP_EPOCHS = 5
"""Self-distillation's weight grows linearly from 0 (epoch 1, no teacher yet) to its full value at epoch 6."""


def distill_weight(config: TrainConfig, epoch: int) -> float:
    """The weight of the teacher's predictions in epoch `epoch`'s loss (`config.distill`, ramped up)."""
    return config.distill * min(1.0, (epoch - 1) / DISTILL_RAMP_EPOCHS)


def check_config(config: TrainConfig) -> None:
    """Raise a ValueError that says what to change if the settings cannot work together."""
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got epochs={config.epochs}, "
                         f"batch_size={config.batch_size}")
    if not 0 <= config.distill < 1:
        raise ValueError(f"distill is the teacher's share of the loss: use a value in [0, 1), got {config.distill}")
    if not 0 <= config.swa_start <= config.epochs:
        raise ValueError(f"swa_start must be an epoch between 1 and epochs={config.epochs} (0: off), "
                         f"got {config.swa_start}")
    if not 0 <= config.clean_epochs <= config.epochs:
        raise ValueError(f"clean_epochs counts the last epochs trained without augmentation: use 0 to "
                         f"epochs={config.epochs}, got {config.clean_epochs}")


def pick_device(
    preferred: Optional[str | torch.device] = None, *, left_out: str = "to take the best one available"
) -> torch.device:
    """`preferred` if given, else CUDA, else MPS, else the CPU; a bad `preferred` raises a `DeviceError` ending in `left_out`."""
    if not preferred or preferred == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preferred)
    except (RuntimeError, TypeError):
        raise UnknownDeviceError(f"unknown device {preferred!r}: use cpu, cuda (cuda:N) or mps, or leave the "
                                 f"device out {left_out}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "torch was built without CUDA" if not torch.backends.cuda.is_built() else "no GPU is visible"
            raise DeviceError(f"device {preferred!r} asked for, but CUDA is not available here ({why}): "
                              f"use cpu, or leave the device out {left_out}")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {preferred!r} asked for, but this machine has {count} CUDA device(s): "
                              f"use cuda:0 to cuda:{count - 1}")
        return device
    backend = getattr(torch, device.type, None) or getattr(torch.backends, device.type, None)
    is_available = getattr(backend, "is_available", None)
    if not (callable(is_available) and is_available()):
        raise DeviceError(f"device {preferred!r} is not available on this machine: use cpu, "
                          f"or leave the device out {left_out}")
    return device


def make_optimizer(
    model: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
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
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler] = None,
    label_smoothing: float = 0.0,
    progress: bool = True,
    desc: str = "train",
    total: Optional[int] = None,
    ema: Optional["WeightEMA"] = None,
    teacher: Optional[nn.Module] = None,
    distill: float = 0.0,
) -> tuple[float, float]:
    """One pass over the batches (any iterable of (images, labels): tensors or a DataLoader); (mean loss, acc).

    `ema` (a `WeightEMA`) is updated after every optimizer step. With a `teacher` and a `distill` weight w,
    the loss is (1 - w) x cross-entropy with the labels + w x cross-entropy with the teacher's predicted
    probabilities on the same images (the teacher runs in eval mode and is not trained).
    """
    model.train()
    if teacher is not None:
        teacher.eval()
    total_loss, correct, n = 0.0, 0, 0
    for xb, yb in tqdm(batches, total=total, desc=desc, leave=False, disable=not progress):
        log_probs = model(xb)
        loss = F.cross_entropy(log_probs, yb, label_smoothing=label_smoothing)
        if teacher is not None and distill:
            with torch.no_grad():
                soft_targets = teacher(xb).exp()
            loss = (1 - distill) * loss - distill * (soft_targets * log_probs).sum(1).mean()
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


def tta_log_probs(model: nn.Module, x: Tensor, shifts=TTA_SHIFTS["none"], fill: Optional[float] = None) -> Tensor:
    """Log of the mean predicted probabilities over copies of x shifted by `shifts` (one copy: the model's output).

    `fill` is the normalized background that moves in at the edges (`splits.background`); shifts need it.
    """
    if len(shifts) == 1 and tuple(shifts[0]) == (0, 0):
        return model(x)
    probs = sum(model(shift_images(x, dx, dy, fill)).exp() for dx, dy in shifts)
    return (probs / len(shifts)).log()


IMAGE_SHAPE = (1, 28, 28)
"""What the models take: N images of this shape, normalized floats (`utils.data.to_normalized`)."""


def check_images(model: nn.Module, x: Tensor, what: str = "images") -> None:
    """Raise an `InputError` unless x is a non-empty N x 1 x 28 x 28 float batch of the model's dtype (no host sync)."""
    if not isinstance(x, Tensor):
        raise InputError(f"the {what} must be a torch tensor (N x 1 x 28 x 28), got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        hint = ""
        if tuple(x.shape[-2:]) == IMAGE_SHAPE[1:] and x.dim() in (2, 3):
            hint = ": add the missing dimensions, e.g. x.unsqueeze(1) for N x 28 x 28 or x[None, None] for one image"
        raise InputError(f"the {what} must be an N x 1 x 28 x 28 batch, got shape {tuple(x.shape)}{hint}")
    if len(x) == 0:
        raise InputError(f"no {what}: the batch is empty (0 x 1 x 28 x 28)")
    if not x.is_floating_point():
        raise InputError(f"the {what} are {x.dtype}, not normalized floats: convert raw MNIST pixels with "
                         f"utils.data.to_normalized(images, mean, std) (the checkpoint holds mean and std)")
    weight = next(model.parameters(), None)
    if weight is not None and weight.dtype != x.dtype:
        raise InputError(f"the {what} are {x.dtype} but the model's weights are {weight.dtype}: "
                         f"convert them, e.g. x.to({weight.dtype})")
    if weight is not None and weight.device != x.device:
        raise InputError(f"the {what} are on {x.device} but the model is on {weight.device}: move them, "
                         f"e.g. x.to('{weight.device}')")


def check_labels(x: Tensor, y: Tensor) -> None:
    """Raise an `InputError` unless y is a vector of integer class labels, one per image of x (no host sync)."""
    if not isinstance(y, Tensor):
        raise InputError(f"the labels must be a torch tensor of class indices, got {type(y).__name__}")
    if y.dim() != 1 or len(y) != len(x) or y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"the labels must be a vector of {len(x)} integer class indices (one per image), "
                         f"got {y.dtype} of shape {tuple(y.shape)}")


def _non_finite_message(what: str) -> str:
    return (f"the {what} hold NaN or infinite values: check how they were made (e.g. a normalization "
            f"with a std of 0); no accuracy is computed from them")


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    """Log-probabilities (N x 10) of the model in eval mode; refuses a batch that is not N x 1 x 28 x 28 finite floats."""
    check_images(model, x)
    if not bool(torch.isfinite(x).all()):
        raise InputError(_non_finite_message("images"))
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate_batches(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], shifts=TTA_SHIFTS["none"],
    fill: Optional[float] = None,
) -> tuple[float, float]:
    """(mean loss, accuracy) of the model in eval mode over any iterable of (images, labels), optionally with TTA.

    Every batch must be N x 1 x 28 x 28 finite floats with N integer labels (`InputError` otherwise);
    finiteness is checked on the device and read once, after the last batch.
    """
    model.eval()
    total_loss, correct, n, finite = 0.0, 0, 0, None
    for xb, yb in batches:
        check_images(model, xb)
        check_labels(xb, yb)
        batch_finite = torch.isfinite(xb).all()
        finite = batch_finite if finite is None else finite & batch_finite
        log_probs = tta_log_probs(model, xb, shifts, fill)
        # Summed on the device (no host sync per batch), in float64 as a Python float would be: same numbers.
        total_loss = total_loss + F.nll_loss(log_probs, yb, reduction="sum").double()
        correct = correct + (log_probs.argmax(1) == yb).sum()
        n += len(yb)
    if n == 0:
        raise InputError("nothing to evaluate: no batches were given")
    if not bool(finite):  # the one wait for the device, after the last batch (the sums are ready then too)
        raise InputError(_non_finite_message("images"))
    return float(total_loss) / n, int(correct) / n


def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2000, shifts=TTA_SHIFTS["none"],
    fill: Optional[float] = None,
) -> tuple[float, float]:
    """(mean loss, accuracy) of the model in eval mode on whole tensors (`shifts`: test-time augmentation)."""
    check_images(model, x)
    check_labels(x, y)
    return evaluate_batches(model, iterate_batches(x, y, batch_size), shifts, fill)


def tta_accuracies(model: nn.Module, x: Tensor, y: Tensor, names=tuple(TTA_SHIFTS), fill: Optional[float] = None,
                   batch_size: int = 2000) -> dict[str, float]:
    """Accuracy on (x, y) with each named shift set of `TTA_SHIFTS` ("none": without TTA), e.g. to pick one on val."""
    return {k: evaluate(model, x, y, batch_size, TTA_SHIFTS[k], fill)[1] for k in names}


SHORT_AVERAGE_SHARE = 0.05
"""An EMA that still holds more than this share of its start is too young to judge by its accuracy."""


def short_average_note(config: TrainConfig, steps_per_epoch: int) -> Optional[str]:
    """A warning when a run is too short for its kept EMA weights to leave their nearly random start; else None."""
    if not config.ema or config.swa_start:
        return None
    updates = steps_per_epoch * config.epochs
    start_share = config.ema ** (updates - 1)  # the first update copies the live weights, each later one keeps `ema`
    if start_share <= SHORT_AVERAGE_SHARE:
        return None
    needed = math.ceil(1 + math.log(SHORT_AVERAGE_SHARE) / math.log(config.ema))
    full_epochs = math.ceil(needed / num_batches(N_TRAIN, config.batch_size))
    return (f"note: the kept weights are an exponential moving average (decay {config.ema:g}) of the live ones; "
            f"after this run's {updates} optimizer steps {100 * start_share:.0f} % of it is still the first step's "
            f"nearly random weights, so its validation and test accuracy can stay near chance (10 %). Train longer "
            f"to judge the model: the average forgets its start to {100 * SHORT_AVERAGE_SHARE:.0f} % after "
            f"{needed} steps, {full_epochs} epochs of the whole training split.")


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
    model's own (build it with `build_model(name, seed=...)` for a reproducible run). Reproducible
    means: the same history, number for number, on the same machine with the same torch version, device
    and number of CPU threads; elsewhere the floating-point sums run in another order and the last
    digits move (tests/test_engine.py checks the former).
    The model ends holding the best-on-validation weights (highest accuracy, then lowest loss);
    they are also written to `checkpoint_path` when one is given. The test set is not touched.
    """
    check_config(config)
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
    note = short_average_note(config, steps)
    if log and note:
        log(note)
    # The kept model can also be the average of the live weights since epoch `swa_start` (SWA), and its BatchNorm
    # statistics can be measured afresh on BN_IMAGES training images; with `distill`, the model kept at the end
    # of an epoch teaches the live one through the next. SWA and fresh statistics draw no random numbers, so the live
    # weights follow the same path as without them; distillation changes their loss, and so their path.
    swa, teacher, bn_x = None, None, splits.train_x[:BN_IMAGES]
    history: dict = {k: [] for k in HISTORY_COLUMNS}
    if ema is not None or config.swa_start:
        history["live_val_acc"] = []
    best_key, best_state = None, None
    for epoch in range(1, config.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        # with `clean_epochs`, the last epochs see the images as they are (as validation and test do)
        augmented = epoch <= config.epochs - config.clean_epochs
        batches = iterate_batches(splits.train_x, splits.train_y, config.batch_size, shuffle=True,
                                  generator=generator, augment=augment if augmented else None)
        train_loss, train_acc = train_one_epoch(
            model, batches, optimizer, scheduler, config.label_smoothing, progress=progress,
            desc=f"epoch {epoch}/{config.epochs}", total=steps, ema=ema, teacher=teacher,
            distill=distill_weight(config, epoch))
        if config.swa_start and epoch >= config.swa_start:
            if swa is None:
                swa = torch.optim.swa_utils.AveragedModel(model)  # its first update copies the live weights
            swa.update_parameters(model)
            kept = recompute_batchnorm(swa.module, bn_x, config.eval_batch_size)
        else:
            kept = model if ema is None else ema.module
            if config.bn_recompute:
                kept = recompute_batchnorm(copy.deepcopy(kept), bn_x, config.eval_batch_size)
        # the teacher is the kept weights: a copy of the live model when nothing else keeps one (else
        # train_one_epoch's teacher.eval() would switch the live model itself out of training mode)
        teacher = (copy.deepcopy(kept) if kept is model else kept) if config.distill else None
        val_loss, val_acc = evaluate(kept, splits.val_x, splits.val_y, config.eval_batch_size)
        if "live_val_acc" in history:
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


def checkpoint_bytes(
    model: nn.Module, model_name: str, mean: float, std: float, info: Optional[dict] = None
) -> bytes:
    """The bytes `save_checkpoint` writes: the same weights and fields always give the same bytes."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "mean": mean,
        "std": std,
        "info": info or {},
    }
    buffer = io.BytesIO()  # saved in memory: the archive's inner names do not depend on the file's name
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, model_name: str, mean: float, std: float, info: Optional[dict] = None
) -> Path:
    """Write the weights with what is needed to use them, atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, checkpoint_bytes(model, model_name, mean, std, info))
    return path


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a partial one (mode 0644 under the usual umask)."""
    return write_files_atomically({path: data})[0]


TEMP_SUFFIX = ".tmp"
"""Temp files are `.<name>.<pid>.tmp` beside their target: hidden, never a result's name, ignored by git (`*.tmp`)."""


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files for `path` left by processes that no longer run (killed with SIGKILL mid-write)."""
    if os.name != "posix":  # os.kill(pid, 0) only probes a process on POSIX
        return
    for tmp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        pid = tmp.name[len(path.name) + 2 : -len(TEMP_SUFFIX)]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:  # alive, someone else's
            pass


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside the block (main thread only); they take effect as it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    caught: list[int] = []
    previous = {}
    masked = hasattr(signal, "pthread_sigmask")
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, sigs) if masked else None
    try:
        for sig in sigs:
            handler = signal.getsignal(sig)
            if handler is None:  # installed outside Python: cannot be put back, leave it
                continue
            previous[sig] = handler
            # The mask holds signals sent to this thread; one that reaches one of torch's threads runs its
            # Python handler here, in the main thread, and this one only records it.
            signal.signal(sig, lambda signum, frame: caught.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if masked:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a pending signal is delivered now
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


def write_files_atomically(files: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files (in order) so that an interruption leaves all the old ones or all the new ones.

    Every file is first written in full to a temp file beside it and flushed to disk; only then are the
    temp files renamed over the real names, one after the other, with SIGINT and SIGTERM held back so
    that Ctrl-C or `kill` cannot stop the process between two renames. Temp files are removed whatever
    happens. A power cut or `kill -9` between two renames could still leave the first file new and the
    next one old: put last the file that vouches for the others (a run's JSON holds its checkpoint's
    sha256, so `read_run` notices). New files get mode 0666 less the umask (0644 under the usual 022).
    """
    items = [(Path(path), data) for path, data in files.items()]
    temps: list[Path] = []
    try:
        for path, data in items:
            _remove_stale_temps(path)
            tmp = _temp_path(path)
            temps.append(tmp)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        with _signals_held():
            for (path, _), tmp in zip(items, temps):
                os.replace(tmp, path)
        for folder in dict.fromkeys(path.parent for path, _ in items):
            _fsync_folder(folder)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return [path for path, _ in items]


def _fsync_folder(folder: Path) -> None:
    """Make renames in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create `folder` if needed and prove it writable with a probe file (removed), or raise `OutputFolderError`."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"the {what} {folder} is a file, not a folder: choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputFolderError(f"cannot create the {what} {folder} ({err.strerror or err}): "
                                f"choose a path in a folder you can write to") from None
    probe = folder / f".write-probe.{os.getpid()}{TEMP_SUFFIX}"
    try:
        with open(probe, "wb") as f:
            f.write(b"probe")
    except OSError as err:
        raise OutputFolderError(f"cannot write to the {what} {folder} ({err.strerror or err}): "
                                f"choose another folder, or make this one writable") from None
    finally:
        probe.unlink(missing_ok=True)
    return folder


def save_run(stem: str | os.PathLike, checkpoint: bytes, metrics: dict) -> dict:
    """Write a run's `<stem>.pt` (checkpoint bytes) and `<stem>.json` (metrics + the checkpoint's sha256) as one pair.

    The pair is replaced together (see `write_files_atomically`), the JSON last; `read_run` checks it.
    Returns the metrics as written.
    """
    stem = Path(stem)
    pt, js = stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")
    metrics = dict(metrics, checkpoint=pt.name, checkpoint_sha256=hashlib.sha256(checkpoint).hexdigest())
    write_files_atomically({pt: checkpoint, js: (json.dumps(metrics, indent=1) + "\n").encode()})
    return metrics


def read_run(path: str | os.PathLike) -> dict:
    """A run's metrics (`<stem>.json`), after checking that its checkpoint is there and is the one they describe.

    Raises `RunFilesError` if the JSON is missing or unreadable, or if it names a checkpoint whose
    sha256 differs (the two files come from different runs). Files written before the sha256 was
    recorded are read without that check.
    """
    path = Path(path).expanduser()
    if path.suffix != ".json":
        path = path.with_name(path.name + ".json")
    if not path.is_file():
        raise RunFilesError(f"no run at {path}: train it first (python -m utils.train), or check --out and the seeds")
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise RunFilesError(f"{path} is not valid JSON (a truncated or edited file): delete it and its .pt, "
                            f"and train the run again") from None
    if not isinstance(metrics, dict):
        raise RunFilesError(f"{path} does not hold a run's metrics: delete it, and train the run again")
    digest = metrics.get("checkpoint_sha256")
    if digest is not None:
        pt = path.with_name(metrics.get("checkpoint") or path.stem + ".pt")
        if not pt.is_file():
            raise RunFilesError(f"{path} describes the checkpoint {pt.name}, which is missing: "
                                f"train the run again (its metrics alone cannot be trusted)")
        if hashlib.sha256(pt.read_bytes()).hexdigest() != digest:
            raise RunFilesError(f"{pt} is not the checkpoint that {path.name} describes (sha256 differs): the "
                                f"two files come from different runs (an interrupted write, or a copy); "
                                f"train the run again")
    return metrics


def _read_checkpoint(path: Path, device: str | torch.device) -> tuple[dict, torch.device]:
    """The checkpoint's fields, its tensors on `device`, and that device resolved ("auto" -> cuda, mps or cpu)."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one first (python -m utils.train) or fix the path")
    device = pick_device(str(device))  # a bad device is named as such, not blamed on the file below
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(err).__name__}); the file is corrupt or truncated: "
            f"delete it and train again (python -m utils.train)") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} was not written by utils.engine.save_checkpoint (format {CHECKPOINT_FORMAT}): "
                              f"give a .pt file that python -m utils.train wrote, or train one")
    return payload, device


def _load_weights(model: nn.Module, payload: dict, path: Path, device: torch.device) -> dict:
    """`payload`'s weights into `model`, on `device`, in eval mode; the checkpoint's other fields."""
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:3]
        raise CheckpointError(
            f"{path} holds weights of model {payload.get('model_name')!r}, which do not fit the "
            f"{type(model).__name__} given ({'; '.join(s.strip() for s in first)}). Build the model "
            f"named in the checkpoint: utils.models.build_model({payload.get('model_name')!r})") from None
    model.to(device).eval()  # ready for inference: BatchNorm uses its running statistics, Dropout is off
    return {k: v for k, v in payload.items() if k != "state_dict"}


def load_checkpoint(path: str | os.PathLike, model: nn.Module, device: str | torch.device = "cpu") -> dict:
    """Load weights saved by `save_checkpoint` into `model`, left in eval mode; returns the checkpoint's other fields."""
    path = Path(path).expanduser()
    payload, device = _read_checkpoint(path, device)
    return _load_weights(model, payload, path, device)


def load_trained_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model named in a checkpoint, built and loaded with its weights, in eval mode, and the checkpoint's other fields."""
    from .models import STEPS, build_model

    path = Path(path).expanduser()
    payload, device = _read_checkpoint(path, device)
    name = payload.get("model_name")
    if name not in STEPS:
        raise CheckpointError(f"{path} names model {name!r}, which utils.models does not define: another version "
                              f"of this repository wrote it; train the model again (python -m utils.train) or "
                              f"load it with the version that wrote it")
    model = build_model(name)
    return model, _load_weights(model, payload, path, device)
