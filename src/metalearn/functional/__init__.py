"""The pure functional core: parameter dicts, inner-loop rules, adaptation and meta-losses.

``meta_loss``, ``meta_backward`` and ``adaptation_curve`` (from :mod:`.contract`) take any
meta-batch: supervised ``TaskBatch`` es take the fast paths of :mod:`.inner_loop`, ``TaskTree`` s
(any task loss) the per-task contract of :mod:`.task_loop`."""
from .contract import TaskRecord, adaptation_curve, meta_backward, meta_loss, supervised
from .inner_loop import (
           ENGINES,
           MODES,
           adapt,
           adapt_path,
           adapt_reference,
           check_mode,
           choose_engine,
           inner_step,
           inner_step_reference,
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
from .task_loop import Objective, adapt_task, first_order_step, query_loss

__all__ = ["ENGINES", "MODES", "InnerRule", "Objective", "ParamDict", "TaskRecord", "Transform", "adam", "adapt",
           "adapt_path", "adapt_reference", "adapt_task", "adaptation_curve", "chain", "check_mode", "choose_engine",
           "clip_by_global_norm", "detached", "detached_rule", "first_order_step", "inner_step",
           "inner_step_reference", "make_forward", "meta_backward", "meta_loss", "momentum_sgd", "named_buffers",
           "named_params", "nesterov", "nesterov_trace", "per_parameter_sgd", "query_loss", "rmsprop",
           "safeguarded_step", "scale", "scale_by_adam", "scale_by_learned", "scale_by_rms", "sgd", "supervised",
           "trace"]
