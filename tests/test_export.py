"""Export round trips: tiny runs on digits (1 epoch, a tenth of the data), exported, then
loaded by plain timm/torchvision in a process that never imports selfsup, with the very
code each export's README.md gives; the outputs equal selfsup's backbone on one batch.
``--init`` starts a run from an export or a run directory with the same weights."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from selfsup.backbones import weights_module
from selfsup.cli import run as cli
from selfsup.config import ConfigError, PretrainConfig
from selfsup.export import export_run
from selfsup.runs import Run
from selfsup.train import fit, prepare

TINY = dict(data="digits", method="simclr", epochs=1, batch_size=64, holdout=0.9, image_size=16, report=False,
            monitor_samples=64, log_every_n_steps=1)
# run name -> (options, export format)
RUNS = {
    "resnet": (dict(backbone="resnet18"), "torchvision"),  # the built-in small-stem ResNet
    "vit": (dict(backbone="vit_mini"), "timm"),
    "timm_vit": (dict(backbone="timm/vit_tiny_patch16_224", image_size=32), "timm"),
    "tv_resnet": (dict(backbone="torchvision/resnet18"), "torchvision"),
    "timm_small_stem": (dict(backbone="timm/resnet18", small_stem=True), "safetensors"),
}
TOLERANCE = 1e-5


def train(out: Path, **options) -> Path:
    fit(prepare(PretrainConfig(out=str(out), **{**TINY, **options})))
    return out


def readme_code(folder: Path) -> str:
    text = (folder / "README.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


# Runs in a fresh interpreter: every export's README code with `images` given, then for the
# timm folders a strict load of model.safetensors into the model timm built.
LOADER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch
    from safetensors.torch import load_file, save_file

    jobs, outputs = json.loads(sys.argv[1]), {}
    for name, (folder, code, batch) in jobs.items():
        scope = {"images": load_file(batch)["images"]}
        with torch.no_grad():
            exec(code, scope)
            outputs[name] = scope["embeddings"].contiguous()
        if (Path(folder) / "config.json").exists():
            scope["model"].load_state_dict(load_file(str(Path(folder) / "model.safetensors")), strict=True)
    assert not any(m == "selfsup" or m.startswith("selfsup.") for m in sys.modules), "selfsup was imported"
    save_file(outputs, sys.argv[2])
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{name: (run dir, export dir, selfsup's embeddings, the loader's embeddings)}."""
    root = tmp_path_factory.mktemp("export")
    # timm/resnet18 through the command line: --backbone timm/NAME with a --backbone-option
    assert cli(["pretrain", "--out", str(root / "timm_resnet"), "--backbone", "timm/resnet18",
                "--backbone-option", "drop_rate=0.0", "--no-report",
                *[f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "report"]]) == 0
    runs = {"timm_resnet": (root / "timm_resnet", "timm")}
    runs.update({name: (train(root / name, **options), fmt) for name, (options, fmt) in RUNS.items()})
    results, jobs = {}, {}
    for name, (run_dir, fmt) in runs.items():
        folder = root / f"{name}-{fmt}"
        export_run(run_dir, fmt, folder)
        config = Run(run_dir).config
        images = torch.rand(4, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
        images = (images - torch.tensor(config.mean)[:, None, None]) / torch.tensor(config.std)[:, None, None]
        save_file({"images": images}, str(folder / "batch.safetensors"))
        with torch.no_grad():
            ours = Run(run_dir).method().backbone.eval()(images)
        results[name] = (run_dir, folder, ours)
        jobs[name] = (str(folder), readme_code(folder), str(folder / "batch.safetensors"))
    subprocess.run([sys.executable, "-c", LOADER, json.dumps(jobs), str(root / "outputs.safetensors")], check=True)
    theirs = load_file(str(root / "outputs.safetensors"))
    return {name: (*results[name], theirs[name]) for name in results}


@pytest.mark.parametrize("name", ["resnet", "vit", "timm_resnet", "timm_vit", "tv_resnet", "timm_small_stem"])
def test_export_loads_without_selfsup_with_equal_outputs(exported, name):
    _, folder, ours, theirs = exported[name]
    assert ours.shape == theirs.shape and ours.shape[0] == 4
    difference = (ours - theirs).abs().max().item()
    print(f"{name}: max abs difference {difference:.2e}")
    assert difference <= TOLERANCE


def test_timm_folder_is_timms_format(exported):
    _, folder, _, _ = exported["timm_vit"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "vit_tiny_patch16_224" and config["num_classes"] == 0
    assert config["model_args"]["img_size"] == 32 and config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    assert config["pretrained_cfg"]["mean"] == Run(exported["timm_vit"][0]).config.mean
    vit = json.loads((exported["vit"][1] / "config.json").read_text())["model_args"]
    assert vit == dict(img_size=16, patch_size=4, embed_dim=128, depth=4, num_heads=4, class_token=False,
                       global_pool="avg", fc_norm=False)
    assert not any(k.startswith(("net.", "backbone.", "method.")) for k in load_file(str(folder / "model.safetensors")))


def test_builtin_small_stem_readme_says_what_differs(exported):
    text = (exported["resnet"][1] / "README.md").read_text()
    assert "conv1: Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2)" in text and "maxpool: MaxPool2d" in text
    assert "model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)" in text
    assert "model.maxpool = torch.nn.Identity()" in text
    assert "torchvision.models.get_model('resnet18', weights=None)" in text
    info = json.loads((exported["timm_small_stem"][1] / "export.json").read_text())
    assert info["changes"] and info["library"] == "timm" and info["differences"][0].startswith("conv1:")


@pytest.mark.parametrize("name, fmt, named", [("resnet", "timm", "--format torchvision"),
                                               ("timm_small_stem", "timm", "--format safetensors"),
                                               ("vit", "torchvision", "--format timm")])
def test_a_format_the_backbone_cannot_take_is_one_line_naming_one_it_can(exported, tmp_path, name, fmt, named):
    with pytest.raises(ConfigError, match=f"format={fmt}: .*; use {named}$"):
        export_run(exported[name][0], fmt, tmp_path / "x")


def test_onnx_has_a_dynamic_batch_axis(exported, tmp_path):
    pytest.importorskip("onnx", reason="the onnx package is not installed (pip install 'selfsup[onnx]')")
    from onnx.reference import ReferenceEvaluator

    run_dir, _, _, _ = exported["timm_resnet"]
    export_run(run_dir, "onnx", tmp_path / "onnx")
    images = torch.randn(3, 3, 16, 16)  # exported with a batch of 2
    with torch.no_grad():
        ours = Run(run_dir).method().backbone.eval()(images)
    theirs = ReferenceEvaluator(str(tmp_path / "onnx" / "model.onnx")).run(None, {"images": images.numpy()})[0]
    assert theirs.shape == (3, 512) and abs(torch.from_numpy(theirs) - ours).max().item() <= 1e-4


def first_loss(run_dir: Path) -> float:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return next(r["loss_step"] for r in records if "loss_step" in r)


def test_init_from_an_export_or_a_run_starts_from_the_same_weights(exported, tmp_path):
    run_dir, folder, _, _ = exported["timm_resnet"]
    saved = load_file(str(folder / "model.safetensors"))
    losses = {}
    for name, init in (("from_export", folder), ("from_run", run_dir)):
        prepared = prepare(PretrainConfig(out=str(tmp_path / name), backbone="timm/resnet18", init=str(init),
                                          seed=1, **TINY))
        weights = weights_module(prepared.method.backbone).state_dict()
        assert weights.keys() == saved.keys() and all(torch.equal(weights[k], saved[k]) for k in saved)
        fit(prepared)
        losses[name] = first_loss(tmp_path / name)
        assert PretrainConfig.load(tmp_path / name / "config.yaml").init == str(init)
    assert losses["from_export"] == losses["from_run"]


def test_init_that_does_not_fit_is_one_line_naming_keys(exported, tmp_path):
    with pytest.raises(ConfigError, match=r"init=.*weights do not match backbone resnet18 \(missing \['conv1\.weight'"):
        prepare(PretrainConfig(out=str(tmp_path / "r"), backbone="resnet18", init=str(exported["vit"][1]), **TINY))
    with pytest.raises(ConfigError, match="init='nowhere': no such file or folder"):
        prepare(PretrainConfig(out=str(tmp_path / "s"), init="nowhere", **TINY))


def test_export_command_writes_the_folder(exported, tmp_path, capsys):
    run_dir = exported["vit"][0]
    assert cli(["export", str(run_dir), "--format", "safetensors", "--out", str(tmp_path / "st")]) == 0
    assert "wrote model.safetensors, export.json, README.md" in capsys.readouterr().out
    info = json.loads((tmp_path / "st" / "export.json").read_text())
    assert info["backbone"] == "vit_mini" and info["dim"] == 128 and info["input_shape"] == [3, 16, 16]
    weights = load_file(str(tmp_path / "st" / "model.safetensors"))
    assert weights.keys() == weights_module(Run(run_dir).method().backbone).state_dict().keys()
