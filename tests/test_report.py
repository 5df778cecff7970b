"""utils.report's judgements on result files: rounds 3-10's adoption rules decide as the rules say; overfitting is read from validation."""

import json
import statistics
from statistics import NormalDist

import pytest

from utils.report import (ADOPTION_MIN_GAIN, LATE_BASE, LATE_RULES, LATE_SEEDS, RESULTS, TTA_RULE, all_seeds, compare_devices,
                          devices_verdict, fisher_exact_p, late_round_decision, late_round_outcome, late_round_table, setup_words, chance_of_at_least,
                          overfitting_verdict, reaches_margin, round_base, round_finalist, same_seeds_comparison,
                          search_verdict, search_z_scores, tta_outcome, count_of, rate_upper_bound, clean_runs_needed, runs_needed, bar_verdict,
                          seed_ranges, gpu_models_sentence, same_seed_correlation,
                          identical_runs, ALLOWED_BELOW, chance_of_at_most)

RULE = LATE_RULES[3]


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def _results(tmp_path, gains: dict, stretch_gain: float, seeds=LATE_SEEDS):
    """Fake published runs (base 99.30 %, stretch base 99.40 %) and round-3 files at base + gain, per seed."""
    for s in LATE_SEEDS:
        for step, val in ((LATE_BASE, 0.9930), (RULE["stretch_base"], 0.9940)):
            _write(tmp_path, f"{step}_seed{s}.json", {"seed": s, "best_val_acc": val, "parameters": 7988,
                                                      "device": "cpu"})
    for name, (base, gain) in {**{n: (0.9930, g) for n, g in gains.items()},
                               RULE["stretch_candidate"]: (0.9940, stretch_gain)}.items():
        for s in seeds:
            _write(tmp_path / "tried_round3", f"{name}_seed{s}.json",
                   {"name": name, "change": name, "seed": s, "params": 7000, "best_val": base + gain,
                    "tta_val": {"cross1": base, "square1": base}})
    return tmp_path


def test_the_best_candidate_is_adopted_only_with_the_margin(tmp_path):
    o = late_round_outcome(3, _results(tmp_path, {"b64": 0.0001, "wide": 0.0004, "wide_b64": 0.0002}, 0.0002))
    assert o["best"]["name"] == "wide" and o["gain"] == pytest.approx(0.0004)
    assert o["adopted"] and not o["stretch_adopted"]
    text = late_round_decision(3, tmp_path)
    assert "+0.040 pp: **adopted**" in text and "+0.020 pp: **not adopted**" in text


def test_a_gain_under_the_margin_keeps_the_base(tmp_path):
    o = late_round_outcome(3, _results(tmp_path, {"b64": 0.0002, "wide": -0.0001, "wide_b64": 0.0}, 0.0005))
    assert o["best"]["name"] == "b64" and not o["adopted"] and o["stretch_adopted"]
    assert f"`{LATE_BASE}` stayed the final model" in late_round_decision(3, tmp_path)


def test_no_decision_before_every_seed_is_in(tmp_path):
    _results(tmp_path, {"b64": 0.001, "wide": 0.001, "wide_b64": 0.001}, 0.001, seeds=LATE_SEEDS[:-1])
    assert late_round_outcome(3, tmp_path) is None
    assert "not complete" in late_round_decision(3, tmp_path)


def test_a_stretch_candidate_is_compared_with_its_own_base_in_the_table(tmp_path):
    _results(tmp_path, {"b64": 0.0, "wide": 0.0, "wide_b64": 0.0}, 0.0005)
    row = next(line for line in late_round_table(3, tmp_path).splitlines() if line.startswith(f"| {RULE['stretch_candidate']}"))
    assert "| +0.050 |" in row  # against 99.40 %, not against the < 8k base's 99.30 %


def test_a_later_round_is_judged_against_the_model_it_varies_not_step_8(tmp_path):
    base = LATE_RULES[5]["base"]
    assert round_base(5) == base != LATE_BASE and round_base(4) == LATE_BASE
    for s in LATE_SEEDS:
        for step, val in ((LATE_BASE, 0.9900), (base, 0.9940)):
            _write(tmp_path, f"{step}_seed{s}.json", {"seed": s, "best_val_acc": val, "parameters": 7000, "device": "cpu"})
        for name in LATE_RULES[5]["candidates"]:
            _write(tmp_path / "tried_round5", f"{name}_seed{s}.json",
                   {"name": name, "change": name, "seed": s, "params": 7000, "best_val": 0.9942,
                    "tta_val": {"cross1": 0.9942, "square1": 0.9942}})
    o = late_round_outcome(5, tmp_path)
    assert o["gain"] == pytest.approx(0.0002) and not o["adopted"]  # +0.02 pp over step 10, not +0.42 over step 8
    assert f"`{base}` stayed the final model" in late_round_decision(5, tmp_path)


