"""The pure functional core: parameter dicts, inner-loop rules, adaptation and meta-losses."""
from .inner_loop import (
           ENGINES,
           MODES,
           adapt,
           adapt_path,
           adapt_reference,
           adaptation_curve,
           check_mode,
           choose_engine,
           inner_step,
           inner_step_reference,
           meta_backward,
           meta_loss,
           safeguarded_step,
)
from .params import ParamDict, detached, make_forward, named_buffers, named_params
from .rules import (
           InnerRule,
           Transform,
           adam,
           chain,
           clip_by_global_norm,
           detached_rule,
           momentum_sgd,
           nesterov,
           nesterov_trace,
           per_parameter_sgd,
           rmsprop,
           scale,
           scale_by_adam,
           scale_by_learned,
           scale_by_rms,
           sgd,
           trace,
)
from .task_loop import adapt_task, adaptation_curve_tasks, meta_backward_tasks, meta_loss_tasks

__all__ = ["ENGINES", "MODES", "InnerRule", "ParamDict", "Transform", "adam", "adapt", "adapt_path", "adapt_reference",
           "adapt_task", "adaptation_curve", "adaptation_curve_tasks", "chain", "check_mode", "choose_engine",
           "clip_by_global_norm", "detached", "detached_rule", "inner_step", "inner_step_reference", "make_forward",
           "meta_backward", "meta_backward_tasks", "meta_loss", "meta_loss_tasks", "momentum_sgd", "named_buffers",
           "named_params", "nesterov", "nesterov_trace", "per_parameter_sgd", "rmsprop", "safeguarded_step", "scale",
           "scale_by_adam", "scale_by_learned", "scale_by_rms", "sgd", "trace"]
