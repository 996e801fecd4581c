import pytest
import torch

# One torch thread everywhere: scripts/test.sh runs two pytest-xdist workers on the two
# cores, and one thread also gives the learning tests the same numbers with or without xdist
# (a different thread count changes float summation order, and so a short run's result).
torch.set_num_threads(1)

SPREAD = {"test_learning.py"}  # independent runs: their cases spread over the workers


def pytest_itemcollected(item):  # before xdist reads the groups (in collection_modifyitems)
    """Under ``--dist loadgroup`` a test file stays on one worker, so its module fixtures
    (a pretrained run) are built once; the cases of the files in SPREAD go to any worker."""
    if item.path.name not in SPREAD:
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)
