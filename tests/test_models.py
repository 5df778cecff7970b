"""The final model meets the exercise's rules; the model tools report what they should."""

import pytest
import torch
import torch.nn as nn

from utils.models import (FINAL, STEPS, ChannelGate, Net, build_model, count_parameters, final_receptive_field,
                          multiply_adds, parameter_table, receptive_field, split_overrides, step_changes, step_settings)


@pytest.fixture
def final():
    return build_model(FINAL)


def test_final_model_is_under_the_parameter_budgets(final):
    n = sum(p.numel() for p in final.parameters())
    assert n == count_parameters(final)
    assert n < 20_000, "the exercise allows fewer than 20,000 parameters"
    assert n < 8_000, "our goal (issue 3) is fewer than 8,000"


def test_final_model_has_batchnorm_dropout_and_a_gap_or_fc_head(final):
    kinds = [type(m) for m in final.modules()]
    assert nn.BatchNorm2d in kinds
    assert any(issubclass(k, nn.modules.dropout._DropoutNd) for k in kinds)
    assert nn.AdaptiveAvgPool2d in kinds or nn.Linear in kinds


def test_every_step_builds_and_maps_a_batch_to_log_probabilities():
    x = torch.randn(5, 1, 28, 28)
    for name, step in STEPS.items():
        model = step.build().eval()
        out = model(x)
        assert out.shape == (5, 10), name
        assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-5), name
        assert (out <= 0).all(), name


def test_every_step_respects_the_budget_and_the_epoch_limit():
    for name, step in STEPS.items():
        assert count_parameters(step.build()) < 20_000, name
        assert step.config.epochs < 20, name


def test_receptive_field_of_the_skeleton_matches_a_hand_count():
    # conv3 -> conv3 -> pool2 -> conv3: RF 3, 5, 6, 10; sizes 26, 24, 12, 10; jump 1, 1, 2, 2
    rows = receptive_field(Net(["c8", "c16", "M", "c16", "G"], batchnorm=False))
    spatial = [(r["out"], r["rf"], r["jump"]) for r in rows[:5]]
    assert spatial == [(28, 1, 1), (26, 3, 1), (24, 5, 1), (12, 6, 2), (10, 10, 2)]
    assert rows[5]["out"] == 1 and rows[5]["rf"] == 28  # GAP sees the whole 28 x 28 image
    assert final_receptive_field(Net(["c8", "c16", "M", "c16", "G"])) == 10


def test_a_spec_without_a_head_or_with_an_unknown_layer_is_refused():
    with pytest.raises(ValueError, match="must end with the GAP head"):
        Net(["c8", "c16"])
    with pytest.raises(ValueError, match="unknown layer"):
        Net(["c8", "x3", "G"])
    with pytest.raises(ValueError, match="unknown layer"):
        Net(["c8q", "G"])


def test_a_padded_conv_keeps_the_map_size_and_adds_no_parameters():
    plain, padded = Net(["c8", "c16", "M", "c16", "G"]), Net(["c8p", "c16p", "M", "c16", "G"])
    assert count_parameters(plain) == count_parameters(padded)
    sizes = [r["out"] for r in receptive_field(padded)]
    assert sizes[:5] == [28, 28, 28, 14, 12]
    assert final_receptive_field(padded) == final_receptive_field(plain) == 10
    plain_sep, padded_sep = Net(["c8", "s16", "M", "s16", "G"]), Net(["c8p", "s16p", "M", "s16p", "G"])
    assert count_parameters(plain_sep) == count_parameters(padded_sep)
    # a padded separable conv pads its depthwise 3x3 only: input, c8p, depthwise, 1x1, pool, depthwise, 1x1
    assert [r["out"] for r in receptive_field(padded_sep)][:7] == [28, 28, 28, 28, 14, 14, 14]
    assert final_receptive_field(padded_sep) == final_receptive_field(plain_sep) == 10
    with pytest.raises(KeyError, match="unknown model"):
        build_model("nope")


