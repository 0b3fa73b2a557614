"""Explicit parameter dictionaries: the currency of the functional core."""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.func import functional_call

ParamDict = dict[str, Tensor]


def named_params(module: nn.Module) -> ParamDict:
    """The module's trainable parameters as a name -> tensor dict (the tensors themselves, not copies)."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def named_buffers(module: nn.Module) -> ParamDict:
    """The module's buffers (e.g. BatchNorm running statistics) as a name -> tensor dict."""
    return dict(module.named_buffers())


def param_key(name: str) -> str:
    """A parameter's dotted name as a key of an ``nn.ParameterDict`` (which forbids dots)."""
    return name.replace(".", "__")


def detached(params: ParamDict) -> ParamDict:
    """A copy of the dict whose tensors are cut from the autograd graph."""
    return {k: v.detach() for k, v in params.items()}


def make_forward(module: nn.Module, buffers: ParamDict | None = None) -> Callable[[ParamDict, Tensor], Tensor]:
    """``forward(params, x)``: the module evaluated with ``params`` in place of its own parameters.

    The module is never mutated; any ``nn.Module`` whose forward is a function of its parameters works.
    """
    bufs = named_buffers(module) if buffers is None else buffers

    def forward(params: ParamDict, x: Tensor) -> Tensor:
        out: Tensor = functional_call(module, (params, bufs), (x,)) if bufs else functional_call(module, params, (x,))
        return out

    return forward


def has_batchnorm(module: nn.Module) -> bool:
    """True when the module contains a BatchNorm layer (whose double backward vmap gets wrong)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
