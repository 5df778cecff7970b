"""Seeding, learning, best-on-validation choice, and checkpoints that fail clearly."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from utils.config import TrainConfig
from utils.data import repo_root
from utils.engine import (CheckpointError, DeviceError, InputError, evaluate, fit, load_checkpoint, load_trained_model,
                          pick_device, predict, round_to_tf32, save_checkpoint, tf32_convolutions,
                          with_tf32_convolutions)
from utils.models import FINAL, STEPS, build_model

SHORT = replace(STEPS[FINAL].config, epochs=2, batch_size=64)


def _history_without_time(h):
    return {k: v for k, v in h.items() if k != "seconds"}


def test_two_seeded_runs_give_identical_histories(small_splits):
    # What is reproducible: the same seed on the same machine, torch version, device and thread count
    # gives the same history, number for number (here: twice in one process). Across CPUs, thread
    # counts or torch versions the floating-point sums differ in the last bits; no test compares those.
    h1 = fit(build_model(seed=5), small_splits, SHORT, seed=5, progress=False, log=None)
    h2 = fit(build_model(seed=5), small_splits, SHORT, seed=5, progress=False, log=None)
    h3 = fit(build_model(seed=6), small_splits, SHORT, seed=6, progress=False, log=None)
    assert _history_without_time(h1) == _history_without_time(h2)
    assert h1["train_loss"] != h3["train_loss"]


def test_the_loss_falls_on_a_small_subset(small_splits):
    config = TrainConfig(epochs=4, batch_size=32, optimizer="adam", lr=3e-3, schedule="constant")
    h = fit(build_model(seed=1), small_splits, config, seed=1, progress=False, log=None)
    assert h["train_loss"][-1] < 0.7 * h["train_loss"][0]
    assert h["val_acc"][-1] > 0.5  # well above chance (0.1) after 4 short epochs


def test_fit_keeps_the_best_on_validation_weights(small_splits, tmp_path):
    model = build_model()
    h = fit(model, small_splits, SHORT, seed=2, progress=False, log=None, checkpoint_path=tmp_path / "m.pt",
            model_name=FINAL)
    best = h["best_epoch"]
    assert h["best_val_acc"] == max(h["val_acc"]) == h["val_acc"][best - 1]
    _, acc = evaluate(model, small_splits.val_x, small_splits.val_y)
    assert acc == pytest.approx(h["best_val_acc"])
    reloaded, info = load_trained_model(tmp_path / "m.pt")
    assert info["model_name"] == FINAL and info["info"]["best_epoch"] == best
    # The reloaded model runs in another memory layout (fit uses channels-last): the same weights, sums in
    # another order, so the outputs agree to rounding, and at most a borderline image may change its answer.
    torch.testing.assert_close(predict(reloaded, small_splits.val_x), predict(model, small_splits.val_x),
                               rtol=1e-4, atol=1e-4)
    n = len(small_splits.val_y)
    assert evaluate(reloaded, small_splits.val_x, small_splits.val_y)[1] == pytest.approx(acc, abs=1.5 / n)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # the temp file was renamed, none left behind


def test_a_checkpoint_of_another_architecture_is_refused_clearly(tmp_path):
    path = save_checkpoint(build_model("1_skeleton"), tmp_path / "skeleton.pt", "1_skeleton", 0.13, 0.31)
    with pytest.raises(CheckpointError, match="1_skeleton.*build_model"):
        load_checkpoint(path, build_model(FINAL))


def test_a_corrupt_or_missing_checkpoint_is_refused_clearly(tmp_path):
    path = save_checkpoint(build_model(), tmp_path / "m.pt", FINAL, 0.13, 0.31)
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by an interrupted copy
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path, build_model())
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.pt", build_model())
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match="not written by"):
        load_checkpoint(other, build_model())


def test_a_good_checkpoint_asked_for_on_a_bad_device_blames_the_device_not_the_file(tmp_path):
    path = save_checkpoint(build_model(), tmp_path / "m.pt", FINAL, 0.13, 0.31)
    with pytest.raises(DeviceError, match="unknown device 'GPU'"):  # e.g. a loop variable named `device` in a notebook
        load_checkpoint(path, build_model(), "GPU")


def test_a_loaded_model_is_ready_for_inference_in_eval_mode(tmp_path):
    path = save_checkpoint(build_model(), tmp_path / "m.pt", FINAL, 0.13, 0.31)
    model, _ = load_trained_model(path)
    assert not any(m.training for m in model.modules())  # BatchNorm on running stats, Dropout off
    given = build_model().train()
    load_checkpoint(path, given)
    assert not any(m.training for m in given.modules())
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(model(x), model(x))  # no dropout noise: the same input, the same answer


def test_an_all_nan_batch_is_refused_not_scored():
    model = build_model(seed=0)
    nan = torch.full((16, 1, 28, 28), float("nan"))
    zeros = torch.zeros(16, dtype=torch.long)  # NaN logits argmax to 0: this used to score 100 %
    with pytest.raises(InputError, match="NaN or infinite"):
        evaluate(model, nan, zeros)
    with pytest.raises(InputError, match="NaN or infinite"):
        predict(model, nan)
    one_inf = torch.zeros(16, 1, 28, 28)
    one_inf[5, 0, 3, 3] = float("inf")
    with pytest.raises(InputError, match="NaN or infinite"):
        evaluate(model, one_inf, zeros, batch_size=4)  # in the second of four batches


@pytest.mark.parametrize("x, message", [
    (torch.zeros(4, 28, 28), "N x 1 x 28 x 28.*unsqueeze"),
    (torch.zeros(28, 28), "N x 1 x 28 x 28.*x\\[None, None\\]"),
    (torch.zeros(4, 3, 28, 28), "N x 1 x 28 x 28"),
    (torch.zeros(4, 1, 32, 32), "N x 1 x 28 x 28"),
    (torch.zeros(0, 1, 28, 28), "empty"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "to_normalized"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.float64), "model's weights are torch.float32"),
    ([[0.0] * 28] * 28, "torch tensor"),
    (torch.zeros(4, 1, 28, 28, device="meta"), "on meta but the model is on cpu: move them"),  # e.g. a GPU model
])
def test_predict_and_evaluate_refuse_images_of_the_wrong_shape_or_type(x, message):
    model = build_model(seed=0)
    with pytest.raises(InputError, match=message):
        predict(model, x)
    with pytest.raises(InputError, match=message):
        evaluate(model, x, torch.zeros(4, dtype=torch.long))


def test_evaluate_refuses_labels_that_do_not_fit_the_images():
    model, x = build_model(seed=0), torch.zeros(4, 1, 28, 28)
    for y in (torch.zeros(3, dtype=torch.long), torch.zeros(4), torch.zeros(4, 1, dtype=torch.long)):
        with pytest.raises(InputError, match="4 integer class indices"):
            evaluate(model, x, y)


def test_the_device_is_chosen_automatically_or_as_asked():
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    assert pick_device().type == pick_device("auto").type == expected
    assert pick_device("cpu") == torch.device("cpu")
    # a notebook's DEVICE goes through the same checks as the command line's --device
    with pytest.raises(DeviceError, match="unknown device 'GPU'"):
        pick_device("GPU")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available here"):
            pick_device("cuda")


def test_a_checkpoint_loads_on_the_device_chosen_automatically(tmp_path):
    path = save_checkpoint(build_model(), tmp_path / "m.pt", FINAL, 0.13, 0.31)
    model = build_model()
    load_checkpoint(path, model, "auto")
    assert next(model.parameters()).device.type == pick_device().type
    assert next(load_trained_model(path, "auto")[0].parameters()).device.type == pick_device().type


@pytest.mark.parametrize("change", [dict(epochs=0), dict(batch_size=0)])
def test_a_recipe_without_epochs_or_batches_is_refused_before_training(small_splits, change):
    with pytest.raises(ValueError, match="must be at least 1"):
        fit(build_model(), small_splits, replace(SHORT, **change), seed=1, progress=False, log=None)


def test_self_distillation_without_an_average_trains_the_live_model_in_training_mode(small_splits, monkeypatch):
    # with no EMA, SWA or BatchNorm re-measurement the kept weights are the live model's: the teacher must be a
    # copy, or putting the teacher in eval mode would train the live model with BatchNorm frozen and no Dropout
    from utils import engine

    seen = []
    real = engine.train_one_epoch

    def spy(model, *args, teacher=None, **kwargs):
        seen.append(teacher is not None and teacher is model)
        return real(model, *args, teacher=teacher, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", spy)
    config = replace(SHORT, epochs=3, ema=0.0, swa_start=0, bn_recompute=False, distill=0.5)
    fit(build_model(seed=1), small_splits, config, seed=1, progress=False, log=None)
    assert seen == [False, False, False]


def test_the_command_line_entry_runs_end_to_end(tmp_path, data_root):
    cmd = [sys.executable, "-m", "utils.train", "--epochs", "1", "--subset", "256", "--seeds", "1", "2",
           "--out", str(tmp_path), "--data-root", str(data_root), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=repo_root())
    assert run.returncode == 0, run.stderr
    assert "epoch  1/1" in run.stdout and "test acc" in run.stdout
    metrics = json.loads((tmp_path / f"{FINAL}_seed1.json").read_text())
    for key in ("parameters", "epochs", "best_val_acc", "test_acc", "seconds", "torch", "device", "history"):
        assert key in metrics, key
    assert metrics["epochs"] == 1 and 0 <= metrics["test_acc"] <= 1
    assert metrics["parameters"] < 20_000
    summary = json.loads((tmp_path / f"{FINAL}_seeds.json").read_text())
    assert [s["seed"] for s in summary["seeds"]] == [1, 2]
    load_checkpoint(tmp_path / f"{FINAL}_seed1.pt", build_model())


def test_the_command_line_refuses_20_epochs_or_more():
    run = subprocess.run([sys.executable, "-m", "utils.train", "--epochs", "20"], capture_output=True, text=True,
                         timeout=120, cwd=repo_root())
    assert run.returncode == 2 and "fewer than 20" in run.stderr


def test_tf32_is_turned_off_inside_and_restored_after_through_one_torch_api():
    """--no-tf32 must not trip torch >= 2.9, which raises when its old and new TF32 flags are mixed (own process: global flags)."""
    code = ("import warnings; warnings.simplefilter('error'); from utils.engine import tf32_disabled, tf32_convolutions as on\n"
            "assert on()\nwith tf32_disabled():\n    assert not on()\nassert on()\nprint('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo_root())
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_a_gpu_without_tf32_is_recorded_as_computing_without_it(monkeypatch):
    """A T4 (compute capability 7.5) has no TF32, whatever torch allows; an A100 (8.0) uses it when allowed."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert tf32_convolutions() and not tf32_convolutions("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert tf32_convolutions("cuda") and tf32_convolutions("cpu")


