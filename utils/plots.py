"""Plots a reader would rather look at than read: curves, digit grids, confusion matrices."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
import torch
from torch import Tensor


def plot_history(history: dict, title: str = "", axes: Optional[Sequence[Axes]] = None) -> Sequence[Axes]:
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


def show_digits(
    images: Tensor,
    titles: Optional[Sequence[str]] = None,
    ncols: int = 10,
    title_colors: Optional[Sequence[str]] = None,
    size: float = 1.2,
    suptitle: str = "",
) -> Figure:
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


def plot_confusion_matrix(true: Tensor, pred: Tensor, num_classes: int = 10, ax: Optional[Axes] = None) -> Tensor:
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


def plot_error_counts(cm: Tensor, ax: Optional[Axes] = None) -> Tensor:
    """Misread images per true digit (the confusion matrix's rows without the diagonal), counted on the bars."""
    errors = cm.sum(1) - cm.diag()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    bars = ax.bar(range(len(errors)), errors.numpy(), color="tab:red")
    ax.bar_label(bars, labels=[f"{int(e)} / {int(n):,}" for e, n in zip(errors, cm.sum(1))], fontsize=8)
    ax.set_xticks(range(len(errors)))
    ax.set_xlabel("true digit")
    ax.set_ylabel("misread images")
    ax.set_ylim(0, max(1, int(errors.max())) * 1.2)
    return errors


def show_errors(
    images: Tensor, true: Tensor, pred: Tensor, confidence: Tensor, threshold: float = 0.9, ncols: int = 10
) -> Figure:
    """Every given error, most confident first: 'true→predicted (confidence)', red above `threshold`, black below."""
    order = confidence.argsort(descending=True)
    conf = confidence[order].tolist()
    titles = [f"{t}→{p} ({c:.0%})" for t, p, c in zip(true[order].tolist(), pred[order].tolist(), conf)]
    colors = ["tab:red" if c > threshold else "black" for c in conf]
    n_red = sum(c > threshold for c in conf)
    return show_digits(images[order], titles=titles, title_colors=colors, ncols=ncols, size=1.3,
                       suptitle=f"{len(conf)} errors, most confident first; red: more than {threshold:.0%} "
                                f"sure of the wrong digit ({n_red}), black: {threshold:.0%} or less "
                                f"({len(conf) - n_red})")


def plot_train_live_ema(history: dict, ax: Optional[Axes] = None, kept: str = "EMA") -> Axes:
    """Error rate per epoch on a log scale: training batches, validation of the live weights and of their `kept` average (EMA or SWA)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    epochs = history["epoch"]
    series = [("train (augmented, dropout on, live weights)", history["train_acc"], "o-")]
    if "live_val_acc" in history:
        series.append(("validation, live weights", history["live_val_acc"], "^--"))
    series.append((f"validation, {kept} weights (kept)" if "live_val_acc" in history else "validation",
                   history["val_acc"], "s-"))
    for label, acc, style in series:
        ax.plot(epochs, [100 * (1 - a) for a in acc], style, label=label)
    if "best_epoch" in history:
        ax.axvline(history["best_epoch"], color="grey", ls=":", label="chosen epoch")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%, log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def plot_schedule(lrs: Sequence[float], momenta: Sequence[float], steps_per_epoch: int,
                  axes: Optional[Sequence[Axes]] = None) -> Sequence[Axes]:
    """Learning rate and momentum at every optimizer step, with epochs on the x-axis."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    epochs = [i / steps_per_epoch for i in range(len(lrs))]
    for ax, values, label in zip(axes, (lrs, momenta), ("learning rate", "momentum")):
        ax.plot(epochs, values)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    plt.tight_layout()
    return axes


def plot_robustness(curves: dict, strengths: dict, units: dict, marks: Optional[dict] = None, ncols: int = 4) -> Figure:
    """One panel per perturbation: accuracy (%) against strength, shared y-axis; `marks` shades the range seen in training."""
    nrows = -(-len(curves) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), sharey=True)
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, (name, accs) in zip(flat, curves.items()):
        ax.plot(strengths[name], [100 * a for a in accs], "o-")
        if strengths[name][0] > strengths[name][-1]:  # a factor that shrinks: keep "none" on the left
            ax.invert_xaxis()
        if marks and name in marks:
            lo, hi = sorted((strengths[name][0], marks[name]))
            ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label="seen in training")
            ax.legend(fontsize=7, loc="lower left")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(units[name], fontsize=8)
        ax.grid(alpha=0.3)
    for ax in flat[len(curves):]:
        ax.axis("off")
    for ax in flat[::ncols]:
        ax.set_ylabel("accuracy (%)")
    plt.tight_layout()
    return fig


