"""A small real run for the report tests that look at the finished report (browser, paths)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_evaluation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run directory, evaluation directory) of :func:`tests.report.tiny_run.tiny_run`."""
    from tests.report.tiny_run import tiny_run

    root = tmp_path_factory.mktemp("tiny-run")
    return root, tiny_run(root)
