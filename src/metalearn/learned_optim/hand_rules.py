"""Hand-designed optimizers as pure inner-loop rules on batched parameter dicts, the baselines
the learned optimizer is compared with: SGD, SGD with Nesterov momentum, RMSprop and Adam."""
from __future__ import annotations

from ..functional import InnerRule, ParamDict, adam, sgd


def nesterov(lr: float, momentum: float = 0.9) -> InnerRule:
    def init(params: ParamDict) -> ParamDict:
        return {k: p.detach() * 0 for k, p in params.items()}

    def update(grads: ParamDict, buf: ParamDict, params: ParamDict) -> tuple[ParamDict, ParamDict]:
        buf = {k: momentum * buf[k] + grads[k] for k in params}
        return {k: p - lr * (grads[k] + momentum * buf[k]) for k, p in params.items()}, buf

    return InnerRule(init, update, name=f"nesterov(lr={lr})")


def rmsprop(lr: float, alpha: float = 0.99, eps: float = 1e-8) -> InnerRule:
    def init(params: ParamDict) -> ParamDict:
        return {k: p.detach() * 0 for k, p in params.items()}

    def update(grads: ParamDict, sq: ParamDict, params: ParamDict) -> tuple[ParamDict, ParamDict]:
        sq = {k: alpha * sq[k] + (1 - alpha) * grads[k] ** 2 for k in params}
        return {k: p - lr * grads[k] / (sq[k].sqrt() + eps) for k, p in params.items()}, sq

    return InnerRule(init, update, name=f"rmsprop(lr={lr})")


HAND_RULES = {"SGD": sgd, "Nesterov": nesterov, "RMSprop": rmsprop, "Adam": adam}
