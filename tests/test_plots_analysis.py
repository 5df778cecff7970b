"""The analysis plots of notebooks 03 and 04 draw what they say: error counts, the error gallery's order and colours."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from utils.plots import (confusion_matrix, plot_error_counts, plot_probabilities, plot_robustness,  # noqa: E402
                         plot_train_live_ema, show_errors, show_perturbed)


def test_error_counts_are_the_confusion_rows_minus_the_diagonal():
    true = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 2, 1, 1, 0])
    errors = plot_error_counts(confusion_matrix(true, pred, 3))
    assert errors.tolist() == [2, 0, 1]


def test_the_error_gallery_is_sorted_by_confidence_and_red_exactly_above_the_threshold():
    conf = torch.tensor([0.5, 0.95, 0.9, 0.99])
    fig = show_errors(torch.zeros(4, 28, 28), torch.tensor([1, 2, 3, 4]), torch.tensor([7, 7, 7, 7]), conf,
                      threshold=0.9, ncols=4)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["4→7 (99%)", "2→7 (95%)", "3→7 (90%)", "1→7 (50%)"]
    red = to_hex("tab:red")
    assert [to_hex(ax.title.get_color()) == red for ax in panels] == [True, True, False, False]
    assert "90%" in fig._suptitle.get_text()


def test_live_and_ema_curves_are_drawn_as_error_rates():
    h = {"epoch": [1, 2], "train_acc": [0.9, 0.99], "val_acc": [0.5, 0.995], "live_val_acc": [0.95, 0.99],
         "best_epoch": 2}
    ax = plot_train_live_ema(h)
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines()}
    assert [round(v, 6) for v in lines["validation, EMA weights (kept)"]] == [50.0, 0.5]
    assert "validation, live weights" in lines
    assert "validation, SWA weights (kept)" in {ln.get_label() for ln in plot_train_live_ema(h, kept="SWA").get_lines()}


def test_probabilities_bars_and_robustness_panels():
    ax = plot_probabilities(torch.tensor([0.1, 0.7, 0.2] + [0.0] * 7))
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 10 and heights.index(max(heights)) == 1
    fig = plot_robustness({"a": [1.0, 0.9], "b": [1.0, 0.5]}, {"a": [0, 1], "b": [0, 2]}, {"a": "u", "b": "v"},
                          marks={"a": 0.5}, ncols=2)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [100.0, 50.0]


def test_robustness_panels_keep_none_on_the_left_and_perturbed_digits_share_one_scale():
    fig = plot_robustness({"faint": [1.0, 0.5, 0.2]}, {"faint": [1.0, 0.5, 0.1]}, {"faint": "factor"}, ncols=1)
    assert fig.axes[0].xaxis_inverted()
    example = torch.zeros(28, 28)
    example[10:18, 12:16] = 1.0
    fig = show_perturbed(example, {"dim": (lambda x, f: x * f, [1.0, 0.5]), "same": (lambda x, s: x, [0])})
    grid = [ax for ax in fig.axes if ax.images]
    assert len(grid) == 3
    assert all(ax.images[0].get_clim() == (0, 1) for ax in grid), "a fixed scale: faint ink must look faint"
    assert grid[1].images[0].get_array().max() == 0.5
