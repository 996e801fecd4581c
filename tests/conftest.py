import os

import pytest
import torch

# under pytest-xdist (scripts/test.sh runs 2 workers) the cores are shared between workers
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // WORKERS))


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)
