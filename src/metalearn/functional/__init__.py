"""The pure functional core: parameter dicts, inner-loop rules, adaptation and meta-losses."""
from .inner_loop import (ENGINES, MODES, adapt, adapt_reference, adaptation_curve, check_mode, choose_engine,
                         inner_step, inner_step_reference, meta_backward, meta_loss, safeguarded_step)
from .params import ParamDict, detached, make_forward, named_buffers, named_params
from .rules import InnerRule, adam, per_parameter_sgd, sgd

__all__ = ["ENGINES", "MODES", "InnerRule", "ParamDict", "adapt", "adapt_reference",
           "adaptation_curve", "check_mode", "choose_engine", "detached", "inner_step", "inner_step_reference", "make_forward", "meta_backward", "meta_loss",
           "named_buffers", "named_params", "adam", "per_parameter_sgd", "safeguarded_step", "sgd"]
