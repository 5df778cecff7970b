"""Round 10's ways of choosing the kept weights: BatchNorm statistics measured afresh, SWA, and self-distillation."""

from dataclasses import replace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.config import TrainConfig
from utils.engine import check_config, distill_weight, evaluate, fit, recompute_batchnorm, train_one_epoch
from utils.models import FINAL, STEPS, build_model


def test_recompute_batchnorm_measures_the_statistics_of_the_given_images_and_changes_nothing_else():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Dropout(0.5))
    x = torch.randn(40, 1, 4, 4) * 3 + 1
    weights = [p.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    recompute_batchnorm(model, x, batch_size=10)
    with torch.no_grad():
        h = model[0](x)  # what the BatchNorm sees
    bn = model[1]
    torch.testing.assert_close(bn.running_mean, h.mean((0, 2, 3)))
    # the mean of the four batches' (unbiased) variances, as torch's swa_utils.update_bn measures it
    batch_vars = torch.stack([h[i : i + 10].var((0, 2, 3)) for i in range(0, 40, 10)])
    torch.testing.assert_close(bn.running_var, batch_vars.mean(0))
    assert bn.momentum == 0.1 and not model.training  # its settings are back, and it is ready to evaluate
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())  # dropout stayed off: no random numbers drawn


def test_with_a_teacher_the_loss_mixes_the_labels_and_the_teachers_predictions():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    student, teacher = (nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.LogSoftmax(1)) for _ in range(2))
    opt = torch.optim.SGD(student.parameters(), lr=0.0)  # measure the loss only
    loss = train_one_epoch(student, [(x, y)], opt, progress=False, teacher=teacher, distill=0.25)[0]
    with torch.no_grad():
        log_p, soft = student(x), teacher(x).exp()
        expected = 0.75 * F.nll_loss(log_p, y) + 0.25 * -(soft * log_p).sum(1).mean()
    assert loss == pytest.approx(float(expected), rel=1e-5)
    assert not teacher.training  # the teacher predicts in eval mode


def test_distillation_waits_for_a_teacher_and_ramps_up():
    config = TrainConfig(distill=0.5)
    assert [distill_weight(config, e) for e in (1, 2, 6, 15)] == [0.0, 0.1, 0.5, 0.5]
    assert distill_weight(TrainConfig(), 10) == 0.0


@pytest.mark.parametrize("bad", [{"distill": 1.0}, {"distill": -0.1}, {"swa_start": 16}])
def test_settings_that_cannot_work_are_refused_with_what_to_change(bad):
    with pytest.raises(ValueError, match="distill|swa_start"):
        check_config(TrainConfig(epochs=15, **bad))


def test_new_settings_stay_out_of_the_result_files_of_recipes_without_them():
    assert not {"bn_recompute", "swa_start", "distill"} & set(TrainConfig().to_dict())


@pytest.mark.parametrize("change", [{"bn_recompute": True}, {"swa_start": 2}])
def test_choosing_the_kept_weights_differently_leaves_the_live_training_alone(small_splits, change):
    base = replace(STEPS[FINAL].config, epochs=3)
    runs = {}
    for name, config in (("base", base), ("changed", replace(base, **change))):
        model = build_model(FINAL, seed=1)
        runs[name] = (fit(model, small_splits, config, seed=1, progress=False, log=None), model)
    (a, _), (b, model) = runs["base"], runs["changed"]
    assert a["train_loss"] == b["train_loss"] and a["live_val_acc"] == b["live_val_acc"]
    assert a["val_acc"] != b["val_acc"]  # ... while what is validated and kept is another model
    assert evaluate(model, small_splits.val_x, small_splits.val_y)[1] == b["best_val_acc"]
