"""One intra-op thread for the bottleneck tests: their tensors are tiny, so threads
bring nothing, and on a shared machine two contending threads made the synthetic
training tests about 5x slower (measured: 2.3 s vs 10.7 s for the same runs)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
