import platform
import subprocess
import sys

import pytest
import torch

from selfsup import backbones, methods
from selfsup.config import PretrainConfig
from selfsup.train import run
from selfsup.train.speed import apply_speed_switches, native_bf16


def simclr():
    torch.manual_seed(0)
    return methods.create("simclr", backbones.create("smallcnn"))


def test_channels_last_gives_the_same_embeddings_and_names():
    plain, fast = simclr().eval(), apply_speed_switches(simclr(), channels_last=True).eval()
    assert list(plain.state_dict()) == list(fast.state_dict())
    assert fast.backbone.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    fast.backbone.features[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.rand(4, 3, 16, 16)
    assert torch.allclose(plain.embed(x), fast.embed(x), atol=1e-5)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)  # inputs converted too


def test_compile_keeps_parameter_names():
    method = apply_speed_switches(simclr(), compile=True)
    assert list(method.state_dict()) == list(simclr().state_dict())


PAGE_FAULTS = """
import resource, sys, torch
from selfsup.train.speed import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
faults, batch = [], None
for step in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del batch
    batch = torch.ones(64, 3, 224, 224)  # 38 MB: a batch at 224 px, freed when the next comes
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, max(faults[-4:]))  # steady state: glibc settles its free lists within ~10 steps
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_stops_page_faults_on_reallocation():
    """Without it glibc maps blocks over 32 MB afresh each time (smaller ones too, when a
    freed stretch at the top of the heap is trimmed) and the kernel faults every page in
    again; with it freed memory is reused (page faults counted, not timed)."""
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", PAGE_FAULTS, mode], capture_output=True, text=True,
                             check=True).stdout.split()
        return out[0] == "True", int(out[1])
    (kept_default, default), (kept, keeping) = faults("default"), faults("keep")
    assert kept and not kept_default
    assert default > 5000  # ~9,400 pages of 4 KiB a batch
    assert keeping < 50


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_for_images_only_where_the_device_has_bf16_units(native, monkeypatch):
    monkeypatch.setattr(run, "native_bf16", lambda accelerator: native)

    def resolved(data, **options):
        config = PretrainConfig(data=data, method="simclr", **options)
        return run.resolve(config, run.prepare_data(config)[0])
    assert resolved("digits").precision == ("bf16-mixed" if native else "32-true")
    assert resolved("wine").precision == "32-true"  # tables: tiny matmuls, not measured faster
    assert resolved("digits", precision="32-true").precision == "32-true"  # an explicit choice stays


def test_native_bf16_reads_the_cpu():
    expected = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16("cpu") == expected
