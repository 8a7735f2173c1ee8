"""Datasets: the bundled MNIST and its cache, IDX parsing, filters, image folders, downloads."""

from __future__ import annotations

import gzip
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.config import DataConfig
from explorer.data import FolderReport, ImageData, downloads, load_dataset, mnist, to_float
from explorer.data.folder import DEFAULT_IMAGE_SIZE, load_folder
from explorer.data.mnist import load_mnist, read_idx
from explorer.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

pytestmark = pytest.mark.usefixtures("single_thread_torch")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(folder))
    return folder


# -- bundled MNIST -----------------------------------------------------------------------


def test_bundled_mnist_shapes_labels_and_statistics(bundled_mnist: ImageData) -> None:
    d = bundled_mnist
    assert d.name == "mnist"
    assert d.train_images.shape == (60000, 1, 28, 28)
    assert d.test_images.shape == (10000, 1, 28, 28)
    assert d.train_images.dtype == torch.uint8 and d.test_images.dtype == torch.uint8
    assert d.train_labels.dtype == torch.int64 and d.train_labels.shape == (60000,)
    assert d.test_labels.shape == (10000,)
    assert d.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(d.train_labels, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(d.test_labels, minlength=10).tolist() == TEST_COUNTS
    assert d.class_names == tuple(str(i) for i in range(10))
    assert d.num_classes == 10 and d.has_labels and d.image_shape == (1, 28, 28)
    assert to_float(d.train_images).mean().item() == pytest.approx(0.1307, abs=5e-4)
    assert int(d.train_images.max()) == 255 and int(d.train_images.min()) == 0


def test_second_load_comes_from_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                          bundled_mnist: ImageData) -> None:
    first = load_mnist()
    cached = sorted(p.name for p in cache.rglob("*.npy"))
    assert cached == ["test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]
    assert not list(cache.rglob("*.tmp"))  # atomic writes leave no temp files

    def no_parsing(path: Path) -> np.ndarray:
        raise AssertionError(f"the gzip IDX {path.name} was parsed again instead of using the cache")

    monkeypatch.setattr(mnist, "read_idx", no_parsing)
    second = load_mnist()
    assert torch.equal(second.train_images, first.train_images)
    assert torch.equal(second.test_labels, first.test_labels)
    assert torch.equal(second.train_labels, bundled_mnist.train_labels)
    # the returned tensors are writable copies, not views of a read-only memory map
    second.train_images[0, 0, 0, 0] = 7
    assert int(load_mnist().train_images[0, 0, 0, 0]) == int(first.train_images[0, 0, 0, 0])


def test_a_damaged_cache_is_rebuilt(cache: Path, bundled_mnist: ImageData) -> None:
    load_mnist()
    (victim,) = cache.rglob("train_images.npy")
    victim.write_bytes(b"not a numpy file at all")
    again = load_mnist()
    assert torch.equal(again.train_images[:100], bundled_mnist.train_images[:100])
    assert np.load(victim).shape == (60000, 28, 28)  # rewritten


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(blocker / "cache"))
    data = load_mnist()
    assert data.train_images.shape == (60000, 1, 28, 28)


def test_load_dataset_mnist_with_class_filter_and_limit(cache: Path) -> None:
    data = load_dataset(DataConfig(dataset="mnist", classes=(3, 7), limit=50))
    assert data.train_images.shape == (50, 1, 28, 28) and data.test_images.shape == (50, 1, 28, 28)
    assert set(data.train_labels.tolist()) == {3, 7}
    assert set(data.test_labels.tolist()) <= {3, 7}


# -- IDX parsing -------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_parses_plain_and_gzip(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain = tmp_path / "a-idx3-ubyte"
    plain.write_bytes(idx_bytes(arr))
    packed = tmp_path / "a-idx3-ubyte.gz"
    packed.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(plain), arr)
    np.testing.assert_array_equal(read_idx(packed), arr)
    labels = np.array([5, 0, 4], dtype=np.uint8)
    (tmp_path / "l").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "l"), labels)


