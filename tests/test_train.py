"""The trainer: resumable runs with bit-identical weights, NaN handling, logs."""
import json
import os
import signal

import pytest
import torch

import metalearn as ml
from metalearn.runs import load_checkpoint


def trainer(out, steps, seed=0, tasks=None, **kw):
    torch.manual_seed(seed)
    algo = ml.MAML(ml.mlp(1, [16, 16], 1), inner_lr=0.01)
    opts = dict(meta_batch=5, lr=1e-3, seed=seed, log_every=4, val_every=8, val_tasks=20,
                ckpt_every=5, progress=False)
    opts.update(kw)
    return ml.Trainer(algo, tasks or ml.SinusoidTasks(shots=5), out, steps=steps, **opts)


def weights(path):
    return load_checkpoint(path)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_extending_a_finished_run_gives_bit_identical_weights(tmp_path):
    full = trainer(tmp_path / "full", 30).run()
    assert full.step == 30 and not full.interrupted
    part = trainer(tmp_path / "part", 13).run()  # ends between periodic checkpoints
    assert part.step == 13
    resumed = trainer(tmp_path / "part", 30).run(resume=True)
    assert resumed.step == 30
    assert_same_weights(weights(tmp_path / "full/checkpoints/last.pt"),
                        weights(tmp_path / "part/checkpoints/last.pt"))


class SignalAt:
    """A task family that delivers SIGINT to this process while sampling meta-step ``at``."""

    def __init__(self, base, at):
        self.base, self.at, self.calls = base, at, 0

    def sample(self, n, generator=None):
        if n == 5:  # training batches (validation draws 20)
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGINT)
        return self.base.sample(n, generator)


def test_ctrl_c_finishes_the_step_saves_and_resume_matches(tmp_path):
    before = signal.getsignal(signal.SIGINT)   # (a library earlier in the session may have changed it)
    reference = trainer(tmp_path / "ref", 20).run()
    assert not reference.interrupted
    res = trainer(tmp_path / "int", 20, tasks=SignalAt(ml.SinusoidTasks(shots=5), 7)).run()
    assert res.interrupted and res.step == 7
    assert load_checkpoint(tmp_path / "int/checkpoints/last.pt")["step"] == 7
    trainer(tmp_path / "int", 20).run(resume=True)
    assert_same_weights(weights(tmp_path / "ref/checkpoints/last.pt"),
                        weights(tmp_path / "int/checkpoints/last.pt"))
    # Logs and best checkpoint read as if the run had never stopped.
    ref_rows, int_rows = ml.Run(tmp_path / "ref").read_metrics(), ml.Run(tmp_path / "int").read_metrics()
    assert [r["step"] for r in int_rows] == [r["step"] for r in ref_rows]
    assert [r["train_loss"] for r in int_rows] == [r["train_loss"] for r in ref_rows]
    assert_same_weights(weights(tmp_path / "ref/checkpoints/best.pt"),
                        weights(tmp_path / "int/checkpoints/best.pt"))
    # The handler was restored: SIGINT is what it was before training.
    assert signal.getsignal(signal.SIGINT) is before


class NaNAfter:
    def __init__(self, base, after):
        self.base, self.after, self.calls = base, after, 0

    def sample(self, n, generator=None):
        b = self.base.sample(n, generator)
        if n == 5:
            self.calls += 1
            if self.calls > self.after:
                return ml.TaskBatch(b.support_x, b.support_y * float("nan"), b.query_x, b.query_y * float("nan"))
        return b


