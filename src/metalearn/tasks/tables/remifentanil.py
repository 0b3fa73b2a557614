"""``remifentanil``: predict a new patient's drug concentrations from their first few measured
samples, one task per patient of Minto et al.'s 65 (:mod:`metalearn.data.remifentanil`).

Protocol: patients split by a fixed seed (``task.split_seed``) into 45 meta-training, 10
validation and 10 test patients. Rows are a patient's measured samples in time order; at
evaluation the support is the first ``k`` samples and the query every later one (during training,
a random cut per task). The target is the log concentration (RMSE in log units: 0.1 is about a 10%
error). The field's own baselines: a two-compartment population pharmacokinetic model
(:mod:`metalearn.models.pk`) at its typical values, and the same model fitted to the patient's
support samples (maximum a posteriori), whose prior strength is chosen on the validation patients.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...data.remifentanil import FEATURES, remifentanil_dosing, remifentanil_table
from ...data.tables import Group, TableSpec, split_groups
from ...models.pk import Population, concentrations, fit_patient, fit_population
from .grouped import DomainBaseline, GroupSplitSettings, TableTasks, check_bundled

SPLIT = (45, 10, 10)                   # patients: meta-train, validation, test
PRIOR_SCALES = (0.1, 0.25, 0.5, 1.0)   # multiples of the population SD tried on the validation patients


class RemifentanilTasks(TableTasks):
    """Per-patient remifentanil concentrations; see the module docstring."""
    settings = GroupSplitSettings

    validation_names: tuple[str, ...] | list[str] = ()   # set by from_config
    _pk: dict[int, Population]
    _population: Population | None = None

    @classmethod
    def from_config(cls, t: Any, split: str, shots: int, queries: int, horizon: int | None = None,
                    cross_domain: bool = False, fitted: dict[str, Any] | None = None,
                    needs_rows: bool = True) -> RemifentanilTasks:
        spec = TableSpec(group="id", target="log_conc", features=list(FEATURES), time="time", categorical=["sex"])
        table = remifentanil_table()
        source = "the remifentanil data"
        family = cls.from_frame(table, spec, split, shots, queries, SPLIT, t.split_seed,
                                name="remifentanil (Minto 1997)", source=source, units="log ng/mL",
                                fitted=fitted, data_id=check_bundled(fitted, table, source))
        assert isinstance(family, RemifentanilTasks)
        names = sorted(table["id"].unique())
        family.validation_names = split_groups(names, SPLIT, t.split_seed)["validation"]
        family._pk, family._population = {}, None
        return family

    # ---- the population PK baseline --------------------------------------------------------------
    def _samples(self, name: str, rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        times, rates = remifentanil_dosing()[name]
        return times, rates, rows["abs_time"].to_numpy(dtype=np.float64), rows["log_conc"].to_numpy(dtype=np.float64)

    def population(self) -> Population:
        if self._population is None:
            self._population = fit_population([self._samples(g.name, g.frame) for g in self.train_groups])
        return self._population

    def _predict(self, pop: Population, name: str, frame: Any, support: np.ndarray, query: np.ndarray) -> np.ndarray:
        times, rates, at, y = self._samples(name, frame)
        theta = fit_patient(times, rates, at[support], y[support], pop)
        with torch.no_grad():
            pred = concentrations(theta, torch.tensor(times), torch.tensor(rates), torch.tensor(at[query]))
        return pred.clamp_min(1e-12).log().numpy()

    def prior_for(self, k: int) -> Population:
        """The population prior, its spread scaled by the factor that predicts the validation
        patients best from their first ``k`` samples."""
        if k not in self._pk:
            pop = self.population()
            table = remifentanil_table()
            errors = {}
            for c in PRIOR_SCALES:
                scaled = Population(pop.mean, pop.sd * c, pop.sigma)
                errs = []
                for name in self.validation_names:
                    rows = table[table["id"] == name].sort_values("time")
                    n = len(rows)
                    pred = self._predict(scaled, name, rows, np.arange(min(k, n - 1)), np.arange(min(k, n - 1), n))
                    errs.append(float(np.sqrt(np.mean((pred - rows["log_conc"].to_numpy()[min(k, n - 1):]) ** 2))))
                errors[c] = float(np.mean(errs))
            best = min(errors, key=lambda c: errors[c])
            self._pk[k] = Population(pop.mean, pop.sd * best, pop.sigma)
        return self._pk[k]

    def domain_baselines(self) -> dict[str, DomainBaseline]:
        def typical(g: Group, support: Tensor, query: Tensor) -> np.ndarray:
            return self._predict(self.population(), g.name, g.frame, np.zeros(0, dtype=np.int64), query.numpy())

        def fitted(g: Group, support: Tensor, query: Tensor) -> np.ndarray:
            return self._predict(self.prior_for(len(support)), g.name, g.frame, support.numpy(), query.numpy())

        return {"population PK model (2 compartments)": typical,
                "population PK, fitted to the patient (MAP)": fitted}
