import torch

from selfsup import backbones, methods
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
