"""The baseline a run is compared against: the algorithm its task family declares (``baseline``),
trained once with the run's own budget in ``RUN/baseline`` and reused by every evaluator and report
(Finn et al., 2017, compare MAML with such a pretrained network fine-tuned at test time)."""
from __future__ import annotations

import copy

from ..algorithms import Algorithm
from ..config import Config
from ..protocols import declared
from ..runs import Run, load_checkpoint
from ..training.build import build_trainer
from ..training.loading import load_algorithm


def run_baseline(cfg: Config, family: object) -> str | None:
    """The baseline algorithm that ``evaluate`` trains beside a run of ``cfg`` (the family's
    declared one), or None (none declared, or the run is that baseline)."""
    name: str | None = declared(family, "baseline")
    return name if name and name != cfg.algo.name else None


def baseline_config(cfg: Config, name: str) -> Config:
    """The transfer baseline's config: same task family, model, steps and meta-batch (so the same
    number of tasks seen), with the baseline algorithm ``name`` (joint training, no inner loop)."""
    base = copy.deepcopy(cfg)
    base.algo.name = name
    return base


def _baseline_done(brun: Run, base_cfg: Config) -> bool:
    return brun.last_checkpoint.is_file() and int(load_checkpoint(brun.last_checkpoint)["step"]) >= base_cfg.train.steps


def baseline_is_trained(run: Run, cfg: Config, name: str) -> bool:
    """Whether ``RUN/baseline`` holds the baseline ``name`` trained to its full steps."""
    return _baseline_done(Run(run.path / "baseline"), baseline_config(cfg, name))


def trained_baseline(run: Run, cfg: Config, name: str) -> Algorithm | None:
    """The baseline ``name`` of ``RUN/baseline`` when it is fully trained, else None (never trains)."""
    base_cfg = baseline_config(cfg, name)
    brun = Run(run.path / "baseline")
    return load_algorithm(brun, base_cfg) if _baseline_done(brun, base_cfg) else None


def ensure_baseline(run: Run, cfg: Config, name: str, progress: bool = True) -> Algorithm:
    """Train (or finish training) the baseline ``name`` in ``RUN/baseline``, then load it."""
    base_cfg = baseline_config(cfg, name)
    brun = Run(run.path / "baseline")
    if not _baseline_done(brun, base_cfg):
        trainer = build_trainer(base_cfg, brun.path, progress=progress)
        trainer.lock_advice = (f"another 'metalearn evaluate' of {run.path} is training its {name} baseline; wait "
                               f"for it to finish, then evaluate again")
        trainer.run(resume=brun.last_checkpoint.is_file())
    return load_algorithm(brun, base_cfg)
