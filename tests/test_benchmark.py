"""The training-speed benchmark's stored table: what the README shows is what the code renders from the measurements."""

import json

import pytest

from script_module import script_module
from utils.data import repo_root

ROOT = repo_root()
train_speed = script_module("benchmarks/train_speed.py")


def test_stored_table_is_what_the_code_renders_from_the_stored_measurements():
    stored = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    assert stored["markdown"] == train_speed.markdown(stored), \
        "run `python -m benchmarks.train_speed --render-only`, then `python -m utils.report`"


def test_the_table_names_the_command_that_measures_what_it_shows():
    stored = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    modes = [m for m in train_speed.MODES if m in stored]
    command = train_speed.command(stored)
    assert f"Measured by `{command}`" in stored["markdown"]
    # the command, as argparse reads it, measures exactly the stored modes
    argv = command.split()[3:]
    assert (argv[1:] if argv else train_speed.DEFAULT_MODES) == modes
    assert train_speed.command({"pipeline": {}, "tweaks": {}}) == "python -m benchmarks.train_speed"
    assert train_speed.command({"pipeline": {}, "full": {}}).endswith("--mode pipeline full")


def test_render_only_measures_nothing_and_keeps_the_measurements(tmp_path):
    stored = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    out = tmp_path / "results.json"
    out.write_text(json.dumps(dict(stored, markdown="stale")))
    assert train_speed.main(["--render-only", "--out", str(out)]) == 0
    rendered = json.loads(out.read_text())
    assert rendered["markdown"] == stored["markdown"]
    assert {k: v for k, v in rendered.items() if k != "markdown"} == {k: v for k, v in stored.items() if k != "markdown"}


def test_render_only_without_measurements_says_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_speed.main(["--render-only", "--out", str(tmp_path / "none.json")])
    assert "run the benchmark without --render-only first" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [(["--rounds", "0"], "--rounds and --batches must be at least 1"),
                                        (["--batches", "-1"], "--rounds and --batches must be at least 1"),
                                        (["--render-only", "--out", ""], "--out must name a JSON file"),
                                        (["--render-only", "--out", "/"], "--out must name a JSON file")])
def test_bad_settings_stop_before_anything_is_measured(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_speed.main(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err
