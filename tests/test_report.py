"""Round 3's adoption rule, applied by utils.report to result files, decides as the rule says."""

import json

import pytest

from utils.report import ROUND3_BASE, ROUND3_RULE, ROUND3_SEEDS, round3_decision, round3_outcome


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def _results(tmp_path, gains: dict, stretch_gain: float, seeds=ROUND3_SEEDS):
    """Fake published runs (base 99.30 %, stretch base 99.40 %) and round-3 files at base + gain, per seed."""
    for s in ROUND3_SEEDS:
        for step, val in ((ROUND3_BASE, 0.9930), (ROUND3_RULE["stretch_base"], 0.9940)):
            _write(tmp_path, f"{step}_seed{s}.json", {"seed": s, "best_val_acc": val, "parameters": 7988,
                                                      "device": "cpu"})
    for name, (base, gain) in {**{n: (0.9930, g) for n, g in gains.items()},
                               ROUND3_RULE["stretch_candidate"]: (0.9940, stretch_gain)}.items():
        for s in seeds:
            _write(tmp_path / "tried_round3", f"{name}_seed{s}.json",
                   {"name": name, "change": name, "seed": s, "params": 7000, "best_val": base + gain,
                    "tta_val": {"cross1": base, "square1": base}})
    return tmp_path


def test_the_best_candidate_is_adopted_only_with_the_margin(tmp_path):
    o = round3_outcome(_results(tmp_path, {"b64": 0.0001, "wide": 0.0004, "wide_b64": 0.0002}, 0.0002))
    assert o["best"]["name"] == "wide" and o["gain"] == pytest.approx(0.0004)
    assert o["adopted"] and not o["stretch_adopted"]
    text = round3_decision(tmp_path)
    assert "+0.040 pp: **adopted**" in text and "+0.020 pp: **not adopted**" in text


def test_a_gain_under_the_margin_keeps_the_base(tmp_path):
    o = round3_outcome(_results(tmp_path, {"b64": 0.0002, "wide": -0.0001, "wide_b64": 0.0}, 0.0005))
    assert o["best"]["name"] == "b64" and not o["adopted"] and o["stretch_adopted"]
    assert f"`{ROUND3_BASE}` stays the final model" in round3_decision(tmp_path)


def test_no_decision_before_every_seed_is_in(tmp_path):
    _results(tmp_path, {"b64": 0.001, "wide": 0.001, "wide_b64": 0.001}, 0.001, seeds=ROUND3_SEEDS[:-1])
    assert round3_outcome(tmp_path) is None
    assert "not complete" in round3_decision(tmp_path)
