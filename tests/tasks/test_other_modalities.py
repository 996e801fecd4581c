"""The tasks that work on embeddings alone take a table or time-series run as they take an
image run; the ones that augment images say clearly that they do not (yet)."""

import pytest

from selfsup.config import PretrainConfig
from selfsup.data import DataError
from selfsup.tasks.cluster import cluster
from selfsup.tasks.curate import curate
from selfsup.tasks.dedupe import dedupe
from selfsup.tasks.finetune import finetune
from selfsup.tasks.neighbors import neighbors
from selfsup.train import pretrain


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks") / "wine"
    pretrain(PretrainConfig(data="wine", method="scarf", epochs=3, batch_size=64, out=str(out),
                            report=False))
    return out


def test_embedding_tasks_on_a_table_run(wine_run):
    rows = neighbors(wine_run, query="0,5", k=3)
    assert [(r[0], r[1], r[2]) for r in rows if r[1] == 1] == [("0", 1, "0"), ("5", 1, "5")]  # itself first
    result = cluster(wine_run, n_clusters=3, views=2, epochs=20, self_label_epochs=5)
    assert len(result["scan_ids"]) == 178 and result["classes"] == 3
    assert result["kmeans"]["accuracy"] > 0.5  # wine's three cultivars separate well (chance: 0.40)
    assert len(curate(wine_run, budget=30)["selected"]) == 30
    assert dedupe(wine_run)["samples"] == 178


def test_image_only_tasks_refuse_a_table_run_in_one_line(wine_run):
    with pytest.raises(DataError, match="works on images only"):
        finetune(wine_run, 5)