@pytest.mark.parametrize("sync_every_step", [True, False], ids=["cpu-sync", "deferred-like-cuda"])
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, sync_every_step):
    t = trainer(tmp_path / "nan", 20, tasks=NaNAfter(ml.SinusoidTasks(shots=5), 12))
    t.sync_every_step = sync_every_step  # deferred: losses read at log/checkpoint steps, as on CUDA
    with pytest.raises(ml.MetalearnError, match=r"meta-loss became nan at step 13.*step 10"):
        t.run()
    state = load_checkpoint(tmp_path / "nan/checkpoints/last.pt")
    assert state["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_deferred_loss_reading_logs_the_same_losses(tmp_path):
    rows = {}
    for sync in (True, False):
        t = trainer(tmp_path / str(sync), 16)
        t.sync_every_step = sync
        t.run()
        rows[sync] = [json.loads(line) for line in (tmp_path / str(sync) / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("train_loss") for r in rows[True]] == [r.get("train_loss") for r in rows[False]]
    assert sum("train_loss" in r for r in rows[True]) >= 2


def test_metrics_are_json_lines_and_tensorboard_events(tmp_path):
    trainer(tmp_path / "r", 16).run()
    rows = [json.loads(line) for line in (tmp_path / "r/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 8, 12, 16]
    assert all("train_loss" in r for r in rows) and "val_loss" in rows[1] and "val_loss" not in rows[0]
    loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader")
    (event_file,) = (tmp_path / "r/tb").iterdir()
    seen = {}
    for event in loader.EventFileLoader(str(event_file)).Load():
        for v in event.summary.value:
            seen.setdefault(v.tag, []).append((event.step, v.simple_value if v.HasField("simple_value")
                                               else v.tensor.float_val[0]))
    assert [s for s, _ in seen["train_loss"]] == [4, 8, 12, 16]
    assert seen["val_loss"][0][1] == pytest.approx(rows[1]["val_loss"], rel=1e-6)


def test_best_checkpoint_has_the_lowest_validation_loss(tmp_path):
    trainer(tmp_path / "b", 24).run()
    rows = ml.Run(tmp_path / "b").read_metrics()
    vals = [(r["val_loss"], r["step"]) for r in rows if "val_loss" in r]
    best = load_checkpoint(tmp_path / "b/checkpoints/best.pt")
    assert (best["val_loss"], best["step"]) == pytest.approx(min(vals))


def test_trainer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ml.MetalearnError, match="meta_batch must be a positive integer"):
        trainer(tmp_path / "x", 5, meta_batch=0)


def test_time_limit_stops_saves_and_resumes(tmp_path):
    res = trainer(tmp_path / "t", 10_000, time_limit=0.01, keep=[3]).run()  # 0.6 s of training
    assert res.time_limited and not res.interrupted and 3 <= res.step < 10_000
    state = load_checkpoint(tmp_path / "t/checkpoints/last.pt")
    assert state["step"] == res.step
    assert load_checkpoint(tmp_path / "t/checkpoints/step-3.pt")["step"] == 3
    last_row = ml.Run(tmp_path / "t").read_metrics()[-1]
    assert last_row["step"] == res.step and "val_loss" in last_row  # validated before stopping
    more = trainer(tmp_path / "t", res.step + 5).run(resume=True)
    assert more.step == res.step + 5 and not more.time_limited


def test_step_end_work_is_callbacks_that_can_be_replaced_or_added(tmp_path):
    """Checkpointing, validation and logging are the trainer's step-end callbacks: the default
    order, a replaced checkpoint policy, and an added callback that sees every row."""
    from metalearn.training.callbacks import CheckLosses, Checkpoints, RowLog, TrainingRow, Validation

    t = trainer(tmp_path / "a", steps=10)
    assert [type(c) for c in t.step_end] == [CheckLosses, TrainingRow, Validation, RowLog, Checkpoints]

    class CountSaves(Checkpoints):
        saves = []

        def on_step_end(self, trainer, end):
            if end.step % trainer.ckpt_every == 0 or end.last:
                self.saves.append(end.step)
            super().on_step_end(trainer, end)

    class Rows:
        seen = []

        def on_step_end(self, trainer, end):
            if end.row:
                self.seen.append((end.step, sorted(end.row)))

    t.step_end[-1] = CountSaves()
    t.step_end.append(Rows())
    t.run()
    assert CountSaves.saves == [5, 10]
    assert [s for s, _ in Rows.seen] == [4, 8, 10] and "val_loss" in Rows.seen[1][1]
    logged = [json.loads(line)["step"] for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [4, 8, 10]