def test_a_separable_conv_costs_a_depthwise_3x3_plus_a_1x1_and_grows_the_receptive_field_like_a_3x3():
    sep, full = Net(["c8", "s16", "G"], batchnorm=True), Net(["c8", "c16", "G"], batchnorm=True)
    head_and_first = 9 * 8 + 2 * 8 + 16 * 10
    assert count_parameters(sep) == head_and_first + 9 * 8 + 8 * 16 + 2 * 16
    assert count_parameters(full) == head_and_first + 9 * 8 * 16 + 2 * 16
    assert final_receptive_field(sep) == final_receptive_field(full) == 5
    assert [r["out"] for r in receptive_field(sep)][:4] == [28, 26, 24, 24]
    assert sep(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    depthwise = next(r for r in parameter_table(sep) if r["params"] == 9 * 8 and r["layer"] != "layers.0")
    assert depthwise["formula"] == "3·3·8"


def test_a_strided_conv_halves_the_map_like_the_pool_it_replaces_and_costs_what_its_kernel_costs():
    pooled, strided = Net(["c8p", "c16p", "M", "t8", "G"], dropout=0.1), Net(["c8p", "c16d", "t8", "G"], dropout=0.1)
    assert count_parameters(strided) == count_parameters(pooled)  # the pool had no weights; the conv's are the same
    assert [r["out"] for r in receptive_field(strided)][:4] == [28, 28, 14, 14]  # input, c8p, c16d, t8
    assert receptive_field(strided)[2]["jump"] == 2 and final_receptive_field(strided) == 5
    # computed at 14x14 positions, a quarter of the padded conv's 28x28
    assert multiply_adds(strided)[1]["multiply_adds"] * 4 == multiply_adds(pooled)[1]["multiply_adds"]
    sep = Net(["c8p", "c16p", "s8d", "G"], dropout=0.1)  # the depthwise 3x3 strides, its 1x1 does not
    depthwise, pointwise = [m for m in sep.modules() if isinstance(m, nn.Conv2d)][2:4]
    assert (depthwise.groups, depthwise.stride, pointwise.stride) == (16, (2, 2), (1, 1))
    assert count_parameters(sep) == count_parameters(pooled) + 9 * 16
    assert sep(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # Dropout once the maps are small: after the strided conv itself, as after each layer past a pool (never the last)
    assert [type(m).__name__ for m in strided.layers].count("Dropout") == 1
    assert [type(m).__name__ for m in pooled.layers].count("Dropout") == 0
    with pytest.raises(ValueError, match="unknown layer"):
        Net(["c8", "t8d", "G"])  # a 1x1 conv does not stride here


def test_parameter_table_explains_every_parameter_with_its_formula():
    for spec, batchnorm in [(["c8", "c16", "M", "c16", "G"], False), (list(STEPS[FINAL].spec), True)]:
        model = Net(spec, batchnorm=batchnorm)
        rows = parameter_table(model)
        assert sum(r["params"] for r in rows) == count_parameters(model)
        for r in rows:  # the formula, evaluated, is the count
            assert eval(r["formula"].replace("·", "*")) == r["params"], r
    rows = parameter_table(Net(["c8", "t4", "G"], batchnorm=True))
    assert [(r["type"], r["formula"]) for r in rows] == [
        ("Conv2d", "3·3·1·8"), ("BatchNorm2d", "2·8"), ("Conv2d", "1·1·8·4"), ("BatchNorm2d", "2·4"), ("Conv2d", "1·1·4·10")]
    assert parameter_table(Net(["c8", "G"], batchnorm=False))[0]["formula"] == "3·3·1·8 + 8"  # a bias without BatchNorm


def test_receptive_field_rows_follow_the_layer_by_layer_rule_and_place_the_windows():
    rows = receptive_field(Net(["c8p", "c16", "M", "t8", "c16", "G"]))
    for prev, row in zip(rows, rows[1:]):
        assert row["rf"] == prev["rf"] + (row["k"] - 1) * prev["jump"]
        assert row["jump"] == prev["jump"] * row["stride"]
    # c8p keeps 28 (its first window is centred on pixel 0), c16 -> 26 centred at 1, pool -> 13 at 1.5, ...
    assert [(r["out"], r["centre"]) for r in rows[1:6]] == [(28, 0.0), (26, 1.0), (13, 1.5), (13, 1.5), (11, 3.5)]


def test_step_changes_lists_every_setting_that_differs_and_nothing_else():
    assert step_changes("3_batchnorm", "4_dropout") == [("dropout", 0.0, 0.05)]
    changed = {k for k, _, _ in step_changes("5_augmentation", "6_onecycle")}
    assert changed == {"optimizer", "lr", "schedule"}
    assert step_changes(FINAL, FINAL) == []
    assert set(step_settings(FINAL)) >= {"spec", "batchnorm", "dropout", "lr", "batch_size", "degrees", "ema"}


def test_the_activation_is_a_choice_that_costs_no_parameters_and_unknown_ones_are_refused():
    relu, silu = Net(list(STEPS[FINAL].spec)), Net(list(STEPS[FINAL].spec), activation="silu")
    kinds = lambda m: {type(x).__name__ for x in m.modules()}  # noqa: E731
    assert "ReLU" in kinds(relu) and "SiLU" not in kinds(relu)
    assert "SiLU" in kinds(silu) and "ReLU" not in kinds(silu)
    assert count_parameters(silu) == count_parameters(relu)
    assert step_settings(FINAL)["activation"] == "relu"
    with pytest.raises(ValueError, match="unknown activation 'tanh'; choose one of relu, silu"):
        Net(["c8", "G"], activation="tanh")


def test_a_variations_overrides_split_into_the_models_options_and_the_recipes():
    assert split_overrides({"activation": "silu", "lr": 0.1}) == ({"activation": "silu"}, {"lr": 0.1})
    assert split_overrides({"clean_epochs": 2}) == ({}, {"clean_epochs": 2})


def test_multiply_adds_count_each_convolution_at_every_output_position_and_padding_only_adds_positions():
    plain, padded = Net(["c8", "s16", "G"]), Net(["c8p", "s16p", "G"])
    rows = multiply_adds(plain)
    # c8: 26x26 positions of 3·3·1·8; s16: a depthwise 3·3 per channel and a 1x1 8 -> 16, both on 24x24; head: 1x1 16 -> 10
    assert [r["multiply_adds"] for r in rows] == [26 * 26 * 72, 24 * 24 * 72, 24 * 24 * 128, 160]
    assert [r["out"] for r in multiply_adds(padded)][:3] == [28, 28, 28]
    assert [r["kind"] for r in rows] == ["3x3, 1 -> 8 channels", "depthwise 3x3, 8 -> 8 channels", "1x1, 8 -> 16 channels",
                                         "1x1, 16 -> 10 channels"]
    assert count_parameters(plain) == count_parameters(padded)
    assert sum(r["multiply_adds"] for r in multiply_adds(padded)) > sum(r["multiply_adds"] for r in rows)
    assert plain.training, "counting leaves the model in the mode it was in"


def test_channel_attention_gates_each_channel_by_its_neighbours_means_and_costs_three_weights_per_separable_layer():
    spec = list(STEPS[FINAL].spec)
    plain, gated = Net(spec), Net(spec, attention="eca")
    separable = sum(t.startswith("s") for t in spec)
    assert count_parameters(gated) - count_parameters(plain) == 3 * separable
    gate = ChannelGate()
    with torch.no_grad():
        gate.conv.weight.copy_(torch.tensor([[[0.0, 1.0, 0.0]]]))  # each channel's gate: the sigmoid of its own mean
    x = torch.zeros(2, 3, 4, 4)
    x[:, 1] = 2.0
    assert torch.allclose(gate(x)[:, 1], torch.full((2, 4, 4), 2.0 * torch.sigmoid(torch.tensor(2.0)).item()))
    assert torch.equal(gate(x)[:, 0], x[:, 0])
    assert final_receptive_field(gated) == final_receptive_field(plain)
    with pytest.raises(ValueError, match="unknown attention 'se'; choose one of none, eca"):
        Net(["c8", "G"], attention="se")