@pytest.mark.parametrize("content", [
    pytest.param(lambda good: good[:-5], id="truncated"),
    pytest.param(lambda good: good + b"\x00\x00", id="padded"),
    pytest.param(lambda good: good[:10], id="truncated-header"),
    pytest.param(lambda good: b"hello, this is a text file\n", id="text"),
    pytest.param(lambda good: b"", id="empty"),
    pytest.param(lambda good: b"\x00\x00\x0d\x01" + good[4:], id="float-dtype"),
])
def test_read_idx_rejects_non_idx_files(tmp_path: Path, content) -> None:
    good = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(content(good))
    with pytest.raises(DataError):
        read_idx(path)
    gz = tmp_path / "x-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(content(good)))
    with pytest.raises(DataError):
        read_idx(gz)


def test_read_idx_rejects_broken_gzip_and_missing_files(tmp_path: Path) -> None:
    not_gzip = tmp_path / "a.gz"
    not_gzip.write_bytes(b"plain bytes, no gzip magic")
    with pytest.raises(DataError):
        read_idx(not_gzip)
    cut = tmp_path / "b.gz"
    noise = np.random.default_rng(0).integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    whole = gzip.compress(idx_bytes(noise))
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError):
        read_idx(cut)
    with pytest.raises(DataError):
        read_idx(tmp_path / "missing.gz")


def test_read_idx_rejects_a_zero_dimension_header(tmp_path: Path) -> None:
    path = tmp_path / "scalar-idx"
    path.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(DataError):
        read_idx(path)


# -- ImageData filters -------------------------------------------------------------------


@pytest.fixture
def small() -> ImageData:
    train = torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 1, 2, 2).contiguous()
    test = (100 + torch.arange(6, dtype=torch.uint8)).view(6, 1, 1, 1).expand(6, 1, 2, 2).contiguous()
    return ImageData("small", train, torch.arange(12) % 3, test, torch.arange(6) % 3, ("a", "b", "c"))


