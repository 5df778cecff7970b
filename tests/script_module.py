"""Load a script of the repository (scripts/ and benchmarks/ are not packages) as a module, for the tests."""

import importlib.util
from types import ModuleType

from utils.data import repo_root


def script_module(relative_path: str) -> ModuleType:
    """The file at `relative_path` from the repository root, run as a module named after it."""
    path = repo_root() / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