def _round8(tmp_path, gains: dict, confirm_gain=None):
    """Fake GPU base runs (99.40 %, seeds 1-10, in gpu/) and round-8 candidates at base + gain; the finalist's fresh seeds."""
    rule = LATE_RULES[8]
    for s in LATE_SEEDS + rule["confirm"]:
        _write(tmp_path / "gpu", f"{rule['base']}_seed{s}.json", {"seed": s, "best_val_acc": 0.9940, "parameters": 7464,
                                                                 "device": "cuda"})
        _write(tmp_path, f"{rule['base']}_seed{s}.json", {"seed": s, "best_val_acc": 0.9900, "parameters": 7464,
                                                          "device": "cpu"})  # the CPU runs must not be the base
    for name in rule["candidates"]:
        for s in LATE_SEEDS:
            _write(tmp_path / "tried_round8", f"{name}_seed{s}.json",
                   {"name": name, "change": name, "seed": s, "params": 7464, "best_val": 0.9940 + gains.get(name, 0.0),
                    "tta_val": {"cross1": 0.9940, "square1": 0.9940}})
    finalist = round_finalist(8, tmp_path)
    if confirm_gain is not None and finalist:
        for s in rule["confirm"]:
            _write(tmp_path / "tried_round8_confirm", f"{finalist}_seed{s}.json",
                   {"name": finalist, "change": finalist, "seed": s, "params": 7464, "best_val": 0.9940 + confirm_gain,
                    "tta_val": {"cross1": 0.9940, "square1": 0.9940}})
    return finalist


def test_round_8_is_judged_against_the_gpu_runs_and_a_finalist_must_win_again_on_fresh_seeds(tmp_path):
    assert _round8(tmp_path, {"lr04": 0.0002}) is None  # +0.02 pp over the GPU base: nobody goes on
    assert not late_round_outcome(8, tmp_path)["adopted"]
    assert "no candidate went on to fresh seeds: **not adopted**" in late_round_decision(8, tmp_path)
    assert _round8(tmp_path, {"lr04": 0.0006, "wd1e4": 0.0004}) == "lr04"
    assert late_round_outcome(8, tmp_path) is None, "no decision before the finalist's fresh seeds are in"
    _round8(tmp_path, {"lr04": 0.0006, "wd1e4": 0.0004}, confirm_gain=0.0001)  # its luck did not hold
    o = late_round_outcome(8, tmp_path)
    assert o["gain"] == pytest.approx(0.0006) and o["confirm_gain"] == pytest.approx(0.0001) and not o["adopted"]
    _round8(tmp_path, {"lr04": 0.0006, "wd1e4": 0.0004}, confirm_gain=0.0004)
    assert late_round_outcome(8, tmp_path)["adopted"]
    assert "against the base's 99.400 %, +0.040 pp: **adopted**" in late_round_decision(8, tmp_path)


def _round13(tmp_path, gain: float, seeds, spread: float = 0.0005):
    """Fake GPU base runs of every round-13 seed, and silu's `seeds` at base + gain; both alternate ±spread by seed."""
    rule = LATE_RULES[13]
    for s in rule["seeds"]:
        noise = spread if s % 2 else -spread
        _write(tmp_path / "gpu", f"{rule['base']}_seed{s}.json", {"seed": s, "best_val_acc": 0.9940 + noise,
                                                                 "parameters": 7464, "device": "cuda"})
        _write(tmp_path, f"{rule['base']}_seed{s}.json", {"seed": s, "best_val_acc": 0.9900, "parameters": 7464,
                                                          "device": "cpu"})  # the CPU runs must not be the base
    for s in seeds:
        _write(tmp_path / "tried_round13", f"silu_seed{s}.json",
               {"name": "silu", "change": "silu", "seed": s, "params": 7464, "tta_val": {"cross1": 0.99, "square1": 0.99},
                "best_val": 0.9940 + gain + (spread if s % 2 else -spread)})


