"""Variations of a recipe of the road (round 1: step 6's, `6_onecycle`; later rounds: the final model's), judged on validation only.

    python scripts/try_recipes.py            # train every variation and seed that has no result file yet
    python scripts/try_recipes.py --jobs 2   # two at a time (one CPU thread each)
    python scripts/try_recipes.py --list     # what is there, without training
    python scripts/try_recipes.py --round 3  # round 3 (variations of the final model), likewise
    python scripts/try_recipes.py --round 10 --confirm  # a two-stage round's stage 2 (its finalist's fresh seeds)

Your runs go to runs/tried*/ (ignored by git). The published ones, in results/tried*/, are written only by
scripts/reproduce_results.sh, which passes --publish.

The test set is not touched. Each run of round 1 is step 6's recipe (`utils.models.TUNING_BASE`) with one or two changes (a
later round's, its base's; see `--help` for which round varies what), seeded like `utils.train`
(`torch.manual_seed(seed)` before the model is built, `fit(..., seed=seed)`), trained for the full
15 epochs with one CPU thread; its best validation accuracy is written to
results/tried/<variation>_seed<seed>.json (runs/tried/ without --publish), and `python -m utils.report` turns the
published ones into the README's table next to that recipe's own validation accuracy for the same seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from utils.data import load_mnist_arrays
from utils.engine import UnknownDeviceError, pick_device
from utils.models import STEPS, TUNING_BASE, split_overrides
from utils.train import PUBLISHED as RESULTS, RUNS, USER_ERRORS, one_line, print_user_error  # RUNS: ignored by git

OUT = RESULTS / "tried"
SEEDS = (1, 2)
_SPEC = " ".join(STEPS[TUNING_BASE].spec)
_P = STEPS[TUNING_BASE].dropout

# name: (what changes, spec, dropout, TrainConfig overrides)
VARIATIONS: dict[str, tuple[str, str, float, dict]] = {
    "batch64": ("batch 64 (twice the steps)", _SPEC, _P, {"batch_size": 64}),
    "batch256": ("batch 256, max lr 0.2 (half the steps, faster)", _SPEC, _P,
                 {"batch_size": 256, "lr": 0.2}),
    "deeper_rf26": ("five 3x3 convs after the pool, RF 26 px (7,928 params)",
                    "c8 c16 M t8 c10 c10 c12 c14 c16 G", 0.05, {}),
    "weight_decay": ("weight decay 5e-4", _SPEC, _P, {"weight_decay": 5e-4}),
    "max_lr_0.2": ("max lr 0.2", _SPEC, _P, {"lr": 0.2}),
    "dropout_0.02": ("dropout 0.02", _SPEC, 0.02, {}),
    "lr_0.2_dropout_0.02": ("max lr 0.2 + dropout 0.02", _SPEC, 0.02, {"lr": 0.2}),
    "lr_dropout_wd": ("max lr 0.2 + dropout 0.02 + weight decay 5e-4", _SPEC, 0.02,
                      {"lr": 0.2, "weight_decay": 5e-4}),
    "zoom_0.1": ("+ random zoom ±10 %", _SPEC, _P, {"scale": 0.1}),
}


# Round 2, for a margin above the bar on every run: variations of the final recipe (6b), judged on validation;
# each also reports the validation accuracy of its kept weights with test-time shifts (TTA).
# Adoption rule, written down after seeds 1-2 of every variation and before any test number of a
# candidate was read: among pad_nodrop_ema, pad_aug5 and pad_aug5_ema, the one with the highest
# five-seed mean best-validation accuracy becomes the final model if that mean beats 6b's five-seed
# mean (same round, same device) by at least 0.03 pp; otherwise 6b stays final. TTA is adopted only if
# it adds at least 0.03 pp to the winner's five-seed mean validation accuracy. Under 20,000
# parameters: the higher five-seed mean of stretch_6b and stretch_pad becomes the stretch model.
ROUND2_BASE = "6b_tuned_recipe"
ROUND2_OUT = RESULTS / "tried_round2"
ROUND2_SEEDS = (1, 2, 3, 4, 5)
_S6B = " ".join(STEPS[ROUND2_BASE].spec)
_P6B = STEPS[ROUND2_BASE].dropout
_PAD = "c8p c16p M t8 c10 c14 c16 c16"
_STRETCH_PAD = "c8p c16p M t12 c16 c24 c24 c32"
ROUND2: dict[str, tuple[str, str, float, dict]] = {
    "base": ("`6b_tuned_recipe` as it is", _S6B, _P6B, {}),
    "ema": ("EMA of the weights, decay 0.999", _S6B, _P6B, {"ema": 0.999}),
    "pad": ("padding in the first block (maps 28 -> 14 -> 6)", _PAD + " G", _P6B, {}),
    "pad_ema": ("padding + EMA 0.999", _PAD + " G", _P6B, {"ema": 0.999}),
    "pad_ema995": ("padding + EMA 0.995", _PAD + " G", _P6B, {"ema": 0.995}),
    "pad_aug5_ema": ("padding + rotation 5 deg, shift 3 % + EMA, dropout 0.01", _PAD + " G", 0.01,
                     {"degrees": 5.0, "translate": 0.03, "ema": 0.999}),
    "pad_ls": ("padding + label smoothing 0.05", _PAD + " G", _P6B, {"label_smoothing": 0.05}),
    "pad_nodrop_ema": ("padding + EMA, dropout 0.01", _PAD + " G", 0.01, {"ema": 0.999}),
    "pad_lr03": ("padding + max lr 0.3", _PAD + " G", _P6B, {"lr": 0.3}),
    "pad_b64": ("padding + batch 64, max lr 0.1", _PAD + " G", _P6B, {"batch_size": 64, "lr": 0.1}),
    "pad_aug10": ("padding + rotation 10 deg, shift 8 %", _PAD + " G", _P6B, {"degrees": 10.0, "translate": 0.08}),
    "pad_aug5": ("padding + rotation 5 deg, shift 3 %", _PAD + " G", _P6B, {"degrees": 5.0, "translate": 0.03}),
    "pad_wide": ("padding, wider late stack (c10 c14 c14 c18)", "c8p c16p M t8 c10 c14 c14 c18 G", _P6B, {}),
    "pad14": ("padding at 28 and 14 (maps 28 -> 14 -> 8)", "c8p c16p M t8 c10p c14 c16 c16 G", _P6B, {}),
    "pad_alt": ("padding, late stack c12 c14 c14 c16", "c8p c16p M t8 c12 c14 c14 c16 G", _P6B, {}),
    "stretch_6b": ("stretch spec with 6b's recipe (< 20k)", "c8 c16 M t12 c16 c24 c24 c32 G", _P6B, {}),
    "stretch_pad": ("stretch spec padded, 6b's recipe (< 20k)", _STRETCH_PAD + " G", _P6B, {}),
    "stretch_pad_ema": ("stretch spec padded, 6b's recipe + EMA (< 20k)", _STRETCH_PAD + " G", _P6B, {"ema": 0.999}),
}


# Round 3, the margin continued: variations of the final recipe (8_padding_ema) on
# this machine's CPU (one thread per run), combining the round-2 changes that had helped on their own.
# Adoption rule, written down before any of these runs started (and before any test number of a candidate
# exists): among b64, wide and wide_b64, the one with the highest five-seed mean best-validation accuracy
# becomes the final model if that mean beats 8_padding_ema's mean best-validation accuracy over the same seeds
# 1-5 (its published CPU runs in results/, same machine, torch and thread count) by at least 0.03 pp;
# otherwise 8_padding_ema stays final. Under 20,000 parameters: stretch_ema replaces 9_stretch_tuned if its
# five-seed mean beats 9_stretch_tuned's published seeds 1-5 by at least 0.03 pp. TTA as in round 2.
ROUND3_BASE = "8_padding_ema"
ROUND3_OUT = RESULTS / "tried_round3"
ROUND3_SEEDS = (1, 2, 3, 4, 5)
_S8 = " ".join(STEPS[ROUND3_BASE].spec)
_WIDE = "c8p c16p M t8 c10 c14 c14 c18 G"
ROUND3: dict[str, tuple[str, str, float, dict]] = {
    "b64": ("8 + batch 64, max lr 0.1", _S8, 0.01, {"batch_size": 64, "lr": 0.1}),
    "wide": ("8 with the wider late stack (c10 c14 c14 c18)", _WIDE, 0.01, {}),
    "wide_b64": ("8 with the wider late stack + batch 64, max lr 0.1", _WIDE, 0.01, {"batch_size": 64, "lr": 0.1}),
    "stretch_ema": ("stretch spec + EMA 0.999, dropout 0.01 (< 20k)", " ".join(STEPS["9_stretch_tuned"].spec), 0.01,
                    {}),
}

# Round 4: another allocation of the < 8,000 budget, on the same CPU: after step 8's first block, separable 3x3
# convs (a depthwise 3x3 then a 1x1), which cost about 1/9 + 1/C_out of a full 3x3 conv and so buy 2-3x the channels.
# Adoption rule, written down before any of these runs started, after round 3's seeds 1-2 (no test number of
# any candidate exists): the higher five-seed mean best-validation accuracy of sep4 and sep5 becomes the final
# model if it beats 8_padding_ema's published CPU runs of seeds 1-5 by at least 0.03 pp; otherwise step 8
# stays final. Same recipe as step 8 (padding, EMA 0.999, dropout 0.01, 15 epochs).
ROUND4_OUT = RESULTS / "tried_round4"
ROUND4: dict[str, tuple[str, str, float, dict]] = {
    "sep4": ("four separable convs after the pool (s24 s40 s40 s40), RF 22", "c8p c16p M t8 s24 s40 s40 s40 G", 0.01,
             {}),
    "sep5": ("five separable convs after the pool (s24 s32 s32 s36 s40), RF 26", "c8p c16p M t8 s24 s32 s32 s36 s40 G",
             0.01, {}),
}

# Round 5: where the separable layers sit in 10_separable, on the same CPU (one thread per run). Two ideas, alone and
# together: more channels at full resolution (the first block as c16p s24p: 16 features at 28x28 instead of 8, paid
# for by making its second conv separable), and a second max-pool after two padded separable convs at 14x14, so the
# last convs work on 7x7 maps and the receptive field grows from 22 to 40 px for almost no parameters.
# Adoption rule, written down before any of these runs started (no test number of any candidate exists): the
# candidate with the highest five-seed mean best-validation accuracy among pool2, wide28 and wide28_pool2 becomes
# the final model (as step 11) if that mean beats 10_separable's published CPU runs of seeds 1-5 (same machine,
# torch and thread count) by at least 0.03 pp; otherwise 10_separable stays final. Test-time augmentation (5 or 9
# shifts) is adopted with it only if it adds at least 0.03 pp to the adopted candidate's five-seed mean validation
# accuracy. Same recipe as step 10 (EMA 0.999, dropout 0.01, 15 epochs).
ROUND5_BASE = "10_separable"
ROUND5_OUT = RESULTS / "tried_round5"
ROUND5: dict[str, tuple[str, str, float, dict]] = {
    "pool2": ("a second max-pool: c8p c16p M t8 s16p s24p M s32p s40 s48, RF 40", "c8p c16p M t8 s16p s24p M s32p s40 s48 G",
              0.01, {}),
    "wide28": ("16 channels at 28x28: c16p s24p M t12 s24 s40 s40 s40, RF 22", "c16p s24p M t12 s24 s40 s40 s40 G",
               0.01, {}),
    "wide28_pool2": ("both: c16p s24p M t12 s16p s24p M s32p s40 s48, RF 40", "c16p s24p M t12 s16p s24p M s32p s40 s48 G",
                     0.01, {}),
}

# Round 6: the < 20,000-parameter model rebuilt with the separable layers of rounds 4-5, on the same CPU. Step 9 has
# step 10's first block (padded) and recipe (EMA 0.999, dropout 0.01) in both, and then either four wide separable
# convs (round 4's layout, 48-72 channels) or round 5's two pools (padded separable convs at 14x14 and 7x7, RF 40).
# Adoption rule, written down before any of these runs started, after round 5's seeds 1-4 (validation only; no test
# number of any candidate exists): the higher five-seed mean best-validation accuracy of stretch_sep and
# stretch_pool2 replaces 9_stretch_tuned as the < 20,000-parameter model if it beats 9_stretch_tuned's published CPU
# runs of seeds 1-5 by at least 0.03 pp; otherwise step 9 stays. TTA as in round 5.
ROUND6_BASE = "9_stretch_tuned"
ROUND6_OUT = RESULTS / "tried_round6"
ROUND6: dict[str, tuple[str, str, float, dict]] = {
    "stretch_sep": ("four separable convs after the pool: c8p c16p M t12 s48 s64 s64 s72, RF 22 (< 20k)",
                    "c8p c16p M t12 s48 s64 s64 s72 G", 0.01, {"ema": 0.999}),
    "stretch_pool2": ("two pools: c8p c16p M t12 s24p s40p M s56p s72 s80, RF 40 (< 20k)",
                      "c8p c16p M t12 s24p s40p M s56p s72 s80 G", 0.01, {"ema": 0.999}),
}

# Round 7: a kind of augmentation not tried yet, on the same CPU. An elastic warp (utils.augment.elastic_field, after
# Simard et al., 2003) bends each training image's strokes smoothly by up to about 1.5 px, on top of step 10's
# rotation and shift; the model and the rest of the recipe are step 10's.
# Adoption rule, written down before any of these runs started, once round 5's outcome was settled (its last run could
# not change it; validation only; no test number of any candidate exists): el15 becomes the final model if its
# five-seed mean best-validation accuracy beats 10_separable's published CPU runs of seeds 1-5 by at least 0.03 pp;
# otherwise 10_separable stays final. TTA as in round 5.
ROUND7_OUT = RESULTS / "tried_round7"
ROUND7: dict[str, tuple[str, str, float, dict]] = {
    "el15": ("+ elastic warp up to about 1.5 px", " ".join(STEPS[ROUND5_BASE].spec), 0.01, {"elastic": 1.5}),
}

# Round 8: step 10's recipe, never tuned for its separable layers, varied on a GPU (torch 2.11, CUDA), where many runs
# fit at once: weight decay, a lower and a higher peak learning rate, a slower EMA, more dropout, and stronger
# augmentation. With six candidates the best five-seed mean would beat the base by about 0.07 pp by luck alone (the
# spread of a five-seed mean is about 0.04 pp), so this round has two stages.
# Adoption rule, written down before any of these runs started (validation only; no test number of any candidate
# exists): stage 1: the candidate with the highest five-seed (1-5) mean best-validation accuracy goes on to stage 2 if
# that mean beats 10_separable's GPU runs of seeds 1-5 (results/gpu/, trained in the same job) by at least 0.03 pp.
# Stage 2: it trains seeds 6-10, and becomes the final model only if their mean best-validation accuracy also beats
# 10_separable's GPU seeds 6-10 by at least 0.03 pp (fresh seeds, so the luck of being picked does not count).
# Otherwise 10_separable stays final. TTA as in round 5.
ROUND8_OUT = RESULTS / "tried_round8"
_S10 = " ".join(STEPS[ROUND5_BASE].spec)
ROUND8: dict[str, tuple[str, str, float, dict]] = {
    "wd1e4": ("+ weight decay 1e-4", _S10, 0.01, {"weight_decay": 1e-4}),
    "lr01": ("max lr 0.1 instead of 0.2", _S10, 0.01, {"lr": 0.1}),
    "lr04": ("max lr 0.4 instead of 0.2", _S10, 0.01, {"lr": 0.4}),
    "ema9995": ("EMA decay 0.9995 instead of 0.999", _S10, 0.01, {"ema": 0.9995}),
    "drop05": ("dropout 0.05 instead of 0.01", _S10, 0.05, {}),
    "aug10": ("rotation 10 deg, shift 8 % instead of 7 deg, 5 %", _S10, 0.01, {"degrees": 10.0, "translate": 0.08}),
}

# Round 10: which weights are kept, on this machine's CPU (one thread per run). Step 10 keeps the EMA of its weights, but
# the EMA's BatchNorm statistics are an average of statistics measured on other weights (its validation accuracy is
# 10 % for two epochs). Three candidates, each with step 10's model and training: bnfix measures the EMA's BatchNorm
# statistics afresh on 10,000 training images before each validation; swa11 keeps the plain average of the live weights
# at the end of epochs 11 to 15 (SWA), statistics measured likewise; kd05 is bnfix whose kept model also teaches the
# live one (self-distillation: half of the loss is the cross-entropy with its predictions, ramped up over epochs 2-6),
# within the same 15 epochs. bnfix and swa11 train exactly like step 10 (same live weights); only kd05's path differs.
# Adoption rule, written down before any of these runs started (validation only; no test number of any candidate
# exists): stage 1: the candidate with the highest five-seed (1-5) mean best-validation accuracy goes on to stage 2 if
# that mean beats 10_separable's published CPU runs of seeds 1-5 by at least 0.03 pp. Stage 2: it trains seeds 6-10 and
# becomes the final model (step 11) only if their mean also beats 10_separable's CPU seeds 6-10 by at least 0.03 pp.
# Otherwise 10_separable stays final. TTA as in round 5.
ROUND10_OUT = RESULTS / "tried_round10"
ROUND10: dict[str, tuple[str, str, float, dict]] = {
    "bnfix": ("BatchNorm statistics of the EMA measured afresh", _S10, 0.01, {"bn_recompute": True}),
    "swa11": ("SWA of epochs 11-15 instead of the EMA, statistics afresh", _S10, 0.01, {"swa_start": 11}),
    "kd05": ("bnfix + self-distillation from the kept model, weight 0.5", _S10, 0.01,
             {"bn_recompute": True, "distill": 0.5}),
}

# Round 11: what the last epochs train on, on this machine's CPU (one thread per run). Step 10 trains every epoch on
# rotated and shifted digits, while validation and test show them as they are; the model's training accuracy on its
# augmented batches (about 99.6 % in the last epoch) is barely above its validation accuracy, so it is short of capacity,
# and spends some of it on digits it will never be shown. clean2 and clean4 turn the augmentation off for the last 2
# or 4 of the 15 epochs (TrainConfig.clean_epochs), where the learning rate is low, so the weights and the EMA (about
# 1,000 steps, 2.6 epochs) finish on digits as they are. Everything else is step 10's, and the epochs before the switch
# draw the same random numbers as step 10's.
# Adoption rule, written down before any of these runs started (validation only; no test number of any candidate
# exists): stage 1: the candidate with the higher five-seed (1-5) mean best-validation accuracy goes on to stage 2 if
# that mean beats 10_separable's published CPU runs of seeds 1-5 by at least 0.03 pp. Stage 2: it trains seeds 6-10 and
# becomes the final model (step 11) only if their mean also beats 10_separable's CPU seeds 6-10 by at least 0.03 pp.
# Otherwise 10_separable stays final. TTA as in round 5.
ROUND11_OUT = RESULTS / "tried_round11"
ROUND11: dict[str, tuple[str, str, float, dict]] = {
    "clean2": ("no augmentation in the last 2 epochs", _S10, 0.01, {"clean_epochs": 2}),
    "clean4": ("no augmentation in the last 4 epochs", _S10, 0.01, {"clean_epochs": 4}),
}

# Round 12: the activation, on this machine's CPU (one thread per run). Every convolution of step 10 is followed by ReLU,
# max(0, x), which passes no gradient for negative inputs: a unit whose input is negative for a digit learns nothing
# from it. SiLU, x·sigmoid(x), is a smooth ReLU: it lets small negative values and their gradients through, and is
# reported to help small networks (Ramachandran et al., 2017, "Searching for activation functions"); it adds no
# parameters. One candidate, so the best of several does not profit from luck: silu is step 10 with SiLU after every
# convolution's BatchNorm, everything else step 10's.
# Adoption rule, written down before any of these runs started (validation only; no test number of any candidate
# exists): stage 1: silu goes on to stage 2 if its five-seed (1-5) mean best-validation accuracy beats 10_separable's
# published CPU runs of seeds 1-5 by at least 0.03 pp. Stage 2: it trains seeds 6-10 and becomes the final model (step 11)
# only if their mean also beats 10_separable's CPU seeds 6-10 by at least 0.03 pp. Otherwise 10_separable stays final.
# TTA as in round 5.
ROUND12_OUT = RESULTS / "tried_round12"
ROUND12: dict[str, tuple[str, str, float, dict]] = {
    "silu": ("SiLU instead of ReLU after every convolution", _S10, 0.01, {"activation": "silu"}),
}

# Round 13: round 12's candidate again, with enough seeds to see a gain of the rules' margin, on a GPU. Rounds 3-12 gave
# each candidate 5 seeds (10 for a finalist), and the difference of two five-seed means has a standard error of about
# 0.026 pp: a true gain of 0.03 pp reaches z >= 2 only about one time in five, and 21 candidates did not tell a small
# real gain from luck. With 36 seeds per side the standard error falls to about 0.011 pp, so a true gain of 0.03 pp
# reaches z >= 2 about 80 % of the time (utils.report.search_verdict's "seeds_for_margin"), and with no true gain z >= 2
# comes by luck about one time in 44. The candidate was named and written down before these runs, after round 12:
# silu (+0.007 pp over its 10 CPU seeds), round 12's variation unchanged; one candidate, so no best-of-several luck.
# The base is 10_separable on the same GPU kind and torch: its published GPU seeds 1-10 (results/gpu/, trained when
# round 8 ran) and seeds 11-36, trained with the published command in the same job as silu's
# (`bash scripts/reproduce_results.sh gpu13`; they are the published final model, so they are tested too, as every
# published seed is).
# Adoption rule, written down before any of these runs started (validation only; no test number of silu exists): silu
# becomes the final model (step 11) if its mean best-validation accuracy over seeds 1-36 beats 10_separable's GPU seeds
# 1-36 by at least 2 standard errors of the difference (se = sqrt(sd_silu^2 / n + sd_base^2 / n), the sds of the two
# sets of runs); otherwise 10_separable stays final. The runs are launched in seed order; if the device time runs out
# first, the rule is applied to seeds 1-K, the longest run of seeds from 1 that both have, if K >= 24, and the round
# stays undecided otherwise. TTA as in round 5.
ROUND13_OUT = RESULTS / "tried_round13"
ROUND13_SEEDS = tuple(range(1, 37))
ROUND13: dict[str, tuple[str, str, float, dict]] = {"silu": ROUND12["silu"]}

# Round 17: where the separable stack works, on this machine's CPU (one thread per run). Step 10's separable convs after
# the pool are unpadded, so its maps shrink 14 -> 12 -> 10 -> 8 -> 6 and the last conv works on 36 positions. Step 8
# gained its margin from padding in the first block (the same parameters applied at more positions), and round 2's
# padding at 28 and 14 gained +0.040 pp on two seeds without being followed up. pad14 pads all four separable convs, so
# every one works on the whole 14x14 map: the same 7,464 parameters, the same receptive field (22 px), about 1.5 times
# the multiply-adds per image (twice the time per training step on this CPU). One candidate, so the best of several
# does not profit from luck; everything else is step 10's.
# Adoption rule, written down before any of these runs started (validation only; no test number of pad14 exists):
# stage 1: pad14 goes on to stage 2 if its five-seed (1-5) mean best-validation accuracy beats 10_separable's published
# CPU runs of seeds 1-5 by at least 0.03 pp. Stage 2: it trains seeds 6-10 and becomes the final model (step 11) only if
# their mean also beats 10_separable's CPU seeds 6-10 by at least 0.03 pp. Otherwise 10_separable stays final. TTA as
# in round 5.
ROUND17_OUT = RESULTS / "tried_round17"
ROUND17: dict[str, tuple[str, str, float, dict]] = {
    "pad14": ("separable convs padded: maps stay 14x14 (c8p c16p M t8 s24p s40p s40p s40p)",
              "c8p c16p M t8 s24p s40p s40p s40p G", 0.01, {}),
}

# Round 18: channel attention, on this machine's CPU (one thread per run). Each layer of step 10 weighs its channels the
# same for every digit: a feature that matters for a 4 but not for a 1 costs its full share of a narrow layer either
# way. Efficient channel attention (ECA; Wang et al., 2020, "ECA-Net", after the squeeze-and-excitation blocks of Hu et
# al., 2018) lets a layer rescale its channels per image: it averages each channel over the map, runs a 1-D convolution
# of 3 weights along the channels, and multiplies each channel by the sigmoid of the result (utils.models.ChannelGate).
# eca puts one after every separable conv of step 10: 3 weights each, 12 in all (7,476 parameters), the same receptive
# field for every convolution, about 8 % more time per training step on this CPU. Round 17's result (padding the same
# layers hurt) was known when this round was chosen; no other result of this model was. One candidate, so the best of
# several does not profit from luck; everything else is step 10's.
# Adoption rule, written down before any of these runs started (validation only; no test number of eca exists): stage 1:
# eca goes on to stage 2 if its five-seed (1-5) mean best-validation accuracy beats 10_separable's published CPU runs of
# seeds 1-5 by at least 0.03 pp. Stage 2: it trains seeds 6-10 and becomes the final model (step 11) only if their mean
# also beats 10_separable's CPU seeds 6-10 by at least 0.03 pp. Otherwise 10_separable stays final. TTA as in round 5.
ROUND18_OUT = RESULTS / "tried_round18"
ROUND18: dict[str, tuple[str, str, float, dict]] = {
    "eca": ("channel attention (ECA, 3 weights) after every separable conv", _S10, 0.01, {"attention": "eca"}),
}

# Round 19: a learned downsampling instead of the max-pool, on this machine's CPU (one thread per run). Step 10 halves
# its maps (28 -> 14) with a 2x2 max-pool, which keeps the largest of four values and learns nothing. A strided
# convolution computes its 3x3 windows two pixels apart, so it halves the map too, with weights that learn what to keep
# (Springenberg et al., 2015, "Striving for Simplicity: The All Convolutional Net"). strided makes step 10's second conv
# strided (c16d) in place of c16p and M: the same 7,464 parameters, that conv computed at 14x14 positions instead of
# 28x28, receptive field 21 px instead of 22. strided_sep puts a strided separable conv (a depthwise 3x3 at stride 2,
# then the 1x1 to 8 channels: s8d) in place of M and t8: 144 more weights (7,608 parameters), receptive field 23 px.
# Everything else is step 10's. The results of rounds 3-18 were known when this round was chosen; no result of either
# candidate was.
# Adoption rule, written down before any of these runs started (validation only; no test number of either candidate
# exists): stage 1: the candidate with the higher five-seed (1-5) mean best-validation accuracy goes on to stage 2 if
# that mean beats 10_separable's published CPU runs of seeds 1-5 by at least 0.03 pp. Stage 2: it trains seeds 6-10 and
# becomes the final model (step 11) only if their mean also beats 10_separable's CPU seeds 6-10 by at least 0.03 pp.
# Otherwise 10_separable stays final. TTA as in round 5.
ROUND19_OUT = RESULTS / "tried_round19"
ROUND19: dict[str, tuple[str, str, float, dict]] = {
    "strided": ("the second conv strided instead of the max-pool (c8p c16d t8 s24 s40 s40 s40)",
                "c8p c16d t8 s24 s40 s40 s40 G", 0.01, {}),
    "strided_sep": ("a strided separable conv instead of the max-pool and t8 (c8p c16p s8d s24 s40 s40 s40)",
                    "c8p c16p s8d s24 s40 s40 s40 G", 0.01, {}),
}

# round: (variations, seeds, output folder, the step whose recipe they vary)
ROUNDS = {1: (VARIATIONS, SEEDS, OUT, TUNING_BASE), 2: (ROUND2, ROUND2_SEEDS, ROUND2_OUT, ROUND2_BASE),
          3: (ROUND3, ROUND3_SEEDS, ROUND3_OUT, ROUND3_BASE), 4: (ROUND4, ROUND3_SEEDS, ROUND4_OUT, ROUND3_BASE),
          5: (ROUND5, ROUND3_SEEDS, ROUND5_OUT, ROUND5_BASE), 6: (ROUND6, ROUND3_SEEDS, ROUND6_OUT, ROUND6_BASE),
          7: (ROUND7, ROUND3_SEEDS, ROUND7_OUT, ROUND5_BASE), 8: (ROUND8, ROUND3_SEEDS, ROUND8_OUT, ROUND5_BASE),
          10: (ROUND10, ROUND3_SEEDS, ROUND10_OUT, ROUND5_BASE), 11: (ROUND11, ROUND3_SEEDS, ROUND11_OUT, ROUND5_BASE),
          12: (ROUND12, ROUND3_SEEDS, ROUND12_OUT, ROUND5_BASE), 13: (ROUND13, ROUND13_SEEDS, ROUND13_OUT, ROUND5_BASE),
          17: (ROUND17, ROUND3_SEEDS, ROUND17_OUT, ROUND5_BASE), 18: (ROUND18, ROUND3_SEEDS, ROUND18_OUT, ROUND5_BASE),
          19: (ROUND19, ROUND3_SEEDS, ROUND19_OUT, ROUND5_BASE)}


def output_folder(out: Path, publish: bool) -> Path:
    """Where a round's runs go: its folder in results/ if `publish` (scripts/reproduce_results.sh), else the same under runs/."""
    return out if publish else RUNS / out.relative_to(RESULTS)


