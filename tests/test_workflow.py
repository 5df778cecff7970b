"""The GitHub workflow: each job installs the project before a step of it imports utils or runs the tests."""

import re

import pytest

from utils.data import repo_root

WORKFLOW = repo_root() / ".github" / "workflows" / "ci.yml"
INSTALLS_THE_PROJECT = re.compile(r"pip install .*-e \"?\.(\[dev\])?\"?|bash \.ci/run")  # .ci/run installs it itself
NEEDS_THE_PROJECT = re.compile(r"from utils|import utils|-m utils|-m pytest")


def workflow_jobs(text: str) -> dict[str, list[str]]:
    """The workflow's jobs, each as its lines, from the text (jobs are the keys indented by two spaces)."""
    jobs: dict[str, list[str]] = {}
    lines = text.splitlines()
    start = lines.index("jobs:")
    name = None
    for line in lines[start + 1:]:
        key = re.match(r"^  ([\w-]+):\s*$", line)
        if key:
            name = key.group(1)
            jobs[name] = []
        elif name:
            jobs[name].append(line)
    return jobs


def first_use_before_install(lines: list[str]) -> str | None:
    """The first line that needs the project before any line installs it, or None."""
    for line in lines:
        if INSTALLS_THE_PROJECT.search(line):
            return None
        if NEEDS_THE_PROJECT.search(line):
            return line.strip()
    return None


def test_the_checker_catches_an_import_of_utils_before_the_install():
    assert first_use_before_install(["pip install torch", "python -c 'from utils.data import x'"]) is not None
    assert first_use_before_install(["python -m pip install -e \".[dev]\"", "python -m pytest"]) is None
    assert first_use_before_install(["run: bash .ci/run"]) is None


JOBS = workflow_jobs(WORKFLOW.read_text())


@pytest.mark.parametrize("job", sorted(JOBS))
def test_each_job_installs_the_project_before_it_needs_it(job):
    # torch and torchvision alone do not bring tqdm, which utils imports: a step that imports utils after only
    # `pip install torch torchvision` fails on GitHub's fresh runner.
    too_early = first_use_before_install(JOBS[job])
    assert too_early is None, f"job {job!r} needs the project before installing it: {too_early}"


def test_the_workflow_has_the_ci_job_and_the_colab_versions_job():
    assert set(JOBS) == {"test", "colab-versions"}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_the_tests_run_on_a_cuda_built_torch_so_the_gpu_path_tests_are_not_skipped(job):
    # tests/test_gpu_path.py makes fake CUDA tensors, which need torch built with CUDA (PyPI's Linux wheels);
    # CPU-only wheels would skip it. Only the MNIST download step, outside the tests' environment, may use them.
    lines = JOBS[job]
    cpu_only = [i for i, ln in enumerate(lines) if "whl/cpu" in ln or "PIP_EXTRA_INDEX_URL" in ln]
    for_the_download = [i for i in cpu_only if "torchvision.datasets import MNIST" in lines[i + 1]]
    assert cpu_only == for_the_download, [lines[i].strip() for i in cpu_only]