def test_round_13_adopts_only_a_gain_of_two_standard_errors_over_the_seeds_both_have(tmp_path):
    rule = LATE_RULES[13]
    n = len(rule["seeds"])
    sd = statistics.stdev([0.0005 if s % 2 else -0.0005 for s in rule["seeds"]])
    se = (2 * sd ** 2 / n) ** 0.5  # of a difference of two n-seed means, each with this spread
    _round13(tmp_path, 1.9 * se, rule["seeds"])
    o = late_round_outcome(13, tmp_path)
    assert o["se"] == pytest.approx(se) and o["z"] == pytest.approx(1.9) and not o["adopted"]
    assert "z = 1.90 (it took a gain of" in late_round_decision(13, tmp_path)
    assert "pp to reach 2): **not adopted**" in late_round_decision(13, tmp_path)
    _round13(tmp_path, 2.1 * se, rule["seeds"])
    assert late_round_outcome(13, tmp_path)["adopted"]
    (tmp_path / "tried_round13" / "silu_seed31.json").unlink()  # the device time ran out: seeds 1-30 decide
    o = late_round_outcome(13, tmp_path)
    assert o["seeds"] == list(range(1, 31)) and "over seeds 1-30 (the others are missing)" in late_round_decision(13, tmp_path)
    (tmp_path / "tried_round13" / "silu_seed12.json").unlink()  # fewer than min_seeds from seed 1: no decision
    assert late_round_outcome(13, tmp_path) is None and "not complete" in late_round_decision(13, tmp_path)


@pytest.mark.parametrize("gains, adopted", [({"cross1": 0.0004, "square1": 0.0001}, True),
                                            ({"cross1": 0.0002, "square1": -0.0001}, False)])
def test_round_9_adopts_the_better_shift_set_only_with_the_margin(tmp_path, gains, adopted):
    for s in TTA_RULE["seeds"]:
        _write(tmp_path / "tried_tta", f"{TTA_RULE['model']}_seed{s}.json",
               {"model": TTA_RULE["model"], "seed": s, "val": {"none": 0.994, **{k: 0.994 + g for k, g in gains.items()}}})
    o = tta_outcome(tmp_path)
    assert o["best"] == "cross1" and o["adopted"] == adopted and o["gain"] == pytest.approx(gains["cross1"])


def test_two_models_are_compared_on_the_seeds_both_have(tmp_path):
    def summary(name, rows):
        _write(tmp_path, f"{name}_seeds.json", {"seeds": [{"seed": s, "best_val_acc": v, "test_acc": t}
                                                          for s, v, t in rows]})
    summary("new", [(1, 0.9940, 0.9950), (2, 0.9944, 0.9946), (3, 0.9999, 0.9999)])
    summary("old", [(1, 0.9936, 0.9948), (2, 0.9940, 0.9948)])
    c = same_seeds_comparison("new", "old", tmp_path)
    assert c["seeds"] == 2 and c["better_on_test"] == 1  # seed 3 has no partner and is left out
    assert c["val"] == pytest.approx(0.0004) and c["test"] == pytest.approx(0.0)
    assert same_seeds_comparison("new", "missing", tmp_path) is None


def test_overfitting_is_read_from_the_validation_curves():
    def history(acc, loss):
        return {"val_acc": acc, "val_loss": loss}

    at_end = overfitting_verdict(history([0.98, 0.99, 0.993], [0.06, 0.03, 0.02]), 3)
    assert at_end.startswith("not overfitting") and "epoch 3 of 3" in at_end
    fell = overfitting_verdict(history([0.98, 0.993, 0.99, 0.989], [0.06, 0.02, 0.03, 0.04]), 2)
    assert fell.startswith("starting to overfit") and "fell by 0.40 pp" in fell
    flat = overfitting_verdict(history([0.98, 0.993, 0.9925, 0.9926], [0.06, 0.02, 0.021, 0.022]), 2)
    assert flat.startswith("no sign of overfitting")


