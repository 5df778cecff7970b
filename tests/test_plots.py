"""The plotting helpers draw what they say, from plain data."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from utils.plots import (confusion_matrix, digit_boxes, plot_confusion_matrix, plot_history,  # noqa: E402
                         plot_params_vs_error, plot_val_overlay, plot_z_scores, show_digits, show_windows,
                         spread_positions)


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    true = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(true, pred, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert torch.equal(plot_confusion_matrix(true, pred, num_classes=3), cm)


def test_plot_history_draws_train_and_validation_and_marks_the_chosen_epoch():
    h = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4], "val_loss": [0.9, 0.6, 0.5],
         "train_acc": [0.9, 0.95, 0.96], "val_acc": [0.91, 0.97, 0.96], "best_epoch": 2}
    loss_ax, acc_ax = plot_history(h)
    labels = [line.get_label() for line in acc_ax.get_lines()]
    assert labels == ["train", "validation", "chosen epoch"]
    assert list(acc_ax.get_lines()[1].get_ydata()) == h["val_acc"]
    assert acc_ax.get_lines()[2].get_xdata()[0] == 2


def test_show_digits_lays_out_one_panel_per_image_with_titles():
    fig = show_digits(torch.zeros(7, 1, 28, 28), titles=[str(i) for i in range(7)], ncols=4)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 7 and len(fig.axes) == 8
    assert [ax.get_title() for ax in panels] == [str(i) for i in range(7)]


def test_spread_positions_keeps_the_order_and_the_gap_and_moves_nothing_that_is_free():
    values = [0.50, 0.10, 0.51, 0.52, 0.90]
    pos = spread_positions(values, min_gap=0.05, lo=0.0, hi=1.0)
    assert pos[1] == 0.10 and pos[4] == 0.90  # far from the others: left where they are
    ordered = sorted(pos)
    assert all(b - a >= 0.05 - 1e-12 for a, b in zip(ordered, ordered[1:]))
    assert [values.index(v) for v in sorted(values)] == [pos.index(p) for p in ordered]
    assert max(spread_positions([0.99, 0.99, 0.99], 0.1, hi=1.0)) <= 1.0


def test_params_vs_error_labels_do_not_overlap_even_for_equal_parameter_counts():
    points = {f"step_{i}": (7988, 0.99 + i / 1000) for i in range(8)} | {"small": (3728, 0.95)}
    ax = plot_params_vs_error(points, budget=8000)
    renderer = ax.figure.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text().startswith(("step_", "small"))]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert len(boxes) == len(points)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_val_overlay_zooms_on_the_runs_close_to_the_best_and_names_the_others():
    h = lambda accs: {"epoch": list(range(1, len(accs) + 1)), "val_acc": accs}  # noqa: E731
    runs = {"a": h([0.90, 0.95, 0.99, 0.993]), "b": h([0.92, 0.97, 0.991, 0.994]), "low": h([0.5, 0.6, 0.7, 0.8])}
    full, zoom = plot_val_overlay(runs)
    assert "low" in zoom.get_title() and "a" not in zoom.get_title().replace("zoomed", "")
    lo, hi = zoom.get_ylim()
    assert lo < 99.3 and hi > 99.4 and lo > 80
    assert zoom.get_xlim()[0] > 2  # the last half of the epochs
    assert len(full.get_lines()) == 3


def test_show_windows_draws_one_square_per_window_of_the_given_size():
    ax = show_windows(torch.zeros(28, 28), [{"centre": (13.5, 13.5), "size": 22, "label": "rf"},
                                            {"centre": (13.5, 13.5), "size": 20, "color": "blue"}])
    squares = [p for p in ax.patches]
    assert [(p.get_width(), p.get_height()) for p in squares] == [(22, 22), (20, 20)]
    assert squares[0].get_xy() == (13.5 - 11, 13.5 - 11)


def test_digit_boxes_measure_the_ink_box_and_the_centre_of_mass():
    img = torch.zeros(2, 28, 28, dtype=torch.uint8)
    img[0, 4:24, 10:15] = 255  # 20 rows x 5 columns of ink
    img[1, 0, 0] = 7  # one pixel in the corner
    box = digit_boxes(img)
    assert box["height"].tolist() == [20, 1] and box["width"].tolist() == [5, 1]
    assert box["top"].tolist() == [4, 0] and box["left"].tolist() == [10, 0]
    assert torch.allclose(box["row"], torch.tensor([13.5, 0.0])) and torch.allclose(box["col"], torch.tensor([12.0, 0.0]))


def test_plot_z_scores_draws_one_dot_per_candidate_and_writes_the_value_of_a_clipped_one():
    rows = [{"round": 3, "name": "a", "z": 0.5}, {"round": 8, "name": "b", "z": -22.0}, {"round": 10, "name": "c", "z": 2.3}]
    ax = plot_z_scores(rows, clip=6)
    dots = [line.get_xdata()[0] for line in ax.get_lines() if line.get_marker() == "o"]
    assert dots == [0.5, -6, 2.3]  # the far one sits at the edge ...
    assert [t.get_text() for t in ax.texts] == ["-22"]  # ... with its value beside it
    assert [t.get_text() for t in ax.get_yticklabels()] == ["round 3: a", "round 8: b", "round 10: c"]