def test_limited_keeps_the_first_n_as_copies(small: ImageData) -> None:
    assert small.limited(None) is small
    cut = small.limited(5)
    assert cut.train_images[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    assert cut.train_labels.tolist() == [0, 1, 2, 0, 1]
    assert cut.test_images.shape[0] == 5 and cut.test_labels.tolist() == [0, 1, 2, 0, 1]
    assert cut.class_names == small.class_names
    cut.train_images.fill_(99)
    assert small.train_images[0, 0, 0, 0] == 0  # a copy, not a view
    assert small.limited(1000).train_images.shape[0] == 12


def test_only_classes_keeps_images_with_their_labels(small: ImageData) -> None:
    kept = small.only_classes((2, 0))
    assert kept.train_labels.tolist() == [0, 2, 0, 2, 0, 2, 0, 2]
    assert kept.train_images[:, 0, 0, 0].tolist() == [0, 2, 3, 5, 6, 8, 9, 11]
    assert kept.test_images[:, 0, 0, 0].tolist() == [100, 102, 103, 105]
    assert small.only_classes(None) is small


def test_only_classes_rejects_unknown_classes_and_unlabelled_data(small: ImageData) -> None:
    with pytest.raises(DataError, match="3"):
        small.only_classes((0, 3))
    unlabelled = ImageData("flat", small.train_images, None, small.test_images, None)
    assert unlabelled.num_classes == 0 and not unlabelled.has_labels
    with pytest.raises(DataError):
        unlabelled.only_classes((0,))


def test_image_data_validates_its_tensors(small: ImageData) -> None:
    with pytest.raises(DataError):
        ImageData("f", small.train_images.float(), None, small.test_images, None)
    with pytest.raises(DataError):
        ImageData("3d", small.train_images[:, 0], None, small.test_images[:, 0], None)
    with pytest.raises(DataError):
        ImageData("empty", small.train_images[:0], None, small.test_images, None)
    with pytest.raises(DataError):
        ImageData("labels", small.train_images, torch.zeros(3, dtype=torch.int64), small.test_images, None)
    with pytest.raises(DataError):
        ImageData("shapes", small.train_images, None, torch.zeros(2, 1, 3, 3, dtype=torch.uint8), None)


# -- image folders -----------------------------------------------------------------------

# Each class gets its own brightness band so a test can tell which label an image carries.
CAT_BASE, DOG_BASE = 20, 180


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def make_class_folder(root: Path) -> Path:
    """cats: 5 grey/colour images (dark); dogs: 5 (bright); plus 4 junk files and a hidden one."""
    cats, dogs = root / "cats", root / "dogs"
    sizes = [(20, 20), (40, 30), (17, 33), (64, 64), (8, 12)]
    for i, size in enumerate(sizes):
        v = CAT_BASE + 5 * i
        mode = ["L", "RGB", "RGBA", "P", "L"][i]
        if mode == "L":
            img = Image.new("L", size, v)
        elif mode == "RGB":
            img = Image.new("RGB", size, (v, v, v))
        elif mode == "RGBA":
            img = Image.new("RGBA", size, (v, v, v, 255))
        else:
            img = Image.new("RGB", size, (v, v, v)).convert("P")
        _save(img, cats / f"cat{i}.png")
    for i, size in enumerate(sizes):
        v = DOG_BASE + 5 * i
        ext = ["png", "bmp", "png", "gif", "png"][i]
        img = Image.new("RGB", size, (v, v, v)) if i % 2 else Image.new("L", size, v)
        _save(img, dogs / f"dog{i}.{ext}")
    # junk
    (cats / "notes.txt").write_text("not an image")
    (dogs / "broken.png").write_bytes(bytes(range(256)) * 4)
    (dogs / "empty.jpg").write_bytes(b"")
    noisy = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)
    _save(Image.fromarray(noisy), dogs / "cut.png")
    whole = (dogs / "cut.png").read_bytes()
    (dogs / "cut.png").write_bytes(whole[: len(whole) // 2])  # a real PNG header, half the pixels
    _save(Image.new("L", (10, 10), 0), cats / ".hidden.png")
    return root


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    return make_class_folder(tmp_path / "pets")


def _all(data: ImageData) -> tuple[torch.Tensor, torch.Tensor | None]:
    images = torch.cat([data.train_images, data.test_images])
    labels = None if data.train_labels is None else torch.cat([data.train_labels, data.test_labels])
    return images, labels


def test_class_folder_loads_with_labels_and_reports_junk(class_folder: Path) -> None:
    report = FolderReport()
    data = load_folder(class_folder, image_size=16, test_fraction=0.3, report=report)
    assert data.class_names == ("cats", "dogs")
    assert data.num_classes == 2 and data.has_labels
    assert data.name == "pets"
    assert report.loaded == 10
    images, labels = _all(data)
    assert images.shape == (10, 3, 16, 16)  # a colour image present: 3 channels
    assert data.test_images.shape[0] == 3 and data.train_images.shape[0] == 7
    assert torch.bincount(labels).tolist() == [5, 5]
    # each image carries its own folder's label
    means = images.float().mean(dim=(1, 2, 3))
    assert ((means < 100) == (labels == 0)).all()
    for v in means.tolist():
        assert min(abs(v - (base + 5 * i)) for base in (CAT_BASE, DOG_BASE) for i in range(5)) < 1.5
    skipped = {Path(name).name for name, _ in report.skipped}
    assert skipped == {"notes.txt", "broken.png", "empty.jpg", "cut.png"}
    assert all(reason for _, reason in report.skipped)
    assert (images == 0).all(dim=(1, 2, 3)).sum() == 0  # the hidden (black) image was not loaded


def test_grey_folder_gets_one_channel_and_the_default_size(tmp_path: Path) -> None:
    for i in range(4):
        _save(Image.new("L", (10 + i, 20), 30 * i), tmp_path / "g" / "a" / f"{i}.png")
        _save(Image.new("L", (25, 9), 30 * i + 5), tmp_path / "g" / "b" / f"{i}.png")
    data = load_folder(tmp_path / "g")
    assert data.image_shape == (1, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    forced = load_folder(tmp_path / "g", image_size=8, channels=3)
    assert forced.image_shape == (3, 8, 8)
    images, _ = _all(forced)
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2])


def test_alpha_is_composited_on_black(tmp_path: Path) -> None:
    for i in range(2):
        _save(Image.new("RGBA", (6, 6), (200, 200, 200, 0)), tmp_path / "t" / f"clear{i}.png")
        _save(Image.new("RGBA", (6, 6), (200, 200, 200, 255)), tmp_path / "t" / f"solid{i}.png")
    images, _ = _all(load_folder(tmp_path / "t", image_size=6, channels=1))
    assert sorted(images.float().mean(dim=(1, 2, 3)).tolist()) == [0.0, 0.0, 200.0, 200.0]


def test_held_out_split_is_seeded(class_folder: Path) -> None:
    a = load_folder(class_folder, image_size=8, test_fraction=0.3, split_seed=0)
    b = load_folder(class_folder, image_size=8, test_fraction=0.3, split_seed=0)
    c = load_folder(class_folder, image_size=8, test_fraction=0.3, split_seed=1)
    assert torch.equal(a.test_images, b.test_images) and torch.equal(a.test_labels, b.test_labels)
    assert torch.equal(a.train_images, b.train_images)

    def ids(images: torch.Tensor) -> set[float]:
        return set(images.float().mean(dim=(1, 2, 3)).round().tolist())

    assert ids(a.test_images) != ids(c.test_images)
    # the two splits partition the images
    assert len(ids(a.test_images) | ids(a.train_images)) == 10
    assert not ids(a.test_images) & ids(a.train_images)


def test_flat_folder_has_no_labels(tmp_path: Path) -> None:
    for i in range(5):
        _save(Image.new("RGB", (12, 12), (i * 40, 0, 0)), tmp_path / "flat" / f"{i}.png")
    data = load_folder(tmp_path / "flat", image_size=12)
    assert data.train_labels is None and data.test_labels is None
    assert data.class_names == () and data.num_classes == 0
    assert data.image_shape == (3, 12, 12)
    assert data.train_images.shape[0] + data.test_images.shape[0] == 5


def test_stray_files_beside_class_folders_are_reported(class_folder: Path) -> None:
    _save(Image.new("L", (8, 8), 99), class_folder / "stray.png")
    report = FolderReport()
    images, _ = _all(load_folder(class_folder, image_size=8, report=report))
    assert images.shape[0] == 10
    reasons = {Path(name).name: reason for name, reason in report.skipped}
    assert "class folder" in reasons["stray.png"]


@pytest.mark.parametrize("setup", ["empty", "junk-only", "junk-in-classes", "one-image"])
def test_folders_without_enough_images_are_a_data_error(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    if setup == "junk-only":
        (root / "a.txt").write_text("x")
        (root / "b.png").write_bytes(b"\x89PNG garbage")
    elif setup == "junk-in-classes":
        (root / "one").mkdir()
        (root / "one" / "c.jpg").write_bytes(b"")
    elif setup == "one-image":
        _save(Image.new("L", (8, 8)), root / "only.png")
    with pytest.raises(DataError):
        load_folder(root)


def test_a_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no-such"):
        load_folder(tmp_path / "no-such")
    with pytest.raises(DataError):
        load_dataset(DataConfig(dataset=str(tmp_path / "no-such")))


def test_load_dataset_reads_a_folder(class_folder: Path) -> None:
    report = FolderReport()
    data = load_dataset(DataConfig(dataset=str(class_folder), image_size=8, test_fraction=0.5, classes=(1,)),
                        report)
    assert data.class_names == ("cats", "dogs")
    assert set(data.train_labels.tolist()) == {1} and set(data.test_labels.tolist()) <= {1}
    assert data.image_shape == (3, 8, 8)
    assert report.loaded == 10 and len(report.skipped) == 4


def test_16_bit_grey_images_keep_their_tones(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    for i in range(3):
        Image.fromarray(ramp).save(tmp_path / f"{i}.png")
    images, _ = _all(load_folder(tmp_path, image_size=32))
    assert images.shape[1] == 1
    assert abs(images.float().mean().item() - (ramp / 257).mean()) < 5


# -- downloads ---------------------------------------------------------------------------


def test_an_offline_download_is_a_data_error_about_the_network(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))

    class Offline:
        def __init__(self, *args, **kwargs) -> None:
            raise urllib.error.URLError("offline")

    monkeypatch.setattr(downloads, "_torchvision_class", lambda name: Offline)
    with pytest.raises(DataError, match="network") as info:
        load_dataset(DataConfig(dataset="fashion-mnist"))
    assert "fashion-mnist" in str(info.value)


def test_a_missing_dataset_that_cannot_download_is_a_data_error(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))

    class NotThere:
        def __init__(self, *args, **kwargs) -> None:
            raise RuntimeError("Dataset not found. You can use download=True to download it")

    monkeypatch.setattr(downloads, "_torchvision_class", lambda name: NotThere)
    with pytest.raises(DataError, match="kmnist"):
        downloads.load_download("kmnist", download=False)


def test_downloaded_colour_data_becomes_nchw_uint8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    seen: list[dict] = []

    class FakeCifar:
        classes = ["plane", "car", "bird"]

        def __init__(self, root: str, train: bool, download: bool) -> None:
            seen.append({"root": root, "train": train, "download": download})
            n = 6 if train else 3
            rng = np.random.default_rng(int(train))
            self.data = rng.integers(0, 256, size=(n, 4, 5, 3), dtype=np.uint8)  # (N, H, W, C)
            self.targets = [i % 3 for i in range(n)]

    monkeypatch.setattr(downloads, "_torchvision_class", lambda name: FakeCifar)
    data = load_dataset(DataConfig(dataset="cifar10"))
    assert [s["train"] for s in seen] == [True, False]
    assert all(Path(s["root"]).is_relative_to(tmp_path) for s in seen)
    assert data.train_images.shape == (6, 3, 4, 5) and data.test_images.shape == (3, 3, 4, 5)
    assert data.train_images.dtype == torch.uint8
    expected = np.random.default_rng(1).integers(0, 256, size=(6, 4, 5, 3), dtype=np.uint8)
    assert torch.equal(data.train_images, torch.from_numpy(expected).permute(0, 3, 1, 2))
    assert data.train_labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.class_names == ("plane", "car", "bird")


def test_skipped_files_are_named_relative_to_their_folder(tmp_path) -> None:
    from explorer.data.folder import relative_name

    root = tmp_path / "pictures"
    assert relative_name(str(root / "cats" / "a.png"), root) == str(Path("cats") / "a.png")
    assert relative_name(str(root / "cats" / "a.png"), str(root)) == str(Path("cats") / "a.png")
    assert relative_name("/elsewhere/a.png", root) == "/elsewhere/a.png", "outside the folder: as given"
    assert relative_name("a.png", None) == "a.png"


def test_a_failed_download_is_one_line(monkeypatch, tmp_path):
    import explorer.data.downloads as downloads
    from explorer.errors import DataError

    class Failing:
        def __init__(self, **kwargs):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://a, got:\n"
                               "<urlopen error [Errno -3] Temporary failure in name resolution>\nTried http://b")

    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    monkeypatch.setattr(downloads, "_torchvision_class", lambda name: Failing)
    with pytest.raises(DataError) as caught:
        downloads.load_download("fashion-mnist")
    assert "\n" not in str(caught.value) and "Error downloading" in str(caught.value)