def test_search_z_scores_measure_each_small_candidate_in_standard_errors_of_its_round():
    zs = search_z_scores()
    names = {r["name"] for r in zs}
    decided = [n for n in LATE_RULES if LATE_RULES[n].get("replaces") != "stretch" and "min_z" not in LATE_RULES[n]
               and late_round_outcome(n) is not None]  # a many-seed re-test of an earlier candidate is not the search
    assert {c for n in decided for c in LATE_RULES[n]["candidates"]} == names  # a round still running is left out
    r = next(r for r in zs if r["name"] == "bnfix")
    ten = [json.loads((RESULTS / f"{round_base(10)}_seed{s}.json").read_text())["best_val_acc"] for s in range(1, 11)]
    sd = statistics.stdev(ten)  # one run's spread, from the base's ten published seeds
    assert r["se"] == pytest.approx(sd * (2 / len(LATE_SEEDS)) ** 0.5)  # a difference of two five-seed means
    assert all(x["z"] == pytest.approx(x["delta"] / x["se"]) for x in zs)


def test_search_verdict_simulates_luck_with_the_searchs_shape():
    v = search_verdict()
    n = len(v["rows"])
    # each z is standard normal under "nothing helps", whatever base it shares: the counts' means are n·P(z >= 2)
    assert v["expected_up"] == pytest.approx(n * (1 - NormalDist().cdf(2)), rel=0.05)
    assert v["expected_down"] == pytest.approx(v["expected_up"], rel=0.05)
    top = max(r["z"] for r in v["rows"])
    independent = 1 - NormalDist().cdf(top) ** n
    assert v["p_top"] < independent + 0.02  # shared bases make the best of a search less extreme, never more
    assert v["up"] == [r for r in v["rows"] if r["z"] >= 2] and v["top"]["z"] == top
    # n seeds a side catch a true gain g 80 % of the time when g >= (2 + 0.84)·sd·√(2/n)
    n, power, sd = v["seeds_for_margin"], 2 + NormalDist().inv_cdf(0.8), statistics.mean(r["sd"] for r in v["rows"])
    assert power * sd * (2 / n) ** 0.5 <= ADOPTION_MIN_GAIN < power * sd * (2 / (n - 1)) ** 0.5


def test_a_gain_of_exactly_the_margin_passes_whichever_way_its_float_sum_rounds():
    # seeds whose candidate got 3 more of 10,000 validation digits right each: the margin, exactly
    base, cand = [0.9934, 0.9935, 0.9944, 0.9940, 0.9939], [0.9937, 0.9938, 0.9947, 0.9943, 0.9942]
    gain = statistics.mean(c - b for c, b in zip(cand, base))
    assert gain != ADOPTION_MIN_GAIN  # the float sum lands a rounding error off it ...
    assert reaches_margin(gain) and reaches_margin(ADOPTION_MIN_GAIN - 1e-15)  # ... and still passes
    assert not reaches_margin(ADOPTION_MIN_GAIN - 0.0001 / 5)  # one digit short over five seeds does not


def _device_runs(tmp_path, folder: str, accs: list, table: int = 10) -> dict:
    """Fake published runs of model m in tmp_path/folder, with a summary of the first `table` of them, read back by all_seeds."""
    for s, acc in enumerate(accs, 1):
        _write(tmp_path / folder, f"m_seed{s}.json", {"seed": s, "test_acc": acc, "device": folder, "torch": "x"})
    _write(tmp_path / folder, "m_seeds.json", {"seeds": [{"seed": s} for s in range(1, table + 1)]})  # not a run
    return all_seeds(tmp_path / folder, "m")


OFFSETS = [(-1) ** s * (s % 5) * 1e-4 for s in range(1, 37)]  # -4 .. +4 in steps of 1e-4 around 0.995


