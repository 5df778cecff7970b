"""What the final model adds to step 6b: padded convs, an EMA of the weights, and the TTA it was judged with."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from utils.augment import shift_images
from utils.config import TrainConfig
from utils.engine import TTA_SHIFTS, WeightEMA, evaluate, fit, tta_accuracies, tta_log_probs
from utils.models import FINAL, STEPS, build_model


def _train_steps(model, averagers, steps=12):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
        model.train()
        loss = F.nll_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for update in averagers:
            update(model)


def test_the_weight_ema_matches_torchs_averaged_model():
    model = build_model(FINAL, seed=1)
    ours = WeightEMA(model, 0.9)
    torchs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    _train_steps(model, [ours.update, torchs.update_parameters])
    a, b, live = ours.module.state_dict(), torchs.module.state_dict(), model.state_dict()
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k])
    # ... and it really is an average: it lags behind the live weights.
    assert not torch.allclose(a["layers.0.weight"], live["layers.0.weight"])


def test_the_weight_ema_moves_a_fraction_one_minus_decay_towards_the_live_weights():
    model = torch.nn.Linear(2, 1, bias=False)
    ema = WeightEMA(model, 0.75)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.update(model)  # the first update copies
        model.weight.fill_(5.0)
        ema.update(model)
    assert ema.module.weight.tolist() == [[2.0, 2.0]]  # 1 + (5 - 1) * 0.25
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(model, 1.0)


def test_fit_with_ema_keeps_the_averaged_weights_and_logs_the_live_ones(small_splits):
    config = replace(STEPS[FINAL].config, epochs=2)
    assert config.ema > 0
    model = build_model(FINAL, seed=1)
    history = fit(model, small_splits, config, seed=1, progress=False, log=None)
    assert len(history["live_val_acc"]) == len(history["val_acc"]) == 2
    _, acc = evaluate(model, small_splits.val_x, small_splits.val_y)
    assert acc == history["best_val_acc"]  # the model ends holding the kept (EMA) weights
    # ... which are not the live ones: after two short epochs the average still lags far behind them
    assert history["val_acc"] != history["live_val_acc"]


def test_recipes_without_ema_keep_their_result_keys():
    assert "ema" not in TrainConfig().to_dict()
    assert TrainConfig(ema=0.999).to_dict()["ema"] == 0.999


def test_shift_images_moves_whole_pixels_and_fills_with_the_background():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    right_down = shift_images(x, 1, 2, fill=-0.5)
    assert right_down[0, 0, 4, 3] == 1.0 and right_down.sum() == 1.0 - 0.5 * (2 * 5 + 1 * 3)
    assert (right_down[0, 0, :2] == -0.5).all() and (right_down[0, 0, :, 0] == -0.5).all()
    assert torch.equal(shift_images(x, 0, 0), x)


def test_tta_averages_probabilities_over_the_shifted_copies():
    model = build_model(FINAL, seed=1).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(tta_log_probs(model, x), model(x))
        shifts = TTA_SHIFTS["cross1"]
        expected = torch.stack([model(shift_images(x, dx, dy, -0.4)).exp() for dx, dy in shifts]).mean(0).log()
        out = tta_log_probs(model, x, shifts, -0.4)
        # without the background value the shifted copies cannot be made: an error that says what to pass
        with pytest.raises(ValueError, match="fill=splits.background"):
            tta_log_probs(model, x, shifts)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))


def test_tta_accuracies_names_each_shift_set_and_none_is_the_plain_accuracy(small_splits):
    model = build_model(FINAL, seed=1)
    x, y, fill = small_splits.val_x, small_splits.val_y, small_splits.background
    accs = tta_accuracies(model, x, y, fill=fill)
    assert list(accs) == list(TTA_SHIFTS)
    assert accs["none"] == evaluate(model, x, y)[1]
    assert accs["square1"] == evaluate(model, x, y, shifts=TTA_SHIFTS["square1"], fill=fill)[1]
    assert list(tta_accuracies(model, x, y, ["cross1"], fill)) == ["cross1"]
