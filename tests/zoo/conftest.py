import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # These tests train tiny models: one thread is as fast and does not fight other
    # processes for the cores (busy-waiting worker threads slow a shared machine down a lot).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
