"""Episode sampler properties, the Conv4 model's meta-gradient, and the image CLI end to end."""
import csv

import numpy as np
import pytest
import torch
from PIL import Image

import metalearn as ml
from metalearn.cli.main import main
from metalearn.data.images import ImageDataset
from metalearn.errors import ConfigError
from metalearn.functional import make_forward, meta_loss, named_params, sgd
from metalearn.tasks import FewShotTasks


def toy_dataset(classes=12, per_class=7, size=6):
    """Each image's pixels encode (class, index), so episodes can be decoded exactly."""
    per, names = [], []
    for c in range(classes):
        n = per_class + (c % 3)  # unequal class sizes
        imgs = torch.zeros(n, 1, size, size, dtype=torch.uint8)
        imgs[:, 0, 0, 0] = c
        imgs[:, 0, 0, 1] = torch.arange(n, dtype=torch.uint8)
        per.append(imgs)
        names.append(f"c{c}")
    return ImageDataset.from_class_lists(per, names)


def decode(x):
    return (x[..., 0, 0, 0] * 255).round().long(), (x[..., 0, 0, 1] * 255).round().long()


def test_episodes_are_balanced_disjoint_and_permuted():
    fam = FewShotTasks(toy_dataset(), ways=5, shots=2, queries=3)
    b = fam.sample(200, torch.Generator().manual_seed(0))
    assert b.support_x.shape == (200, 10, 1, 6, 6) and b.query_x.shape == (200, 15, 1, 6, 6)
    for t in range(200):
        assert torch.bincount(b.support_y[t], minlength=5).tolist() == [2] * 5
        assert torch.bincount(b.query_y[t], minlength=5).tolist() == [3] * 5
        sc, si = decode(b.support_x[t])
        qc, qi = decode(b.query_x[t])
        # one class per label, distinct classes per episode
        label_class = {int(y): int(c) for y, c in zip(b.support_y[t], sc)}
        assert len(set(label_class.values())) == 5
        assert all(label_class[int(y)] == int(c) for y, c in zip(b.query_y[t], qc))
        # support and query images are different images
        assert not {(int(c), int(i)) for c, i in zip(sc, si)} & {(int(c), int(i)) for c, i in zip(qc, qi)}
    first = {int(decode(b.support_x[t])[0][0]) for t in range(200)}
    assert len(first) == 12, "label 0 must map to different classes across episodes"


def test_same_seed_same_episodes():
    fam = FewShotTasks(toy_dataset(), ways=3, shots=1, queries=2)
    a = fam.sample(5, torch.Generator().manual_seed(7))
    b = fam.sample(5, torch.Generator().manual_seed(7))
    c = fam.sample(5, torch.Generator().manual_seed(8))
    assert torch.equal(a.query_x, b.query_x) and not torch.equal(a.query_x, c.query_x)


def test_sampler_rejects_impossible_episodes():
    with pytest.raises(ml.ConfigError, match="ways=13 but this split has 12 classes; use ways <= 12"):
        FewShotTasks(toy_dataset(), ways=13, shots=1, queries=1)
    with pytest.raises(ml.ConfigError, match="shots \\+ queries = 8 but the smallest class has 7 images"):
        FewShotTasks(toy_dataset(), ways=2, shots=4, queries=4)


def test_conv4_second_order_meta_gradient_matches_finite_differences(fd_check):
    """Batch-statistics BatchNorm inside the inner loop, differentiated twice, in float64."""
    torch.manual_seed(0)
    model = ml.models.conv4(1, 3, width=3, image_size=16).double()
    fam = FewShotTasks(toy_dataset(classes=6, size=16), ways=3, shots=2, queries=2)
    batch = fam.sample(2, torch.Generator().manual_seed(1)).to(dtype=torch.float64)
    batch = ml.TaskBatch(batch.support_x + 0.1 * torch.randn_like(batch.support_x), batch.support_y,
                         batch.query_x + 0.1 * torch.randn_like(batch.query_x), batch.query_y)
    fwd, params = make_forward(model), named_params(model)
    ce = torch.nn.functional.cross_entropy
    fd_check(lambda: meta_loss(fwd, ce, params, batch, sgd(0.3), 2, "second_order", "loop"), list(params.values()))


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def omniglot_run(tmp_path_factory):
    import os
    from pathlib import Path
    if not (Path(os.environ["METALEARN_DATA_DIR"]) / "omniglot/images_background.zip").is_file():
        pytest.skip("no local Omniglot copy")
    out = tmp_path_factory.mktemp("omni") / "run"
    code = main(["train", "omniglot-5w1s", "--out", str(out), "--steps", "6", "--quiet",
                 "--set", "model.width=8", "--set", "train.meta_batch=4", "--set", "train.val_every=3",
                 "--set", "train.val_tasks=10", "--set", "train.log_every=3", "--set", "eval.tasks=20",
                 "--set", "train.threads=1"])
    assert code == 0
    return out


