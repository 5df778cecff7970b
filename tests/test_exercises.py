"""The exercises of every notebook: each has a hint and a solution, decides on validation, and the solutions run.

The solutions live in collapsible `<details>` blocks of the notebooks' last markdown cell. Here they are
appended, as code cells, to a copy of the notebook, which papermill runs with CI's smoke parameters:
a solution that no longer runs against the notebook's own variables fails this test.
"""

import re

import nbformat
import papermill as pm
import pytest

from test_notebooks import NOTEBOOKS, SMOKE

WITH_EXERCISES = ["01_data_exploration.ipynb", "02_architecture_iterations.ipynb", "03_training.ipynb",
                  "04_misclassification_analysis.ipynb"]
SOLUTION = re.compile(r"<details><summary>Solution</summary>\s*```python\n(.*?)```", re.S)
WIDGET = "application/vnd.jupyter.widget-view+json"


def _exercises(nb) -> str:
    return next(c.source for c in reversed(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source)


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_every_exercise_has_a_hint_and_a_solution_and_stays_off_the_test_set(name):
    text = _exercises(nbformat.read(NOTEBOOKS / name, as_version=4))
    numbered = re.findall(r"^\*\*\d+\.", text, re.M)
    solutions = SOLUTION.findall(text)
    assert len(numbered) >= 3
    assert len(solutions) == len(numbered) == text.count("*Hint:*")
    assert "validation" in text
    for code in solutions:
        assert not re.search(r"\btest_[xy]\b|load_test_set|train=False", code), code


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_the_solutions_run_after_the_notebook(name, tmp_path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for code in SOLUTION.findall(_exercises(nb)):
        nb.cells.append(nbformat.v4.new_code_cell(code))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    src = tmp_path / name
    nbformat.write(nb, src)
    pm.execute_notebook(str(src), str(tmp_path / f"out_{name}"), parameters=SMOKE[name], cwd=str(NOTEBOOKS),
                        kernel_name="python3", progress_bar=False)
    ran = nbformat.read(tmp_path / f"out_{name}", as_version=4)
    assert not any(WIDGET in out.get("data", {}) for c in ran.cells if c.cell_type == "code" for out in c.outputs), \
        "progress bars must not be saved as widgets"


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_committed_outputs_hold_no_widgets_and_no_paths_of_this_machine(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert "widgets" not in nb.metadata
    text = nbformat.writes(nb)
    assert WIDGET not in text
    assert str(NOTEBOOKS.parent.resolve()) not in text, "paths relative to the repository, not this checkout's"