def show_steps(steps: dict, size: float = 2.2) -> Figure:
    """The stages of a preprocessing pipeline side by side (name: H x W image), each with its shape."""
    fig, axes = plt.subplots(1, len(steps), figsize=(size * len(steps), size * 1.15))
    for ax, (name, img) in zip(axes, steps.items()):
        ax.imshow(img.detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}\n{img.shape[0]}x{img.shape[1]}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    plt.tight_layout()
    return fig


def plot_probabilities(probs: Tensor, ax: Optional[Axes] = None) -> Axes:
    """The ten class probabilities as bars, the predicted class in red, each bar labelled."""
    probs = probs.detach().cpu().flatten()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.8))
    best = int(probs.argmax())
    bars = ax.bar(range(len(probs)), probs.numpy(),
                  color=["tab:red" if i == best else "tab:blue" for i in range(len(probs))])
    ax.bar_label(bars, labels=[f"{p:.0%}" if p >= 0.005 else "" for p in probs.tolist()], fontsize=8)
    ax.set_xticks(range(len(probs)))
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("digit")
    ax.set_ylabel("probability")
    return ax


def step_colors(names: Sequence[str]) -> dict[str, tuple]:
    """One colour per name, in order (tab10, then tab20): the same step keeps its colour across plots."""
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def plot_val_overlay(histories: dict[str, dict], zoom_within: float = 0.01, axes: Optional[Sequence[Axes]] = None,
                     colors: Optional[dict] = None) -> Sequence[Axes]:
    """Every run's validation accuracy per epoch on shared axes: all epochs, and the last half zoomed to where runs differ.

    The left panel starts 5 points below the lowest last-epoch accuracy (earlier epochs under it are
    named in its title); the right one covers the runs whose last accuracy is within `zoom_within` of
    the best (the others are named in its title). Returns the two axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    colors = colors or step_colors(list(histories))
    last = {n: h["val_acc"][-1] for n, h in histories.items()}
    best = max(last.values())
    close = [n for n in histories if last[n] >= best - zoom_within]
    n_epochs = max(len(h["val_acc"]) for h in histories.values())
    first_zoomed = max(1, n_epochs // 2 + 1)
    for ax in axes:
        for n, h in histories.items():
            ax.plot(h["epoch"], [100 * v for v in h["val_acc"]], "o-", ms=3, color=colors[n], label=n)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    floor = 100 * min(last.values()) - 5
    off = [n for n, h in histories.items() if 100 * min(h["val_acc"]) < floor]
    axes[0].set_ylim(floor, 100)
    axes[0].set_title("all epochs" + (f" (below the axis early on: {', '.join(off)})" if off else ""), fontsize=10)
    zoomed = [100 * v for n in close for e, v in zip(histories[n]["epoch"], histories[n]["val_acc"]) if e >= first_zoomed]
    axes[1].set_xlim(first_zoomed - 0.3, n_epochs + 0.3)
    axes[1].set_ylim(min(100 * last[n] for n in close) - 0.1, max(zoomed) + 0.05)
    below = [n for n in histories if n not in close]
    axes[1].set_title(f"epochs {first_zoomed}-{n_epochs}, zoomed" + (f" (below: {', '.join(below)})" if below else ""),
                      fontsize=10)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    plt.tight_layout()
    return axes


def spread_positions(values: Sequence[float], min_gap: float, lo: float = float("-inf"), hi: float = float("inf")) -> list[float]:
    """Positions as near to `values` as possible, in the same order, at least `min_gap` apart and within [lo, hi] (for labels)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    pos = [float(values[i]) for i in order]
    for i in range(len(pos)):  # push up what is too close to the one below ...
        pos[i] = max(pos[i], lo if i == 0 else pos[i - 1] + min_gap)
    for i in reversed(range(len(pos))):  # ... and down what then sticks out at the top
        pos[i] = min(pos[i], hi if i == len(pos) - 1 else pos[i + 1] - min_gap)
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = pos[rank]
    return out


