import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)