def test_all_seeds_and_compare_devices_read_every_run_and_tell_a_wider_spread_from_luck(tmp_path):
    """Every <model>_seed<N>.json counts (the summary file does not); a GPU twice as spread gets z > 2 both ways."""
    cpu = _device_runs(tmp_path, "cpu", [0.995 + o for o in OFFSETS])
    gpu = _device_runs(tmp_path, "gpu", [0.995 + 2 * o for o in OFFSETS])
    assert cpu["n"] == gpu["n"] == 36 and cpu["n_table"] == 10 and [r["seed"] for r in cpu["seeds"]] == list(range(1, 37))
    assert gpu["test_acc_std"] == pytest.approx(2 * cpu["test_acc_std"]) and cpu["device"] == "cpu"
    d = compare_devices(cpu, gpu)
    assert d["ratio"] == pytest.approx(2) and d["gap"] == pytest.approx(statistics.mean(OFFSETS))
    assert d["z_std"] > 2 and d["z_robust"] > 2 and abs(d["z_mean"]) < 1
    assert "the GPU's runs spread more widely" in devices_verdict(d) and "do not differ beyond noise" in devices_verdict(d)
    same = compare_devices(cpu, cpu)
    assert same["ratio"] == 1 and same["z_std"] == same["z_robust"] == same["z_mean"] == 0
    assert "do not tell the two setups apart" in devices_verdict(same)
    shifted = compare_devices(cpu, _device_runs(tmp_path, "shifted", [0.996 + o for o in OFFSETS]))
    assert shifted["z_mean"] > 2 and "the means differ beyond noise" in devices_verdict(shifted)
    assert "neither measure of spread differs" in devices_verdict(shifted) and "apart" not in devices_verdict(shifted)


def test_a_spread_wider_on_one_side_only_is_named_by_its_side(tmp_path):
    """Runs that reach further above the median, not below, are said to spread 'above the median'."""
    cpu = _device_runs(tmp_path, "cpu", [0.995 + o for o in OFFSETS])
    gpu = _device_runs(tmp_path, "gpu", [0.995 + (3 * o if o > 0 else o) for o in OFFSETS])
    d = compare_devices(cpu, gpu)
    assert d["below_median"][1] == pytest.approx(d["below_median"][0], rel=0.2) and d["above_median"][1] > d["above_median"][0]
    assert "mostly above the median" in devices_verdict(d)
    named = devices_verdict(d, ("CPU", "TF32-off GPU"))  # the sets are called what the caller names them, in order
    assert "the TF32-off GPU's runs spread more widely" in named and "under it on the TF32-off GPU and" in named
    assert "the GPU's runs spread more widely" in devices_verdict(compare_devices(gpu, cpu), ("GPU", "CPU"))  # wider first


def test_all_seeds_says_whether_gpu_runs_had_tf32(tmp_path):
    """GPU runs from before `cuda_tf32` was recorded had torch's default (on); CPU runs have no TF32 to speak of."""
    cpu = _device_runs(tmp_path, "cpu", [0.995 + o for o in OFFSETS])
    old = _device_runs(tmp_path, "cuda", [0.995 + o for o in OFFSETS])
    for path in (tmp_path / "cuda").glob("m_seed*.json"):
        _write(tmp_path / "fp32", path.name, dict(json.loads(path.read_text()), cuda_tf32=False))
    off = all_seeds(tmp_path / "fp32", "m")
    assert (cpu["tf32"], old["tf32"], off["tf32"]) == (None, True, False)
    assert setup_words(off).endswith("TF32 off") and "TF32 on" in setup_words(old) and "TF32" not in setup_words(cpu)


def test_fisher_exact_p_matches_the_tea_tasting_example():
    """Fisher's lady tasting tea: 3 of 4 cups right against 1 of 4 gives a two-sided p of 34/70."""
    assert fisher_exact_p(3, 4, 1, 4) == pytest.approx(34 / 70)
    assert fisher_exact_p(1, 36, 2, 36) == pytest.approx(1.0) and fisher_exact_p(0, 36, 10, 36) < 0.01


def test_chance_of_at_least_is_the_binomial_upper_tail():
    assert chance_of_at_least(0, 5, 0.3) == pytest.approx(1.0) and chance_of_at_least(1, 1, 0.3) == pytest.approx(0.3)
    assert chance_of_at_least(2, 3, 0.5) == pytest.approx(0.5)  # 2 or 3 heads of 3 fair coins: 4 of 8
    assert chance_of_at_least(4, 108, 0.01) < chance_of_at_least(4, 108, 0.02)  # a higher chance makes it likelier
    for k in (0, 4, 108):  # the two tails share one binomial: "k or more" and "k - 1 or fewer" make up every count
        assert chance_of_at_least(k, 108, 0.01) + chance_of_at_most(k - 1, 108, 0.01) == pytest.approx(1.0)
    assert chance_of_at_least(1, 3000, 0.01) == pytest.approx(1 - 0.99 ** 3000)  # large n: no overflow


