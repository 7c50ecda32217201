"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
# Folders whose tests train tiny models: one thread is as fast, and busy-waiting worker
# threads do not fight other processes for the cores of a shared machine.
ONE_THREAD_FOLDERS = {"experiments", "integrations", "search", "zoo"}


@pytest.fixture(autouse=True)
def _one_thread(request: pytest.FixtureRequest):
    if Path(request.node.path).relative_to(TESTS).parts[0] not in ONE_THREAD_FOLDERS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