def test_omniglot_train_evaluate_report_end_to_end(omniglot_run, capsys):
    rows = ml.Run(omniglot_run).read_metrics()
    assert [r["step"] for r in rows] == [3, 6] and all(0 <= r["val_acc"] <= 1 for r in rows)
    assert main(["evaluate", str(omniglot_run), "--quiet", "--episodes", "20"]) == 0
    out = capsys.readouterr().out
    assert "accuracy (%)" in out and "| maml |" in out
    assert main(["evaluate", str(omniglot_run), "--quiet", "--episodes", "10", "--dataset", "mnist"]) == 0
    assert (omniglot_run / "eval/eval_mnist_k1.json").is_file()
    assert main(["report", str(omniglot_run), "--quiet"]) == 0
    for name in ("training.png", "episode.png", "steps.png"):
        assert (omniglot_run / "report" / name).stat().st_size > 5000


def test_adapt_on_user_folders(omniglot_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    sup, qry = tmp_path / "support", tmp_path / "query"
    for cls in ("alpha", "beta", "gamma"):
        for i in range(2):
            write_png(sup / cls / f"{i}.png", 255 - rng.integers(0, 40, (40, 40)))  # light background
        write_png(qry / cls / "q.png", 255 - rng.integers(0, 40, (40, 40)))
    out = tmp_path / "pred.csv"
    assert main(["adapt", str(omniglot_run), "--support", str(sup), "--query", str(qry), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "adapted to 3 classes (alpha, beta, gamma) from 6 support images" in printed
    assert "query accuracy:" in printed
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["image", "predicted", "p_alpha", "p_beta", "p_gamma"] and len(rows) == 4
    for r in rows[1:]:
        assert r[1] in ("alpha", "beta", "gamma")
        assert sum(map(float, r[2:])) == pytest.approx(1.0, abs=1e-3)


def error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_adapt_errors(omniglot_run, tmp_path, capsys):
    img = np.zeros((28, 28))
    sup = tmp_path / "s"
    for c in "abcdef":
        write_png(sup / c / "1.png", img)
    write_png(tmp_path / "q" / "1.png", img)
    base = ["adapt", str(omniglot_run), "--support", str(sup), "--query", str(tmp_path / "q"), "--out", str(tmp_path / "p.csv")]
    assert "support folder has 6 classes but the model was meta-trained for 5-way tasks" in error(capsys, base)
    (sup / "f" / "1.png").unlink()
    assert f"class folder {sup / 'f'} has no images" in error(capsys, base)
    (sup / "f").rmdir()
    write_png(tmp_path / "q" / "2.png", np.zeros((30, 28)))
    assert "image sizes differ" in error(capsys, base) and "2.png is 28x30" in error(capsys, base)
    assert main(base + ["--resize"]) == 0


@pytest.mark.slow
def test_compare_runs_on_the_same_episodes(omniglot_run, tmp_path, capsys):
    proto = tmp_path / "proto"
    assert main(["train", "omniglot-5w1s", "--algo", "protonet", "--out", str(proto), "--steps", "4", "--quiet",
                 "--set", "model.width=8", "--set", "train.meta_batch=2", "--set", "train.val_every=4",
                 "--set", "train.val_tasks=5", "--set", "train.threads=1"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", str(omniglot_run), str(proto), "--episodes", "12", "--scratch", "--out", str(out)]) == 0
    table = (out / "compare.md").read_text()
    assert "12 test episodes of omniglot 5-way 1-shot" in table
    assert "| maml [run]" in table and "| protonet [proto]" in table and "| from scratch" in table
    assert "after - maml |" in table and "| (reference) |" in table
    row = next(line for line in table.splitlines() if line.startswith("| protonet [proto]"))
    won, lost = (int(v) for v in row.split(" | ")[4].split(" / "))
    assert 0 <= won + lost <= 12
    assert (out / "compare.png").stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "adaptation ms/task" in printed


@pytest.mark.slow
def test_compare_refuses_runs_of_different_settings(omniglot_run, tmp_path, capsys):
    other = tmp_path / "20w"
    assert main(["train", "omniglot-20w1s", "--out", str(other), "--steps", "2", "--quiet", "--set", "model.width=4",
                 "--set", "train.meta_batch=1", "--set", "train.val_every=2", "--set", "train.val_tasks=2",
                 "--set", "algo.inner_steps=1", "--set", "train.threads=1"]) == 0
    assert main(["compare", str(omniglot_run), str(other), "--episodes", "5"]) == 2
    assert "compare runs of one setting" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_runs_of_different_image_sizes_on_the_same_episodes(omniglot_run, tmp_path, capsys):
    from metalearn.evaluation.compare import _test_family
    cfg = ml.Run(omniglot_run).load_config()
    small, large = _test_family(cfg), _test_family(cfg, 40)
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert all(torch.equal(x, y) for x, y in zip(small.sample_indices(20, a), large.sample_indices(20, b)))
    batch = large.sample(2, torch.Generator().manual_seed(3))
    assert batch.support_x.shape[-2:] == (40, 40)
    big = tmp_path / "px40"
    assert main(["train", "omniglot-5w1s", "--algo", "protonet", "--out", str(big), "--steps", "3", "--quiet",
                 "--set", "model.width=8", "--set", "task.image_size=40", "--set", "train.meta_batch=2",
                 "--set", "train.val_every=3", "--set", "train.val_tasks=4", "--set", "train.threads=1"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", str(omniglot_run), str(big), "--episodes", "8", "--out", str(out), "--device", "cpu"]) == 0
    table = (out / "compare.md").read_text()
    assert "| maml 28px [run]" in table and "| protonet 40px [px40]" in table
    assert main(["compare", str(omniglot_run), "--device", "tpu"]) == 2
    assert "--device='tpu' is not a device" in capsys.readouterr().err


def grouped_dataset(groups=(("A", 6), ("B", 3), ("C", 5)), per_class=3):
    per, names = [], []
    for g, n in groups:
        for c in range(n):
            per.append(torch.full((per_class, 1, 8, 8), len(names), dtype=torch.uint8))
            names.append(f"{g}/character{c:02d}")
    return ImageDataset.from_class_lists(per, names)


def test_within_alphabet_episodes_draw_every_class_from_one_eligible_alphabet():
    tasks = FewShotTasks(grouped_dataset(), 4, 1, 1, within_groups=True)
    assert tasks.groups == ["A", "C"] and "2 of 3 alphabets" in tasks.describe()  # B has only 3 classes
    classes, idx = tasks.sample_indices(200, torch.Generator().manual_seed(0))
    names = tasks.dataset.class_names
    seen = set()
    for row in classes.tolist():
        alphabets = {names[c].split("/")[0] for c in row}
        assert len(alphabets) == 1 and len(set(row)) == 4
        seen |= alphabets
    assert seen == {"A", "C"}  # both eligible alphabets are used
    batch = tasks.sample(3, torch.Generator().manual_seed(1))
    assert batch.support_x.shape == (3, 4, 1, 8, 8)


def test_within_alphabet_episodes_say_what_to_change():
    with pytest.raises(ConfigError, match="need an alphabet with at least 7 characters, but the largest here has 6"):
        FewShotTasks(grouped_dataset(), 7, 1, 1, within_groups=True)
    flat = ImageDataset.from_class_lists([torch.zeros(3, 1, 8, 8, dtype=torch.uint8)] * 4, ["0", "1", "2", "3"])
    with pytest.raises(ConfigError, match="needs classes grouped as GROUP/CLASS"):
        FewShotTasks(flat, 2, 1, 1, within_groups=True)


def test_evaluate_within_alphabet_reports_both_numbers(omniglot_run, capsys):
    assert main(["evaluate", str(omniglot_run), "--quiet", "--episodes", "10", "--within-alphabet"]) == 0
    out = capsys.readouterr().out
    assert "5-way within-alphabet episodes over the" in out and "alphabets with at least 5 characters" in out
    assert (omniglot_run / "eval" / "eval_omniglot_within_alphabet_k1.json").is_file()
    assert main(["evaluate", str(omniglot_run), "--quiet", "--episodes", "10", "--episode-kind", "random"]) == 0
    assert "within-alphabet" not in capsys.readouterr().out
    assert main(["train", "omniglot-5w1s", "--out", str(omniglot_run.parent / "bad"), "--quiet",
                 "--set", "task.episodes=by_stroke"]) == 2
    assert "unknown task.episodes 'by_stroke'; choose one of: random, within_alphabet" in capsys.readouterr().err


def test_within_alphabet_training_validates_on_random_episodes_where_it_must(data_dir, tmp_path, capsys):
    """Lake's validation split (100 held-out background characters) has no alphabet of 20: the
    trainer says so and validates on random episodes. The MAML split's test alphabets are small (one
    has 21 of its 423 characters, the next 14): 30-way within-alphabet testing is refused at once."""
    common = ["--quiet", "--steps", "1", "--set", "task.episodes=within_alphabet", "--set", "model.width=4",
              "--set", "train.val_tasks=2", "--set", "train.threads=1", "--set", "task.queries=1"]
    assert main(["train", "omniglot-20w1s-protonet", "--out", str(tmp_path / "lake"), "--set", "task.protocol=lake",
                 *common]) == 0
    assert "validation uses within_alphabet episodes where it can" in capsys.readouterr().err
    assert main(["train", "omniglot-20w1s-protonet", "--out", str(tmp_path / "maml"), *common,
                 "--set", "eval.ways=30"]) == 2
    err = capsys.readouterr().err
    assert "omniglot test: 30-way within-alphabet episodes need an alphabet with at least 30" in err
    assert "the largest here has 21" in err


# ---- affine augmentation of training images ------------------------------------------------------


def blob(size=28, at=(14, 14)):
    img = torch.zeros(1, 1, size, size)
    img[0, 0, at[0] - 1:at[0] + 2, at[1] - 1:at[1] + 2] = 1.0
    return img


def centroid(img):
    ys, xs = torch.meshgrid(torch.arange(img.shape[-2]), torch.arange(img.shape[-1]), indexing="ij")
    m = img[0, 0]
    return torch.stack([(ys * m).sum() / m.sum(), (xs * m).sum() / m.sum()])


def test_random_affine_stays_within_koch_ranges():
    from metalearn.tasks.few_shot.episodes import random_affine
    img = blob().repeat(200, 1, 1, 1)
    torch.testing.assert_close(random_affine(img, 0.0), img, atol=1e-5, rtol=0)   # strength 0: the identity
    gen = torch.Generator().manual_seed(0)
    out = random_affine(img, 1.0, gen)
    torch.testing.assert_close(random_affine(img, 1.0, torch.Generator().manual_seed(0)), out)   # seeded
    assert out.min() >= 0 and out.max() <= 1 + 1e-6
    shifts = torch.stack([centroid(o[None]) - centroid(img[:1]) for o in out]).abs()
    # a centred blob moves by about the translation (at most 2 pixels per axis, seen through the inverse
    # scaling, up to 1.25x, plus the blob's half-pixel offset from the centre), and mostly visibly
    assert shifts.max() <= 3.2 and (shifts.max(1).values > 0.5).float().mean() > 0.4
    # the ink is kept up to the scaling (0.8-1.2 per axis) and interpolation
    mass = out.sum((1, 2, 3)) / img[0].sum()
    assert mass.min() > 0.55 and mass.max() < 1.6
    # a blob near a corner moves farther under rotation and scaling about the centre
    corner = random_affine(blob(at=(7, 7)).repeat(200, 1, 1, 1), 1.0, torch.Generator().manual_seed(0))
    far = torch.stack([centroid(o[None]) - centroid(blob(at=(7, 7))) for o in corner]).abs().max()
    assert far > shifts.max() + 1


def test_only_training_episodes_are_augmented():
    ds = toy_dataset(size=8)
    plain = FewShotTasks(ds, 3, 1, 2)
    aug = FewShotTasks(ds, 3, 1, 2, augment=1.0)
    a = plain.sample(4, torch.Generator().manual_seed(1))
    b = aug.sample(4, torch.Generator().manual_seed(1))
    # the same classes and images (the labels agree), distorted pixels
    assert torch.equal(a.support_y, b.support_y) and not torch.allclose(a.support_x, b.support_x)
    with pytest.raises(ConfigError, match="task.augment must be between 0"):
        FewShotTasks(ds, 3, 1, 2, augment=-1)


def test_the_config_augments_the_training_split_only(data_dir):
    from metalearn.training.build import build_tasks
    from metalearn.config import apply_overrides, load_preset
    cfg = apply_overrides(load_preset("omniglot-5w1s"), ["task.augment=1.0", f"task.data_dir={data_dir}"])
    assert build_tasks(cfg, "train").augment == 1.0
    assert build_tasks(cfg, "validation").augment == 0.0 and build_tasks(cfg, "test").augment == 0.0
