"""The pure functional core: parameter dicts, inner-loop rules, adaptation and meta-losses."""
from .inner_loop import (ENGINES, MODES, adapt, adapt_reference, adaptation_curve, check_mode, choose_engine,
                         meta_loss)
from .params import ParamDict, detached, make_forward, named_buffers, named_params
from .rules import InnerRule, sgd

__all__ = ["ENGINES", "MODES", "InnerRule", "ParamDict", "adapt", "adapt_reference",
           "adaptation_curve", "check_mode", "choose_engine", "detached", "make_forward", "meta_loss",
           "named_buffers", "named_params", "sgd"]