def plot_params_vs_error(points: dict[str, tuple[int, float]], ax: Optional[Axes] = None, colors: Optional[dict] = None,
                         budget: Optional[int] = None) -> Axes:
    """Parameters against validation error (log scale), one point per step, labels in a column beside the axes (no overlap).

    `points` maps a name to (parameters, validation accuracy in [0, 1]); `budget` draws a vertical line.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    colors = colors or step_colors(list(points))
    for n, (params, acc) in points.items():
        ax.scatter(params, 100 * (1 - acc), s=50, color=colors[n], zorder=3)
    if budget:
        ax.axvline(budget, color="grey", ls="--", lw=1)
        ax.text(budget, 0.98, f" {budget:,}", transform=ax.get_xaxis_transform(), ha="left", va="top",
                fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}".strip("0.")[:1] in "235" else ""))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation error (%, log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.figure.canvas.draw()  # fix the limits, so data positions can be turned into axes fractions
    to_axes = ax.transData + ax.transAxes.inverted()
    names = list(points)
    ys = [to_axes.transform((p, 100 * (1 - a)))[1] for p, a in points.values()]
    label_y = spread_positions(ys, min_gap=0.075, lo=0.02, hi=0.98)
    for n, y_label in zip(names, label_y):
        params, acc = points[n]
        ax.text(1.03, y_label, f"{n} ({100 * acc:.2f} %)", transform=ax.transAxes, va="center", fontsize=8,
                color=colors[n])
        ax.annotate("", xy=(params, 100 * (1 - acc)), xycoords="data", xytext=(1.025, y_label),
                    textcoords="axes fraction", arrowprops=dict(arrowstyle="-", color=colors[n], lw=0.6, alpha=0.7))
    return ax


def show_windows(image: Tensor, windows: Sequence[dict], ax: Optional[Axes] = None, title: str = "") -> Axes:
    """A digit with squares drawn on it: each window is {"centre": (row, col), "size": px, "label": str, "color": str}."""
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    img = image.detach().cpu().float().reshape(28, 28)
    ax.imshow(img.numpy(), cmap="gray_r", extent=(-0.5, 27.5, 27.5, -0.5))
    for w in windows:
        (r, c), size = w["centre"], w["size"]
        ax.add_patch(Rectangle((c - size / 2, r - size / 2), size, size, fill=False, lw=1.8,
                               color=w.get("color", "tab:red"), ls=w.get("ls", "-"), label=w.get("label")))
    ax.set_xlim(-4, 31)
    ax.set_ylim(31, -4)
    ax.set_xticks([0, 7, 14, 21, 27])
    ax.set_yticks([0, 7, 14, 21, 27])
    if any(w.get("label") for w in windows):
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=1, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def digit_boxes(images: Tensor) -> dict[str, Tensor]:
    """The ink of each uint8 or [0, 1] digit (N x 28 x 28): bounding box (top, left, height, width) and centre of mass (row, col)."""
    x = images.detach().cpu().float().reshape(len(images), 28, 28)
    ink = x > 0
    idx = torch.arange(28)

    def extent(mask: Tensor) -> tuple[Tensor, Tensor]:
        first = torch.where(mask, idx, 28).min(1).values
        last = torch.where(mask, idx, -1).max(1).values
        return first, (last - first + 1).clamp(min=0)

    (top, height), (left, width) = extent(ink.any(2)), extent(ink.any(1))
    mass = x.sum((1, 2)).clamp(min=1e-12)
    return {"top": top, "left": left, "height": height, "width": width,
            "row": (x.sum(2) * idx).sum(1) / mass, "col": (x.sum(1) * idx).sum(1) / mass}


def show_perturbed(example: Tensor, rows: dict, size: float = 1.1) -> Figure:
    """One digit (28 x 28, in [0, 1]) under each perturbation (rows) at each strength (columns), on a fixed 0..1 scale."""
    ncols = max(len(strengths) for _, strengths in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * (ncols + 1.2), size * 1.15 * len(rows)), squeeze=False)
    for r, (name, (apply, strengths)) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(strengths):
                ax.axis("off")
                continue
            img = apply(example.reshape(1, 28, 28), strengths[c])[0]
            ax.imshow(img.detach().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"{strengths[c]:g}", fontsize=8)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    plt.tight_layout()
    return fig


def plot_z_scores(rows: Sequence[dict], clip: float = 6.0, ax: Optional[Axes] = None) -> Axes:
    """Each candidate's gain over its base in standard errors (`utils.report.search_z_scores`), one dot per candidate.

    The shaded band is |z| < 2, where about 95 % of candidates that change nothing would fall; dots beyond `clip`
    sit at the edge with their value written beside them.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2))
    ax.axvspan(-2, 2, color="0.9", label="|z| < 2: what luck alone gives 95 % of the time")
    ax.axvline(0, color="0.5", lw=0.8)
    for i, r in enumerate(rows):
        z = max(-clip, min(clip, r["z"]))
        ax.plot(z, i, "o", color="tab:green" if r["z"] >= 2 else "tab:red" if r["z"] <= -2 else "tab:blue")
        if z != r["z"]:
            ax.annotate(f"{r['z']:.0f}", (z, i), xytext=(6, -3), textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"round {r['round']}: {r['name']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-clip - 0.5, clip + 0.5)
    ax.set_xlabel("gain over the base in standard errors (z)")
    ax.legend(loc="lower right", fontsize=8)
    return ax
