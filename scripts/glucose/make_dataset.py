#!/usr/bin/env python3
"""Generate the compact UVA/Padova glucose dataset shipped with metalearn.

The data come from the UVA/Padova type-1-diabetes simulator as packaged in
``simglucose==0.2.11``, driven through its Python API (no interactive UI).
For each of the 30 virtual patients (adolescent#001..010, adult#001..010,
child#001..010) we simulate 3 days (3*24*60 minutes, starting at midnight)
with

* ``T1DPatient.withName(name)`` (default initial state, no random init),
* ``CGMSensor.withName('GuardianRT', seed=...)`` (a reading every 5 min),
* ``InsulinPump.withName('Insulet')``,
* ``BBController()`` (basal-bolus, target 140 mg/dL),
* random meals from ``RandomScenario``, one per day (see "Seeds"),

wired together with ``T1DSimEnv`` and run with ``SimObj.simulate()``.

Seeds
-----
All seeds are derived from ``--seed`` (default 0), the patient index ``i``
(0..29 in the order above) and the day ``d`` (1..3) with
``numpy.random.SeedSequence``:

* meals of patient ``i`` on day ``d``:
  ``SeedSequence([seed, i, d, 0]).generate_state(1)[0]`` -- each day is an
  own ``RandomScenario(start_time=<midnight of day d>, seed=...)``; the
  ``DailyRandomScenario`` below hands every minute to that day's scenario.
* CGM sensor noise of patient ``i``:
  ``SeedSequence([seed, i, 0, 1]).generate_state(1)[0]`` -- one seed per
  patient for the whole 3 days, because the sensor noise is a continuous
  autoregressive process (reseeding it every day would make it jump).

Output
------
Gzip-compressed CSV, one row per patient per 5-minute sensor reading,
sorted by patient then minute, 864 rows (3 x 288) per patient:

* ``patient``  e.g. ``adult#001``; ``cohort``: adolescent / adult / child
* ``day``      1, 2, 3;  ``minute``: minutes since the start (0, 5, ..., 4315)
* ``cgm``      GuardianRT reading taken at ``minute`` (mg/dL, 0.1).  This is
  the sensor's own sample; simglucose's ``env.CGM_hist`` instead stores the
  average of the zero-order-held sensor output over the 5 simulator minutes
  (= 0.8 * previous reading + 0.2 * new reading), which we do not use.
* ``cho``      carbohydrate (g, 0.1) given to the simulator during
  [minute, minute+5), summed over its 1-minute steps.  simglucose announces a
  whole meal in a single minute (the patient model then ingests it at
  5 g/min), so a meal shows up in one row.
* ``insulin``  insulin (U, 0.001) delivered by the pump (basal + bolus)
  during [minute, minute+5), summed over the 1-minute steps.

Known simulator artefact (kept, not filtered): with seed 0, child#008's
plasma glucose reaches 0 at about minute 1170 (day 1, 19:30) after a
hypoglycaemia; the model's non-negativity clamps then freeze glucose at 0 for
the rest of the run (simglucose's gym env would end the episode at BG < 10;
SimObj does not), so its CGM stays at the sensor floor of 39 mg/dL from
there on and later meals have no effect.  Other patients dip to 39 mg/dL
but recover.

The file is written deterministically (gzip mtime 0, no file name in the gzip
header) and atomically (temp file + rename).  The expected SHA-256 is
recorded in ``src/metalearn/data/glucose_uvapadova.sha256`` (written by this
script next to the output).

Regenerate (from the repository root)::

    bash scripts/glucose/make_venv.sh .venv-simglucose
    .venv-simglucose/bin/python scripts/glucose/make_dataset.py \\
        --seed 0 --out src/metalearn/data/glucose_uvapadova.csv.gz
    sha256sum -c src/metalearn/data/glucose_uvapadova.sha256  # run in that dir

Runtime is about 9-10 minutes on one CPU core (the simulator integrates the
patient ODE minute by minute: 30 x 4320 ``dopri5`` steps).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta

warnings.filterwarnings("ignore")  # pkg_resources / gym deprecation noise

import numpy as np  # noqa: E402

from simglucose.actuator.pump import InsulinPump  # noqa: E402
from simglucose.controller.basal_bolus_ctrller import BBController  # noqa: E402
from simglucose.patient.t1dpatient import T1DPatient  # noqa: E402
from simglucose.sensor.cgm import CGMSensor  # noqa: E402
from simglucose.simulation.env import T1DSimEnv  # noqa: E402
from simglucose.simulation.scenario import Action, Scenario  # noqa: E402
from simglucose.simulation.scenario_gen import RandomScenario  # noqa: E402
from simglucose.simulation.sim_engine import SimObj  # noqa: E402

COHORTS = ("adolescent", "adult", "child")
PATIENTS = [f"{c}#{k:03d}" for c in COHORTS for k in range(1, 11)]
N_DAYS = 3
SENSOR = "GuardianRT"
PUMP = "Insulet"
START = datetime(2018, 1, 1, 0, 0, 0)  # fixed, midnight (meal times are clock times)
DEFAULT_OUT = "src/metalearn/data/glucose_uvapadova.csv.gz"
COLUMNS = ("patient", "cohort", "day", "minute", "cgm", "cho", "insulin")


def derive_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def meal_seed(base: int, patient_idx: int, day: int) -> int:
    return derive_seed(base, patient_idx, day, 0)


def sensor_seed(base: int, patient_idx: int) -> int:
    return derive_seed(base, patient_idx, 0, 1)


class DailyRandomScenario(Scenario):
    """One seeded ``RandomScenario`` per simulated day."""

    def __init__(self, start_time: datetime, seeds: list[int]):
        Scenario.__init__(self, start_time=start_time)
        self.days = [
            RandomScenario(start_time=start_time + timedelta(days=d), seed=s)
            for d, s in enumerate(seeds)
        ]

    def get_action(self, t: datetime) -> Action:
        d = min((t - self.start_time).days, len(self.days) - 1)
        return self.days[d].get_action(t)

    def reset(self) -> None:
        for s in self.days:
            s.reset()


class RecordingCGMSensor(CGMSensor):
    """GuardianRT sensor that also keeps its fresh samples by minute."""

    def __init__(self, params, seed=None):
        super().__init__(params, seed=seed)
        self.readings: dict[int, float] = {}

    def measure(self, patient):
        cgm = super().measure(patient)
        if patient.t % self.sample_time == 0:
            # at t=0 simglucose measures twice on reset; the last one is the
            # reading handed to the controller, and the one we keep.
            self.readings[int(round(patient.t))] = float(cgm)
        return cgm

    def reset(self):
        super().reset()
        self.readings = {}


class RecordingEnv(T1DSimEnv):
    """``T1DSimEnv`` that logs CHO and insulin of every simulator minute."""

    def mini_step(self, action):
        minute = int(round(self.patient.t))
        CHO, insulin, BG, CGM = super().mini_step(action)
        self.minute_log.append((minute, float(CHO), float(insulin)))
        return CHO, insulin, BG, CGM

    def _reset(self):
        super()._reset()
        self.minute_log = []


def simulate_patient(idx: int, name: str, base_seed: int) -> list[tuple]:
    cohort = name.split("#")[0]
    patient = T1DPatient.withName(name)
    sensor = RecordingCGMSensor.withName(SENSOR, seed=sensor_seed(base_seed, idx))
    pump = InsulinPump.withName(PUMP)
    scenario = DailyRandomScenario(
        START, [meal_seed(base_seed, idx, d) for d in range(1, N_DAYS + 1)]
    )
    env = RecordingEnv(patient, sensor, pump, scenario)
    sim_time = timedelta(days=N_DAYS)
    SimObj(env, BBController(), sim_time, animate=False, path=None).simulate()

    step = int(sensor.sample_time)
    n_rows = N_DAYS * 24 * 60 // step
    log = env.minute_log
    assert len(log) == n_rows * step, (name, len(log))
    assert [m for m, _, _ in log] == list(range(n_rows * step)), name
    rows = []
    for r in range(n_rows):
        minute = r * step
        chunk = log[minute : minute + step]
        cho = sum(c for _, c, _ in chunk)
        ins = sum(u for _, _, u in chunk)
        rows.append(
            (
                name,
                cohort,
                minute // (24 * 60) + 1,
                minute,
                round(sensor.readings[minute], 1),
                round(cho, 1),
                round(ins, 3),
            )
        )
    return rows


def fmt(x: float, nd: int) -> str:
    s = f"{x:.{nd}f}"
    return "0" + s[2:] if s.startswith("-0") and float(s) == 0 else s


def to_csv_bytes(rows: list[tuple]) -> bytes:
    buf = io.StringIO()
    buf.write(",".join(COLUMNS) + "\n")
    for p, c, d, m, cgm, cho, ins in rows:
        buf.write(f"{p},{c},{d},{m},{fmt(cgm, 1)},{fmt(cho, 1)},{fmt(ins, 3)}\n")
    raw = buf.getvalue().encode("ascii")
    out = io.BytesIO()
    # filename="" and mtime=0: no name / timestamp in the gzip header
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return out.getvalue()


def write_atomic(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"output path (default {DEFAULT_OUT})")
    ap.add_argument(
        "--no-sha256-file",
        action="store_true",
        help="do not write <out without .csv.gz>.sha256 next to the output",
    )
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)

    t0 = time.time()
    rows: list[tuple] = []
    for idx, name in enumerate(PATIENTS):
        tp = time.time()
        rows.extend(simulate_patient(idx, name, args.seed))
        print(f"[{idx + 1:2d}/{len(PATIENTS)}] {name}: {time.time() - tp:.1f}s", flush=True)
    elapsed = time.time() - t0

    assert len(rows) == len(PATIENTS) * N_DAYS * 288
    data = to_csv_bytes(rows)
    write_atomic(args.out, data)
    digest = hashlib.sha256(data).hexdigest()
    if not args.no_sha256_file:
        base = args.out[: -len(".csv.gz")] if args.out.endswith(".csv.gz") else args.out
        write_atomic(base + ".sha256", f"{digest}  {os.path.basename(args.out)}\n".encode())

    print(f"simulation time: {elapsed:.1f}s")
    print(f"wrote {args.out}: {len(data)} bytes, {len(rows)} rows")
    print(f"sha256: {digest}")
    cgm = np.array([r[4] for r in rows])
    cohort = np.array([r[1] for r in rows])
    for c in COHORTS:
        v = cgm[cohort == c]
        print(f"  {c:<10s} cgm mean {v.mean():6.1f}  min {v.min():6.1f}  max {v.max():6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