def test_the_upper_bound_on_a_chance_is_the_clopper_pearson_bound():
    """With none of n runs below, the bound p solves (1 - p)^n = 5 %; more runs or fewer below make it smaller."""
    assert rate_upper_bound(0, 72) == pytest.approx(1 - 0.05 ** (1 / 72), rel=1e-6)
    assert 1 - chance_of_at_least(5, 108, rate_upper_bound(4, 108)) == pytest.approx(0.05, rel=1e-6)  # P(<= 4) at the bound
    assert rate_upper_bound(0, 300) < rate_upper_bound(0, 72) < rate_upper_bound(1, 72) and rate_upper_bound(3, 3) == 1
    n = clean_runs_needed()
    assert rate_upper_bound(0, n) <= ALLOWED_BELOW < rate_upper_bound(0, n - 1)  # the fewest clean runs that show it
    assert rate_upper_bound(0, 5000) == pytest.approx(1 - 0.05 ** (1 / 5000), rel=1e-6)  # many runs: no overflow
    with pytest.raises(ValueError):
        rate_upper_bound(4, 3)


def test_the_runs_needed_are_the_fewest_whose_count_shows_the_chance_low_enough():
    """With none below it is clean_runs_needed; each run below the bar asks for more runs, and no fewer would do."""
    assert runs_needed(0) == clean_runs_needed()
    for k in (1, 2, 5):
        n = runs_needed(k)
        assert rate_upper_bound(k, n) <= ALLOWED_BELOW < rate_upper_bound(k, n - 1)
    assert runs_needed(0) < runs_needed(1) < runs_needed(2)
    with pytest.raises(ValueError):
        runs_needed(-1)


def _setup(n: int, below: int, name: str = "x") -> tuple[str, dict]:
    return name, {"n": n, "below": below}


def test_the_bar_verdict_says_missed_met_or_not_shown_from_the_counts():
    """Too many runs below the bar say missed; enough clean runs on every setup say met; anything else shows neither."""
    assert bar_verdict([_setup(36, 1), _setup(36, 2), _setup(36, 1)]).startswith("**missed**")
    assert bar_verdict([_setup(36, 0), _setup(36, 0)]).startswith("**not shown either way**")
    assert bar_verdict([_setup(clean_runs_needed(), 0)]).startswith("**met**")
    assert bar_verdict([_setup(clean_runs_needed(), 0), _setup(36, 0)]).startswith("**not shown")  # every setup must show it
    with pytest.raises(ValueError):
        bar_verdict([])  # no runs say nothing, least of all "met"


def test_a_verdict_not_shown_says_which_setup_shows_it_and_what_the_others_need():
    """A learner reads which setup's count already suffices, and how many runs in all each other setup still needs."""
    v = bar_verdict([_setup(clean_runs_needed(), 0, "CPU"), _setup(136, 1, "GPU")])
    assert v.startswith("**not shown")
    assert "The CPU setup's count already bounds its chance under 1 %" in v
    assert f"the GPU setup's count would bound it at {runs_needed(1)} runs with no more below (1 of 136 now)" in v
    assert "No setup's count" in bar_verdict([_setup(36, 0, "CPU"), _setup(36, 0, "GPU")])
    assert "Pooled" not in bar_verdict([_setup(36, 0, "CPU"), _setup(36, 0, "GPU")])  # 72 clean runs bound nothing
    pooled = bar_verdict([_setup(clean_runs_needed(), 0, "CPU"), _setup(239, 1, "GPU")])  # 1 of 538, as published
    assert "Pooled, the runs bound the chance averaged over the setups under 1 %, but a pass must hold on every setup" in pooled
    two = bar_verdict([_setup(clean_runs_needed(), 0, "CPU"), _setup(clean_runs_needed(), 0, "GPU"), _setup(36, 0, "TF32")])
    assert "The CPU and GPU setups' counts already bound their chances under 1 %; the TF32 setup's count" in two


def test_gpu_models_are_named_with_the_seeds_each_trained():
    assert seed_ranges([9, 1, 2, 3, 7, 10]) == "1-3, 7, 9-10" and seed_ranges([5]) == "5"
    runs = [{"seed": s, "gpu": "A"} for s in (3, 4)] + [{"seed": 5, "gpu": "B"}] + [{"seed": s} for s in (1, 2)]
    assert gpu_models_sentence(runs) == (" Their GPUs, as the run files name them: A (seeds 3-4); B (seeds 5); seeds 1-2 "
                                         "name none (their files predate that field).")
    assert gpu_models_sentence([{"seed": 1, "device": "cpu"}]) == ""  # CPU runs, or GPU runs naming none: nothing to say


