import ctypes
import platform
import subprocess
import sys

import pytest
import torch

from selfsup import backbones, devices, methods
from selfsup.config import PretrainConfig
from selfsup.devices import native_bf16
from selfsup.train import run
from selfsup.train.speed import apply_speed_switches


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


MALLOC_STATE = """
import ctypes, sys, torch
from selfsup.train.speed import keep_freed_memory

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
held = lambda info: info.arena + info.hblkhd  # bytes malloc holds: heap and blocks mapped alone
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
before = libc.mallinfo2()
batch = torch.ones(64, 3, 224, 224)  # 38 MB: a batch at 224 px
mapped = libc.mallinfo2().hblkhd - before.hblkhd
del batch
print(kept, mapped, held(libc.mallinfo2()) - held(before))  # what malloc keeps of the block when freed
"""
BATCH = 64 * 3 * 224 * 224 * 4


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                    reason="mallopt and mallinfo2 are glibc's (2.33+)")
def test_keep_freed_memory_keeps_batch_sized_blocks_in_the_heap():
    """By default glibc maps a block of 38 MB on its own and unmaps it when freed, so the
    next batch's pages are faulted in again; with ``keep_freed_memory`` the block comes from
    the heap and stays there after the free, ready for the next batch."""
    def malloc_state(mode):
        kept, mapped, held = subprocess.run([sys.executable, "-c", MALLOC_STATE, mode], capture_output=True,
                                            text=True, check=True).stdout.split()
        return kept == "True", int(mapped), int(held)
    kept_default, mapped_default, held_default = malloc_state("default")
    kept, mapped, held = malloc_state("keep")
    assert kept and not kept_default
    assert mapped_default >= BATCH and held_default < BATCH  # mapped alone, handed back
    # from the heap, kept after the free: the arena grew by the block, less the few KB of free
    # heap it reused (measured 4 KB short once), against ~0 when the block is handed back
    assert mapped < BATCH and held >= BATCH - 256 * 1024


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_for_images_only_where_the_device_has_bf16_units(native, monkeypatch):
    monkeypatch.setattr(devices, "native_bf16", lambda accelerator: native)

    def resolved(data, **options):
        config = PretrainConfig(data=data, method="simclr", **options)
        return run.resolve(config, run.prepare_data(config)[0])
    assert resolved("digits").precision == ("bf16-mixed" if native else "32-true")
    assert resolved("wine").precision == "32-true"  # tables: tiny matmuls, not measured faster
    assert resolved("digits", precision="32-true").precision == "32-true"  # an explicit choice stays


def test_native_bf16_reads_the_cpu():
    expected = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16("cpu") == expected
