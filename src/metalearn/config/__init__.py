"""Configuration at the CLI edge: dataclass defaults (``schema``), a YAML preset or file on top
(``presets``), then ``key=value`` overrides (``coercion``), then range checks (``validation``).
Library classes take plain arguments."""
from ..tasks.few_shot.settings import EPISODES
from .coercion import apply_overrides, config_from_dict, flatten, parse_override
from .migration import migrate_config
from .presets import list_presets, load_preset
from .schema import AlgoConfig, Config, EvalConfig, FedConfig, LogConfig, ModelConfig, TaskConfig, TrainConfig
from .validation import check_device, check_model_keys, check_task_keys, float_fields, validate

__all__ = ["EPISODES", "AlgoConfig", "Config", "EvalConfig", "FedConfig", "LogConfig", "ModelConfig", "TaskConfig",
           "TrainConfig", "apply_overrides", "check_device", "check_model_keys", "check_task_keys", "config_from_dict",
           "flatten", "float_fields", "list_presets", "load_preset", "migrate_config", "parse_override", "validate"]
