"""Plots a reader would rather look at than read: curves, digit grids, confusion matrices."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import torch
from torch import Tensor


def plot_history(history: dict, title: str = "", axes=None):
    """Loss and accuracy per epoch, train vs validation, with the chosen (best-validation) epoch marked."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    epochs = history["epoch"]
    for ax, metric in zip(axes, ("loss", "acc")):
        ax.plot(epochs, history[f"train_{metric}"], "o-", label="train")
        ax.plot(epochs, history[f"val_{metric}"], "s-", label="validation")
        if "best_epoch" in history:
            ax.axvline(history["best_epoch"], color="grey", ls=":", label="chosen epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    if history["val_acc"] and min(history["val_acc"]) > 0.9:
        axes[1].set_ylim(max(0.9, min(history["train_acc"] + history["val_acc"]) - 0.005), 1.0)
    axes[0].set_title(f"{title} loss".strip())
    axes[1].set_title(f"{title} accuracy".strip())
    plt.tight_layout()
    return axes


def plot_lr(history: dict, ax=None):
    """The learning rate at the start of each epoch."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    ax.plot(history["epoch"], history["lr"], "o-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return ax


def show_digits(
    images: Tensor,
    titles: Optional[Sequence[str]] = None,
    ncols: int = 10,
    title_colors: Optional[Sequence[str]] = None,
    size: float = 1.2,
    suptitle: str = "",
):
    """A grid of digits (N x 28 x 28 or N x 1 x 28 x 28), with an optional title under each."""
    images = images.detach().cpu().float().reshape(len(images), 28, 28)
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)))
    for i, ax in enumerate(axes.flat if hasattr(axes, "flat") else [axes]):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i].numpy(), cmap="gray_r")
        if titles:
            ax.set_title(titles[i], fontsize=8, color=title_colors[i] if title_colors else "black")
    if suptitle:
        fig.suptitle(suptitle)
    plt.tight_layout()
    return fig


def plot_confusion_matrix(true: Tensor, pred: Tensor, num_classes: int = 10, ax=None) -> Tensor:
    """A heatmap of the confusion matrix (rows: true digit, columns: predicted); returns the matrix."""
    cm = confusion_matrix(true, pred, num_classes)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5.5))
    off = cm.clone().float()
    off.fill_diagonal_(float("nan"))  # colour the errors; the diagonal would swamp the scale
    im = ax.imshow(off.numpy(), cmap="Reds")
    dark = 0.6 * off.nan_to_num(0).max().item()
    for i in range(num_classes):
        for j in range(num_classes):
            if cm[i, j]:
                color = "tab:green" if i == j else "white" if cm[i, j] > dark else "black"
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(num_classes))
    ax.set_yticks(range(num_classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    plt.colorbar(im, ax=ax, fraction=0.046, label="errors")
    return cm


def confusion_matrix(true: Tensor, pred: Tensor, num_classes: int = 10) -> Tensor:
    """counts[i, j] = how many images of class i were predicted as j."""
    idx = true.cpu().long() * num_classes + pred.cpu().long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)
