"""Channels-last work on the CPU for the small images of few-shot learning.

PyTorch's CPU kernels for the default (NCHW) layout are slow on these shapes: 2x2 max-pooling of
75 x 64 x 28 x 28 maps, forward and backward, is 1.6x faster in the channels-last (NHWC) layout
on two threads (``benchmarks/conv4_speed.py``), and BatchNorm and 3x3 convolutions of 64 channels
gain too. ``channels_last`` moves a tensor to that layout on the CPU and brings its gradient
back to the caller's layout, so a model can switch layouts in the middle. ``conv2d_nhwc``
computes a convolution with few input channels (a first layer) as one matrix product over image
patches whose result is already channels-last, which saves the copy into that layout and was
faster than ``F.conv2d`` plus that copy on 28 x 28 Omniglot and 84 x 84 RGB batches (1.5-1.8x,
one thread). Values and gradients of every order are unchanged: only where the numbers sit in
memory changes. On CUDA, inside ``torch.func`` transforms, and for tensors that are not 4-d both
are plain (the identity and ``F.conv2d``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

_CL, _NCHW = torch.channels_last, torch.contiguous_format


class _Relayout(torch.autograd.Function):
    """``x`` copied into ``layout``; its gradient goes back into ``back`` (the input's layout).
    The backward is itself a ``_Relayout``, so higher-order gradients work too."""

    @staticmethod
    def forward(x: Tensor, layout: torch.memory_format, back: torch.memory_format) -> Tensor:
        return x.contiguous(memory_format=layout)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.layout, ctx.back = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return _Relayout.apply(grad, ctx.back, ctx.layout), None, None


def _plain(x: Tensor) -> bool:
    return x.device.type != "cpu" or x.dim() != 4 or torch._C._functorch.is_functorch_wrapped_tensor(x)


def channels_last(x: Tensor) -> Tensor:
    """``x`` in the channels-last layout on the CPU (gradients come back in ``x``'s layout)."""
    if _plain(x) or x.is_contiguous(memory_format=_CL):
        return x
    return _Relayout.apply(x, _CL, _NCHW)


def conv2d_nhwc(x: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 0) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (stride 1) as patches times weights, the
    result channels-last on the CPU (elsewhere: ``F.conv2d``)."""
    if _plain(x):
        return F.conv2d(x, weight, bias, padding=padding)
    n, _, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    oh, ow = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    patches = F.unfold(x, (kh, kw), padding=padding).transpose(1, 2).reshape(n * oh * ow, -1)
    flat = weight.reshape(out_ch, -1).t()
    out = patches @ flat if bias is None else torch.addmm(bias, patches, flat)
    return out.view(n, oh, ow, out_ch).permute(0, 3, 1, 2)
