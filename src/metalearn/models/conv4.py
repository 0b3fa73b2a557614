"""Conv4: the few-shot image classifier of Vinyals et al. (2016), used by MAML (Finn et al. 2017):
four blocks of 3x3 convolution (``width`` filters), BatchNorm, ReLU and 2x2 max-pooling, then a
linear head with one output per way.

BatchNorm keeps no running statistics: it always normalises with the statistics of the batch at
hand, as MAML does in its inner and outer loops (transductive at test time).

Each block runs convolution, BatchNorm, pooling, then ReLU: max-pooling and ReLU commute
(``max(relu(a), relu(b)) = relu(max(a, b))``, gradients included), so this is the same function
as the paper's conv-BN-ReLU-pool with the ReLU on a quarter of the values. On the CPU everything
after the first convolution runs in the channels-last layout (``cpu_layout``), where PyTorch's
pooling, BatchNorm and convolution kernels are faster on these small maps. Parameter names are
those of the paper's order.
"""
from __future__ import annotations

from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from .cpu_layout import channels_last, conv2d_nhwc


class Conv4(nn.Module):
    """The Conv4 of Vinyals et al. (2016) as used by MAML (Finn et al. 2017): ``blocks`` blocks of 3x3
    convolution, BatchNorm (batch statistics), ReLU and 2x2 max-pooling, then a linear head.

    Args:
        in_channels: image channels (1 for Omniglot).
        ways: classes of the head.
        width: channels of every convolution (64 in the paper).
        image_size: input height and width.
        blocks: convolutional blocks.

    References:
        Finn, Abbeel and Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
        Networks", ICML.
    """
    def __init__(self, in_channels: int = 1, ways: int = 5, width: int = 64, image_size: int = 28,
                 blocks: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for _ in range(blocks):
            layers += [nn.Conv2d(c, width, 3, padding=1),
                       nn.BatchNorm2d(width, track_running_stats=False),
                       nn.MaxPool2d(2),
                       nn.ReLU()]
            c, size = width, size // 2
        if size < 1:
            raise ValueError(f"image_size {image_size} is too small for {blocks} pooling blocks")
        self.features = nn.Sequential(*layers)
        # ways=0: no head, the model outputs its flattened features (ProtoNets, transfer encoders)
        self.head = nn.Linear(width * size * size, ways) if ways > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # on the CPU: the first convolution (few input channels) as a patch product that lands
        # channels-last, everything after it channels-last; the later convolutions take their
        # weight channels-last too, so their weight gradients keep the parameter's layout
        for i, layer in enumerate(self.features):
            if i == 0:
                first = cast(nn.Conv2d, layer)
                x = conv2d_nhwc(x, first.weight, first.bias, padding=1)
            elif isinstance(layer, nn.Conv2d):
                x = F.conv2d(x, channels_last(layer.weight), layer.bias, padding=1)
            else:
                x = layer(x)
        return self.head(x.flatten(1))


def min_image_size(blocks: int = 4) -> int:
    """The smallest square input a Conv4 of ``blocks`` blocks takes: each 2x2 max-pool halves it."""
    return 2 ** blocks


def conv4(in_channels: int = 1, ways: int = 5, width: int = 64, image_size: int = 28) -> Conv4:
    """A ``Conv4`` for ``image_size`` square inputs with ``in_channels`` channels and ``ways`` outputs."""
    return Conv4(in_channels, ways, width, image_size)
