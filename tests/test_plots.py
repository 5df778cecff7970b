"""The plotting helpers draw what they say, from plain data."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from utils.plots import confusion_matrix, plot_confusion_matrix, plot_history, show_digits  # noqa: E402


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
