"""Few-label fine-tuning with FixMatch, then TENT on corrupted digits, from one tiny run."""

import pytest
import torch

from selfsup.cli import run
from selfsup.config import ConfigError
from selfsup.data import DataError
from selfsup.modalities import get as modality
from selfsup.tasks.adapt import configure_tent

corrupt = modality("image").corrupt
from selfsup.tasks.finetune import (Classifier, classifier_placement, finetune, load_classifier, predict,
                                   recompute_batchnorm)


# 5 labels per class; short schedule (measured on a 4-epoch run: labels only 0.72, with
# FixMatch 0.77, from scratch lower)
SCHEDULE = dict(steps=150, batch_size=20)


@pytest.fixture(scope="module")
def classifier(digits_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier")
    result = finetune(digits_run, 5, scratch=True, out=out, **SCHEDULE)
    return out, result


def test_linear_head_on_few_labels_beats_training_from_scratch(classifier):
    _, result = classifier
    assert result["labelled"] == 50 and result["test_accuracy"] > 0.5
    assert result["test_accuracy"] > result["scratch_test_accuracy"]


def test_pseudo_labels_improve_over_labels_only(digits_run, classifier):
    _, labels_only = classifier
    result = finetune(digits_run, 5, pseudo_label=True, unlabeled_ratio=3, **SCHEDULE)
    assert result["train"]["pseudo_labelled"] > 0
    assert result["test_accuracy"] > labels_only["test_accuracy"] + 0.01


def test_saved_classifier_predicts_as_trained(classifier):
    out, result = classifier
    from selfsup.data import holdout_split
    from selfsup.modalities import open_source

    model, meta = load_classifier(out)
    _, test = holdout_split(open_source("digits", meta["image_size"]), 0.2, seed=0)
    # where finetune evaluated it: the run's device and precision (bf16 on a CPU with bf16 units)
    accuracy = float((predict(model, test.images, placement=classifier_placement(meta)) == test.labels).float().mean())
    assert accuracy == pytest.approx(result["test_accuracy"])
    with pytest.raises(ConfigError, match="not a classifier directory"):
        load_classifier(out.parent)


def test_corruptions_shift_the_images():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    for kind in ("noise", "blur", "contrast"):
        mild, strong = (corrupt(images, kind, s).float() for s in (1, 5))
        assert mild.shape == images.shape
        assert (strong - images).abs().mean() > (mild - images).abs().mean() > 0
    assert corrupt(images, "contrast", 5).float().std() < images.float().std() / 3
    with pytest.raises(ConfigError, match="corruption='fog'"):
        corrupt(images, "fog")


def test_tent_adapts_only_batchnorm_affine_parameters():
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    backbone.dim = 4
    model = Classifier(backbone, 3, [0.5] * 3, [0.2] * 3)
    parameters = configure_tent(model)
    assert [tuple(p.shape) for p in parameters] == [(4,), (4,)]
    assert sum(p.requires_grad for p in model.parameters()) == 2


def test_batchnorm_recomputed_on_clean_images():
    norm = torch.nn.BatchNorm2d(3).eval()
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    recompute_batchnorm(norm, images, batch_size=16)
    x = images.float() / 255
    assert torch.allclose(norm.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    assert norm.momentum == 0.1 and not norm.training


def test_tent_recovers_accuracy_on_low_contrast_digits(classifier, capsys):
    out, _ = classifier
    run(["adapt", str(out), "--data", "digits", "--corrupt", "contrast", "--severity", "3"])
    text = capsys.readouterr().out
    import json

    result = json.loads(text)
    assert result["accuracy_tent"] > result["accuracy_source_model"] + 0.1


def test_finetune_and_adapt_say_what_is_wrong(digits_run, tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("id,label\n0,zero\nnot-an-id,one\n")
    with pytest.raises(DataError, match="labels.csv:3: expected 'id,label'"):
        finetune(digits_run, str(bad), steps=1)
    with pytest.raises(ConfigError, match="labels=500: class 0 has only"):
        finetune(digits_run, 500, steps=1)
