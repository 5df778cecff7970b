"""nbval: leave out the cells tagged `nbval-skip` (the full training of notebook 03) instead of reporting
them as skipped. They are not untested: tests/test_notebooks.py runs every cell with papermill."""


def pytest_collection_modifyitems(config, items):
    """Deselect nbval cells tagged nbval-skip."""
    keep, drop = [], []
    for item in items:
        cell = getattr(item, "cell", None)
        tags = cell.get("metadata", {}).get("tags", []) if cell is not None else []
        (drop if "nbval-skip" in tags else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