def test_identical_runs_match_seeds_by_their_weights_fingerprint(tmp_path):
    """Runs count as the same only when the seed, the weights' SHA-256 and the test accuracy all agree."""
    for folder, shas in (("a", "xyz"), ("b", "xyw")):
        for s, sha in enumerate(shas, 1):
            _write(tmp_path / folder, f"{LATE_BASE}_seed{s}.json", {"seed": s, "test_acc": 0.995, "device": "cuda",
                                                                   "torch": "x", "checkpoint_sha256": sha, "gpu": folder})
    c = identical_runs("a", "b", tmp_path, LATE_BASE)
    assert (c["pairs"], c["identical"], c["of"], c["gpu"]) == (3, 2, 3, "a")
    assert identical_runs("a", "missing", tmp_path, LATE_BASE) is None


def test_same_seed_correlation_pairs_runs_by_seed_and_needs_three():
    """Runs pair by seed number, not by position; seeds one setup lacks are left out."""
    a = {"seeds": [{"seed": s, "test_acc": acc} for s, acc in ((1, 0.990), (2, 0.992), (3, 0.994), (9, 0.5))]}
    b = {"seeds": [{"seed": s, "test_acc": acc} for s, acc in ((3, 0.996), (1, 0.992), (2, 0.994))]}
    assert same_seed_correlation(a, b) == (3, pytest.approx(1.0))
    flipped = {"seeds": [{"seed": r["seed"], "test_acc": 2 - r["test_acc"]} for r in b["seeds"]]}
    assert same_seed_correlation(a, flipped)[1] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        same_seed_correlation(a, {"seeds": b["seeds"][:2]})


def test_counts_read_as_english():
    assert (count_of(1, "thread"), count_of(2, "thread"), count_of(0, "run")) == ("1 thread", "2 threads", "0 runs")


def test_a_gain_that_rounds_to_zero_reads_plus_zero_not_minus_zero():
    from utils.report import _round_table, pp, signed

    assert (signed(-1e-7, 3), signed(-0.0004, 3), signed(-0.0006, 3), signed(0.02, 2)) == ("+0.000", "+0.000", "-0.001", "+0.02")
    assert (pp(-4e-7, 3), pp(-0.0012), pp(0.00123, 3)) == ("+0.000 pp", "-0.12 pp", "+0.123 pp")
    row = {"name": "x", "change": "x", "params": 1, "val": {1: 0.99}, "mean": 0.99, "delta": -1e-7,
           "tta5_gain": -4e-6, "tta9_gain": 2e-4}
    assert _round_table([row], "b", "none").splitlines()[-1].endswith("| +0.000 | +0.000 | +0.020 |")


def test_the_report_command_checks_rewrites_and_refuses_a_wrong_file(tmp_path, capsys):
    from utils.report import ROOT, main

    stale = tmp_path / "README.md"
    current = (ROOT / "README.md").read_text()
    stale.write_text(current.replace("<!-- begin:pick -->\n", "<!-- begin:pick -->\nstale line\n", 1))
    blocks = current.count("<!-- begin:")
    assert main(["--check", "--readme", str(stale)]) == 1
    assert f"in 1 of its {blocks} generated blocks (pick): run python -m utils.report --readme {stale}" in capsys.readouterr().out
    assert main(["--readme", str(stale)]) == 0 and stale.read_text() == current
    assert f"1 of its {blocks} generated blocks rewritten (pick)" in capsys.readouterr().out
    assert main(["--check", "--readme", str(stale)]) == 0 and "are current" in capsys.readouterr().out
    unknown, unclosed = tmp_path / "unknown.md", tmp_path / "unclosed.md"
    unknown.write_text("<!-- begin:bogus -->\nx\n<!-- end:bogus -->\n")
    unclosed.write_text("<!-- begin:pick -->\nx\n")
    for wrong, says in ((tmp_path / "missing.md", "is not a file"), (tmp_path, "is not a file"),
                        (ROOT / "pyproject.toml", "has no <!-- begin:NAME --> blocks"),
                        (unknown, "cannot render: bogus"), (unclosed, "the block pick has no <!-- end:NAME -->")):
        with pytest.raises(SystemExit) as exit_:
            main(["--readme", str(wrong)])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