def test_tf32_rounding_keeps_10_mantissa_bits_to_nearest():
    one_ulp = 2.0 ** -10  # TF32's step just above 1
    x = torch.tensor([1.0, 1 + one_ulp / 4, 1 + 3 * one_ulp / 4, -(1 + 3 * one_ulp / 4), 2 - one_ulp / 4, 0.0])
    assert round_to_tf32(x).tolist() == [1.0, 1.0, 1 + one_ulp, -(1 + one_ulp), 2.0, 0.0]
    r = torch.randn(10_000)
    assert ((round_to_tf32(r) - r).abs() <= r.abs() * 2.0 ** -11).all()  # half a step at most
    odd_nan = torch.tensor([0x7F800001, 0x7FFFFFFF, -1], dtype=torch.int32).view(torch.float32)  # NaNs whose bits could carry
    assert torch.isnan(round_to_tf32(odd_nan)).all() and torch.isinf(round_to_tf32(torch.tensor([float("inf")]))).all()
    with pytest.raises(InputError, match="float32"):
        round_to_tf32(r.double())
    model = build_model(FINAL, seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(8, 1, 28, 28)
    rounded = with_tf32_convolutions(model)
    assert not torch.equal(rounded(images), model(images))  # its convolutions read rounded numbers ...
    assert torch.allclose(rounded(images), model(images), atol=1e-2)  # ... close to the full ones
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the model itself is left as it was"


def test_a_summary_refuses_runs_with_and_without_tf32():
    from utils.train import RunsDisagreeError, summarize_seeds

    run = {"model": FINAL, "seed": 1, "epochs": 15, "subset": None, "config": {}, "test_acc": 0.995, "best_val_acc": 0.994,
           "best_epoch": 15, "seconds": 1.0, "parameters": 7464, "torch": "2.11", "device": "cuda", "cuda_tf32": True}
    with pytest.raises(RunsDisagreeError, match="TF32"):
        summarize_seeds([run, dict(run, seed=2, cuda_tf32=False)])
    assert summarize_seeds([dict(run, cuda_tf32=False), dict(run, seed=2, cuda_tf32=False)])["cuda_tf32"] is False
    cpu_run = {k: v for k, v in run.items() if k != "cuda_tf32"}  # CPU runs have no TF32 to record
    assert "cuda_tf32" not in summarize_seeds([dict(cpu_run, device="cpu"), dict(cpu_run, seed=2, device="cpu")])


def test_a_run_without_tf32_leaves_torchs_setting_as_it_found_it(tmp_path, data_root):
    from utils.train import train_model

    metrics = train_model(epochs=1, out=tmp_path, data_root=str(data_root), device="cpu", subset=64, test=False,
                          progress=False, log=lambda line: None, tf32=False)
    assert tf32_convolutions() and torch.backends.cudnn.allow_tf32  # restored, and the old flag still readable
    assert "cuda_tf32" not in metrics  # a CPU run has no TF32 to record
    assert metrics["test_acc"] is None and metrics["test_loss"] is None  # test=False: the test set is not touched


def test_a_summary_gives_the_seeds_mean_std_min_and_max():
    from utils.train import summarize_seeds

    run = {"model": FINAL, "parameters": 7464, "epochs": 15, "subset": None, "config": {}, "best_val_acc": 0.99,
           "best_epoch": 15, "seconds": 1.0, "torch": "2.x", "device": "cpu", "cpu_threads": 2}
    s = summarize_seeds([dict(run, seed=n, test_acc=acc) for n, acc in ((1, 0.9940), (2, 0.9950), (3, 0.9960))])
    assert [r["seed"] for r in s["seeds"]] == [1, 2, 3]
    assert (s["test_acc_min"], s["test_acc_max"]) == (0.9940, 0.9960)
    assert s["test_acc_mean"] == pytest.approx(0.9950) and s["test_acc_std"] == pytest.approx(0.0010)  # n - 1


def test_threads_set_on_the_command_line_are_the_ones_the_run_uses(tmp_path, monkeypatch):
    from utils import train

    seen, before = [], torch.get_num_threads()
    monkeypatch.setattr(train, "train_model", lambda *a, **k: seen.append(torch.get_num_threads()) or {})
    try:
        train.main(["--threads", "1", "--out", str(tmp_path), "--no-test"])
    finally:
        torch.set_num_threads(before)
    assert seen == [1]  # and train_model records torch.get_num_threads() as the run's cpu_threads


def test_a_run_too_short_for_its_averaged_weights_says_so():
    # one epoch of the final recipe: the EMA (decay 0.999) still holds 0.999 ** 390 = 68 % of its nearly random
    # start, so its accuracy is near chance although training works; the learner is told why, not left to guess
    from utils.engine import short_average_note

    steps = 391  # one epoch of 50,000 images in batches of 128
    note = short_average_note(replace(STEPS[FINAL].config, epochs=1), steps)
    assert note and "68 %" in note and "2996 steps, 8 epochs of the whole training split" in note
    # a subset's run is told what the whole split needs, not hundreds of its own tiny epochs
    assert "8 epochs of the whole" in short_average_note(replace(STEPS[FINAL].config, epochs=1), 4)
    assert short_average_note(STEPS[FINAL].config, steps) is None  # the recipe's 15 epochs are long enough
    assert short_average_note(replace(STEPS[FINAL].config, ema=0.0, epochs=1), steps) is None


def test_the_schedules_change_the_learning_rate_per_batch_as_their_recipes_say():
    from utils.engine import make_optimizer

    def lrs(config, steps=10):
        opt, sched = make_optimizer(build_model(seed=0), config, steps)
        out = []
        for _ in range(config.epochs * steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    one = lrs(TrainConfig(epochs=3, lr=0.2, schedule="onecycle"))
    assert max(one) == pytest.approx(0.2) and one[0] < 0.2 / 10 and one[-1] < one[0]  # up to lr, then far below
    assert 0.2 < one.index(max(one)) / len(one) < 0.4  # the peak about a third of the way in (torch's pct_start)
    step = lrs(TrainConfig(epochs=4, lr=0.1, schedule="step", step_size=2, gamma=0.1))
    assert step[:20] == [pytest.approx(0.1)] * 20 and step[20:] == [pytest.approx(0.01)] * 20  # step_size in epochs
    assert set(lrs(TrainConfig(epochs=2, lr=0.05, schedule="constant"))) == {0.05}
    for bad, says in ((dict(schedule="cosine"), "unknown schedule 'cosine'"), (dict(optimizer="rmsprop"), "unknown optimizer")):
        with pytest.raises(ValueError, match=says):
            make_optimizer(build_model(seed=0), TrainConfig(**bad), 10)
