"""One tiny pretrained run shared by every task test: SimCLR, a few epochs on digits."""

import pytest

from selfsup.config import PretrainConfig
from selfsup.tasks import pretrain

EPOCHS = 4


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "simclr"
    pretrain(PretrainConfig(data="digits", method="simclr", epochs=EPOCHS, out=str(out), report=False))
    return out