def confirm_folder(out: Path) -> Path:
    """Where a two-stage round's stage 2 (its finalist on fresh seeds) writes its runs."""
    return out.with_name(out.name + "_confirm")


def run_one(name: str, seed: int, data_root: str | None = None, device: str = "cpu", round_: int = 1,
            confirm: bool = False, publish: bool = False) -> dict:
    """Train one variation with one seed (one CPU thread) and write its result file (validation only)."""
    import torch

    from utils.data import load_splits
    from utils.engine import TTA_SHIFTS, fit, tta_accuracies
    from utils.models import Net, count_parameters

    table, _, out, base = ROUNDS[round_]
    change, spec, dropout, overrides = table[name]
    torch.set_num_threads(1)
    model_options, recipe = split_overrides(overrides)
    config = replace(STEPS[base].config, **recipe)
    splits = load_splits(data_root, device=device)
    torch.manual_seed(seed)
    model = Net(spec.split(), True, dropout, **model_options)
    start = time.perf_counter()
    history = fit(model, splits, config, seed=seed, progress=False, log=None)
    result = {"name": name, "change": change, "seed": seed, "spec": spec.split(), "dropout": dropout,
              "overrides": overrides, "params": count_parameters(model), "best_val": history["best_val_acc"],
              "best_epoch": history["best_epoch"], "val": history["val_acc"], "train": history["train_acc"],
              "seconds": time.perf_counter() - start, "torch": torch.__version__}
    if round_ > 1:
        result["base"] = base
        result["device"] = str(splits.train_x.device)
        if "live_val_acc" in history:
            result["live_val"] = history["live_val_acc"]
        result["tta_val"] = tta_accuracies(model, splits.val_x, splits.val_y, [k for k in TTA_SHIFTS if k != "none"],
                                           splits.background)
    out = output_folder(out, publish)
    out = confirm_folder(out) if confirm else out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}_seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train the variations that have no result file yet."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, one thread each (default 1)")
    ap.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $MNIST_ROOT, else data/)")
    ap.add_argument("--list", action="store_true",
                    help="count the round's runs that have no result file yet, and name them; train nothing")
    ap.add_argument("--names", action="store_true", help="print the round's variation names; train nothing")
    ap.add_argument("--seeds", action="store_true", help="print the round's seeds; train nothing")
    ap.add_argument("--round", type=int, choices=sorted(ROUNDS), default=1,
                    help="1: variations of step 6's recipe; 2-5, 7, 8, 10-13 and 17-19: of the final model's; 6: of the < 20k model's "
                         "(default 1; round 9 is scripts/try_tta.py)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--only", nargs="+", help="only these variations")
    ap.add_argument("--confirm", action="store_true",
                    help="a two-stage round's stage 2: the fresh seeds of the finalist its published stage 1 picked, if any")
    ap.add_argument("--publish", action="store_true",
                    help="write to results/, the published runs (scripts/reproduce_results.sh passes it); "
                         "default: runs/, ignored by git")
    ap.add_argument("--one", nargs=2, metavar=("NAME", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.one:
        run_one(args.one[0], int(args.one[1]), args.data_root, args.device, args.round, args.confirm, args.publish)
        return 0
    table, seeds, out, _ = ROUNDS[args.round]
    out = output_folder(out, args.publish)
    unknown = [n for n in args.only or [] if n not in table]
    if unknown:
        ap.error(f"round {args.round} has no variation {', '.join(map(repr, unknown))}; its variations: {' '.join(table)}")
    names = args.only or list(table)
    if args.confirm:  # stage 2: the finalist of the published stage 1 (if any), on the round's fresh seeds
        from utils.report import LATE_RULES, round_finalist

        two_stage = [r for r, rule in LATE_RULES.items() if "confirm" in rule]
        if args.round not in two_stage:
            ap.error(f"round {args.round} has one stage, so --confirm has nothing to train; the two-stage rounds: "
                     f"{' '.join(map(str, two_stage))}")
        finalist, seeds = round_finalist(args.round), LATE_RULES[args.round]["confirm"]
        names, out = ([finalist] if finalist else []), confirm_folder(out)
        if not (args.names or args.seeds):
            print(f"round {args.round}, stage 1: " + (f"{finalist} goes on to seeds {list(seeds)}" if finalist
                                                     else "no candidate goes on"), flush=True)
    if args.names or args.seeds:
        print(" ".join(names) if args.names else " ".join(map(str, seeds)))
        return 0
    todo = [(n, s) for s in seeds for n in names if not (out / f"{n}_seed{s}.json").is_file()]
    if args.list:
        print(f"{len(todo)} of {len(names) * len(seeds)} runs missing"
              + (": " + ", ".join(f"{n} seed {s}" for n, s in todo) if todo else "") + f" (in {out})")
        return 0
    try:  # what every run needs, checked once before the first starts
        pick_device(args.device, left_out="to train on the CPU, as the published rounds did")
        load_mnist_arrays(args.data_root)  # downloaded if missing; its files checked
    except UnknownDeviceError as err:  # a misspelt value, like any bad option: status 2
        ap.error(one_line(err))
    except USER_ERRORS as err:
        return print_user_error(ap.prog, err)
    failed = []

    def launch(job):
        if failed:  # after a failure, start no more runs
            return
        cmd = [sys.executable, __file__, "--one", job[0], str(job[1]), "--device", args.device,
               "--round", str(args.round)] + (["--confirm"] if args.confirm else []) + (["--publish"] if args.publish else [])
        if args.data_root:
            cmd += ["--data-root", args.data_root]
        if subprocess.run(cmd).returncode != 0:
            failed.append(job)
            return
        print(f"done: {job[0]} seed {job[1]}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(launch, todo))
    if failed:
        print(f"{ap.prog}: error: {failed[0][0]} seed {failed[0][1]} failed (its error is above); no more runs were "
              f"started, and the finished ones are kept: run the same command again to train what is missing",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
