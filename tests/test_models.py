"""The bundled models: the CPU layout helpers and Conv4's block order are the paper's function
exactly (values, gradients and second-order gradients, in float64)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metalearn as ml
from metalearn.models import channels_last, conv2d_nhwc


def test_channels_last_moves_the_values_and_brings_gradients_back():
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    y = channels_last(x)
    assert torch.equal(y, x) and y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    gx, = torch.autograd.grad((y * y).sum(), x, create_graph=True)
    assert gx.is_contiguous() and torch.equal(gx, 2 * x)
    gg, = torch.autograd.grad(gx.pow(2).sum(), x)
    assert torch.equal(gg, 8 * x.detach())
    assert channels_last(y) is y                                  # already there: nothing to do
    z = torch.randn(3, 4, requires_grad=True)
    assert channels_last(z) is z                                  # not an image batch: untouched


@pytest.mark.parametrize("channels, padding, bias", [(1, 1, True), (3, 0, False)])
def test_conv2d_nhwc_is_conv2d_to_every_order(channels, padding, bias):
    torch.manual_seed(0)
    x = torch.randn(2, channels, 6, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, channels, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True) if bias else None
    y = conv2d_nhwc(x, w, b, padding)
    assert torch.allclose(y, F.conv2d(x, w, b, padding=padding), rtol=0, atol=1e-12)
    assert y.is_contiguous(memory_format=torch.channels_last)
    inputs = (x, w) + ((b,) if bias else ())
    f = lambda *a: conv2d_nhwc(a[0], a[1], a[2] if bias else None, padding)  # noqa: E731
    assert torch.autograd.gradcheck(f, inputs) and torch.autograd.gradgradcheck(f, inputs)


def _paper_conv4(model: ml.models.Conv4) -> nn.Module:
    """The paper's block order (conv, BN, ReLU, pool) with ``model``'s weights."""
    layers = []
    for conv, bn in zip(model.features[0::4], model.features[1::4]):
        layers += [conv, bn, nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(nn.Sequential(*layers), nn.Flatten(), model.head)


@pytest.mark.parametrize("order, engine", [("second_order", "loop"), ("first_order", "loop"), ("first_order", "vmap")])
def test_conv4_is_the_papers_block_order(order, engine):
    torch.manual_seed(0)
    model = ml.models.conv4(1, 3, width=4, image_size=28).double()
    ref = _paper_conv4(model)
    x = torch.randn(6, 1, 28, 28, dtype=torch.float64)
    assert torch.allclose(model(x), ref(x), rtol=0, atol=1e-12)
    batch = ml.TaskBatch(torch.randn(2, 3, 1, 28, 28, dtype=torch.float64), torch.arange(3).repeat(2, 1),
                         torch.randn(2, 6, 1, 28, 28, dtype=torch.float64), torch.arange(3).repeat(2, 2))
    grads = []
    for m in (model, ref):
        m.zero_grad()
        ml.MAML(m, inner_lr=0.4, inner_steps=2, mode=order, loss="cross_entropy", engine=engine).meta_loss(batch).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_conv4_gradients_keep_the_parameters_layout():
    model = ml.models.conv4(1, 3, width=4, image_size=28)
    loss = model(torch.randn(5, 1, 28, 28)).logsumexp(1).sum()
    for (name, p), g in zip(model.named_parameters(), torch.autograd.grad(loss, list(model.parameters()))):
        assert g.stride() == p.stride(), name
