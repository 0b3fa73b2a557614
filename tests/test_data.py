"""Datasets on the real local copies, their verification errors, and downloads over loopback."""
import hashlib
import http.server
import threading
import zipfile

import pytest
import torch

from metalearn.data import DownloadError, download, load_mnist, load_omniglot
from metalearn.data import omniglot as omniglot_module
from metalearn.data.mnist import read_idx
from metalearn.data.omniglot import PARTS, verify_structure
from metalearn.errors import MetalearnError
from metalearn.tasks.few_shot.image_families import mnist_split, omniglot_split


def test_omniglot_loads_all_characters(data_dir):
    ds, n_background = load_omniglot(data_dir, 28)
    assert ds.num_classes == 1623 and n_background == 964
    assert ds.images.shape == (32460, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.counts, torch.full((1623,), 20))
    assert ds.images.float().mean() < 60, "strokes are bright on a dark background"
    assert ds.class_names[0] == "Alphabet_of_the_Magi/character01"


def test_maml_protocol_split_sizes_disjoint_and_deterministic(data_dir):
    train = omniglot_split("train", "maml", 28, data_dir)
    val = omniglot_split("validation", "maml", 28, data_dir)
    test = omniglot_split("test", "maml", 28, data_dir)
    assert (train.num_classes, val.num_classes, test.num_classes) == (4400, 100, 423)
    base = {n.split("@")[0] for n in train.class_names}
    assert len(base) == 1100
    assert not base & set(val.class_names) and not base & set(test.class_names)
    assert not set(val.class_names) & set(test.class_names)
    # rotations are new classes holding rotated images
    rot = train.class_names.index(train.class_names[0] + "@rot90")
    assert torch.equal(train.class_images(rot), torch.rot90(train.class_images(0), 1, dims=(-2, -1)))
    assert omniglot_split("test", "maml", 28, data_dir).class_names == test.class_names


def test_lake_protocol_tests_on_the_evaluation_alphabets(data_dir):
    ds, nb = load_omniglot(data_dir, 28)
    test = omniglot_split("test", "lake", 28, data_dir)
    train = omniglot_split("train", "lake", 28, data_dir, rotations=False)
    val = omniglot_split("validation", "lake", 28, data_dir)
    assert test.class_names == ds.class_names[nb:]
    assert train.num_classes + val.num_classes == 964
    assert set(train.class_names) | set(val.class_names) == set(ds.class_names[:nb])


def _rewrite_zip(src, dst, keep):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if keep(info.filename):
                zout.writestr(info.filename, zin.read(info.filename))


def test_missing_alphabet_is_named(data_dir, tmp_path):
    part = PARTS[1]  # evaluation: 20 alphabets
    bad = tmp_path / "images_evaluation.zip"
    _rewrite_zip(data_dir / "omniglot/images_evaluation.zip", bad, lambda n: "/Tibetan/" not in n)
    with pytest.raises(MetalearnError, match=r"incomplete: 19 alphabets instead of 20; 6\d\d characters instead of 659"):
        verify_structure(bad, part)


def test_missing_drawing_is_named(data_dir, tmp_path):
    src = data_dir / "omniglot/images_evaluation.zip"
    with zipfile.ZipFile(src) as z:
        victim = next(n for n in z.namelist() if "/Tibetan/character01/" in n and n.endswith(".png"))
    bad = tmp_path / "images_evaluation.zip"
    _rewrite_zip(src, bad, lambda n: n != victim)
    with pytest.raises(MetalearnError, match=r"characters without 20 drawings: Tibetan/character01 \(19\)"):
        verify_structure(bad, PARTS[1])


def test_truncated_zip_is_named(data_dir, tmp_path):
    (tmp_path / "omniglot").mkdir()
    for part in PARTS:
        data = (data_dir / "omniglot" / f"{part.name}.zip").read_bytes()
        (tmp_path / "omniglot" / f"{part.name}.zip").write_bytes(data[: len(data) // 3])
    with pytest.raises(MetalearnError, match=r"images_background.zip is not a readable zip archive.*truncated"):
        load_omniglot(tmp_path, 20, download_missing=False)


def test_missing_omniglot_downloads_the_canonical_archives(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, dest, md5):
        calls.append((url, md5))
        raise DownloadError("offline in tests")

    monkeypatch.setattr(omniglot_module, "download", fake_download)
    with pytest.raises(DownloadError):
        load_omniglot(tmp_path, 28)
    assert calls == [("https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip",
                      "68d2efa1b9178cc56df9314c21c6e718")]


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/served over loopback."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_checksum_over_loopback(http_server, tmp_path):
    root, url = http_server
    payload = b"omniglot-bytes" * 1000
    (root / "a.zip").write_bytes(payload)
    good = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "out" / "a.zip"
    assert download(url + "a.zip", dest, good, backoff=0).read_bytes() == payload
    dest.unlink()
    with pytest.raises(DownloadError, match=r"downloaded with md5 .* expected 0{32}; the file was deleted"):
        download(url + "a.zip", dest, "0" * 32, backoff=0)
    assert not dest.exists() and not (dest.parent / "a.zip.part").exists()
    with pytest.raises(DownloadError, match=r"could not download b.zip.*404"):
        download(url + "b.zip", tmp_path / "out" / "b.zip", None, retries=2, backoff=0)


def test_download_retries_and_falls_back_to_a_mirror(tmp_path):
    import io
    attempts = []

    def flaky(url):
        attempts.append(url)
        if "mirror1" in url or len(attempts) < 2:
            raise OSError("connection reset")
        return io.BytesIO(b"data")

    dest = download(["http://mirror1/x", "http://mirror2/x"], tmp_path / "x", hashlib.md5(b"data").hexdigest(),
                    retries=2, fetch=flaky, backoff=0)
    assert dest.read_bytes() == b"data"
    assert attempts == ["http://mirror1/x", "http://mirror1/x", "http://mirror2/x"]


def test_mnist_class_counts(data_dir):
    train, test = load_mnist(data_dir, "train"), load_mnist(data_dir, "test")
    assert train.counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert test.counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.images.shape == (60000, 1, 28, 28)
    # each class holds its own digit: class means differ
    assert not torch.equal(train.class_images(0).float().mean(0), train.class_images(1).float().mean(0))


def test_mnist_user_split_keeps_test_classes_unseen(data_dir):
    train = mnist_split("train", [0, 1, 2, 3, 4], data_dir)
    test = mnist_split("test", [0, 1, 2, 3, 4], data_dir)
    assert train.class_names == ["0", "1", "2", "3", "4"] and test.class_names == ["5", "6", "7", "8", "9"]
    assert test.counts.tolist() == [892, 958, 1028, 974, 1009]


def test_truncated_idx_file_is_named(data_dir, tmp_path):
    import gzip
    raw = gzip.open(data_dir / "mnist/t10k-labels-idx1-ubyte.gz").read()
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(raw[:5000]))
    with pytest.raises(MetalearnError, match=r"is truncated: header says \(10000,\), found 4992 bytes"):
        read_idx(bad)
