"""Images from NumPy files (explorer/data/arrays.py): ``--dataset file.npz|file.npy``.

The good paths train through the real CLI and reopen the checkpoint; the hostile files
(wrong shapes, dtypes and ranges, pickles, special files, damaged zips, zip bombs, bad
labels and class names) each give one exact ``latent-explorer: error: ...`` line, exit 2,
and write nothing. Every file is made in tmp_path; nothing here can block on a FIFO.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import assert_user_error, run  # tests/unit is on sys.path (pytest rootdir conftest)

from explorer.config import DataConfig
from explorer.data import load_dataset
from explorer.data.arrays import image_data_from_arrays, load_array_file, read_array_file
from explorer.errors import DataError
from explorer.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("cli_module_env")  # private cache, one torch thread

ERROR = "latent-explorer: error: "


def shapes(n: int = 200, side: int = 16, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` grey uint8 images (N x H x W): a bright block whose place is the class, on noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, (n, side, side), dtype=np.uint8)
    for i, k in enumerate(labels):
        images[i, 2:8, 2 + 4 * k: 8 + 4 * k] = 240
    return images, labels


def train(dataset: Path, out: Path, model: str = "ae", *extra: object) -> tuple[int, str, str]:
    return run("train", "--model", model, "--dataset", dataset, "--epochs", 1, "--batch-size", 32,
               "--device", "cpu", "--json", "--out", out, *extra)


def refused(dataset: Path, tmp_path: Path, model: str = "ae") -> str:
    """The one error line (without its prefix) of training on ``dataset``; nothing written."""
    out = tmp_path / "refused.safetensors"
    rc, stdout, err = train(dataset, out, model)
    line = assert_user_error(rc, err)
    assert stdout == ""
    assert not out.exists() and list(tmp_path.glob("refused*")) == []
    return line[len(ERROR):]


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def write_zip(path: Path, name: str, compressed: bytes, crc: int, size: int, method: int = 8,
              flags: int = 0) -> Path:
    """A one-member zip written field by field, so its sizes say whatever the test wants."""
    raw = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(compressed), size,
                        len(raw), 0) + raw
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21, crc, len(compressed),
                          size, len(raw), 0, 0, 0, 0, 0, 0) + raw
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(compressed), 0)
    path.write_bytes(local + compressed + central + end)
    return path


CHUNK = 16 * 1024**2


def zip_bomb(path: Path, shape: tuple[int, ...], descr: str = "<f4") -> Path:
    """A real zip bomb: an .npz whose 'images.npy' inflates to the whole array its header
    claims (zeros) from a few KB per 16 MiB. Each deflate block of zeros ends in a full flush,
    which makes it byte-aligned and independent, so one compressed block is repeated."""
    header = npy_header(shape, descr)
    data = int(np.prod(shape)) * np.dtype(descr).itemsize
    assert data % CHUNK == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(bytes(CHUNK)) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks = data // CHUNK
    crc = zlib.crc32(header)
    for _ in range(blocks):
        crc = zlib.crc32(bytes(CHUNK), crc)
    return write_zip(path, "images.npy", start + block * blocks + deflate.flush(), crc, len(header) + data)


# -- good files ----------------------------------------------------------------------------


def test_an_npz_with_labels_and_class_names_trains_a_vae_and_a_cvae(tmp_path: Path) -> None:
    images, labels = shapes()
    data = tmp_path / "blocks.npz"
    np.savez_compressed(data, images=images, labels=labels, class_names=np.array(["left", "middle", "right"]))
    for model in ("vae", "cvae"):
        out = tmp_path / f"{model}.safetensors"
        rc, stdout, err = train(data, out, model)
        assert rc == 0, err
        assert "Traceback" not in err
        assert '"epoch": 1' in stdout
        saved = load_checkpoint(out)
        assert saved.class_names == ("left", "middle", "right")
        assert saved.data_config.dataset == str(data)
        assert saved.model_config.image_shape == (1, 16, 16)  # as stored: no resizing unless asked
        assert saved.model_config.conditional == (model == "cvae")
        assert saved.model_config.num_classes == (3 if model == "cvae" else 0)

    rc, stdout, err = run("generate", tmp_path / "cvae.safetensors", "--n", 2, "--label", 3,
                          "--out", tmp_path / "g.npy")
    assert_user_error(rc, err, "left, middle, right")


def test_an_npy_of_float_colour_images_channels_last_trains_a_conv_vae(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = rng.random((120, 16, 16, 3), dtype=np.float32)  # N x H x W x C, floats in [0, 1)
    data = tmp_path / "colour.npy"
    np.save(data, images)
    out = tmp_path / "conv.safetensors"
    rc, _, err = train(data, out, "conv-vae")
    assert rc == 0, err
    saved = load_checkpoint(out)
    assert saved.model_config.image_shape == (3, 16, 16)
    assert saved.class_names == ()

    loaded = load_array_file(data)
    pixels = torch.cat([loaded.train_images, loaded.test_images])
    assert pixels.dtype == torch.uint8 and pixels.shape == (120, 3, 16, 16)
    expected = np.rint(np.moveaxis(images, 3, 1) * 255).astype(np.uint8)
    assert sorted(map(bytes, pixels.numpy())) == sorted(map(bytes, expected))  # the same images, split


def test_image_size_and_channels_resize_and_convert(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = tmp_path / "rgb.npz"
    np.savez(data, images=rng.integers(0, 256, (60, 3, 20, 20), dtype=np.uint8))  # N x C x H x W
    out = tmp_path / "small-grey.safetensors"
    rc, _, err = train(data, out, "ae", "--image-size", 12, "--channels", 1)
    assert rc == 0, err
    assert load_checkpoint(out).model_config.image_shape == (1, 12, 12)

    grey = tmp_path / "grey.npz"
    np.savez(grey, images=rng.integers(0, 256, (10, 8, 8), dtype=np.uint8))
    bigger = load_dataset(DataConfig(dataset=str(grey), image_size=16, channels=3))
    assert bigger.image_shape == (3, 16, 16)
    assert torch.equal(bigger.train_images[:, 0], bigger.train_images[:, 2])  # grey copied to each channel


def test_explicit_train_and_test_arrays_are_kept(tmp_path: Path) -> None:
    images, labels = shapes(130, side=12, classes=2)
    data = tmp_path / "split.npz"
    np.savez(data, train_images=images[:100], train_labels=labels[:100], test_images=images[100:],
             test_labels=labels[100:], class_names=np.array([b"even", b"odd"]))  # bytes names are read too
    loaded = load_dataset(DataConfig(dataset=str(data), test_fraction=0.5, split_seed=7))  # neither applies
    assert (len(loaded.train_images), len(loaded.test_images)) == (100, 30)
    assert np.array_equal(loaded.train_images[:, 0].numpy(), images[:100])
    assert np.array_equal(loaded.test_images[:, 0].numpy(), images[100:])
    assert np.array_equal(loaded.test_labels.numpy(), labels[100:])
    assert loaded.class_names == ("even", "odd")

    out = tmp_path / "split.safetensors"
    rc, _, err = train(data, out, "cvae")
    assert rc == 0, err
    rc, stdout, err = run("evaluate", out, "--json")
    assert rc == 0, err
    assert '"test_images": 30' in stdout


def test_the_split_of_one_images_array_is_seeded(tmp_path: Path) -> None:
    images, labels = shapes(50, side=8)
    data = tmp_path / "one.npz"
    np.savez(data, images=images, labels=labels)

    def split(seed: int):
        loaded = load_dataset(DataConfig(dataset=str(data), split_seed=seed, test_fraction=0.2))
        return loaded.train_images, loaded.train_labels, loaded.test_images, loaded.test_labels

    first, again, other = split(3), split(3), split(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert (len(first[0]), len(first[2])) == (40, 10)
    assert not torch.equal(first[2], other[2])
    # Every image lands in exactly one split, with its own label.
    together = torch.cat([first[0], first[2]])[:, 0].numpy()
    pairs = sorted(zip(map(bytes, together), torch.cat([first[1], first[3]]).tolist()))
    assert pairs == sorted(zip(map(bytes, images), labels.tolist()))


def test_other_image_forms_load(tmp_path: Path) -> None:
    """Bool masks, whole-number float labels, Fortran order, big-endian floats, float
    rounding just past 1, and the x key (np.savez(x=...))."""
    masks = np.zeros((6, 8, 8), bool)
    masks[:, 2:5, 2:5] = True
    np.savez(tmp_path / "masks.npz", x=masks, labels=np.array([0.0, 1, 0, 1, 0, 1]))
    loaded = load_array_file(tmp_path / "masks.npz")
    assert set(torch.unique(loaded.train_images).tolist()) == {0, 255}
    assert loaded.class_names == ("0", "1") and loaded.train_labels.dtype == torch.int64

    images = np.asfortranarray(np.linspace(0, 1 + 1e-7, 6 * 8 * 8).reshape(6, 8, 8)).astype(">f8")
    np.save(tmp_path / "fortran.npy", images)
    loaded = load_array_file(tmp_path / "fortran.npy", test_fraction=0.5)
    pixels = torch.cat([loaded.train_images, loaded.test_images])[:, 0]
    assert int(pixels.max()) == 255
    assert sorted(map(bytes, pixels.numpy())) == sorted(map(bytes, np.rint(np.clip(images, 0, 1) * 255)
                                                           .astype(np.uint8)))


def test_explorer_train_takes_the_same_files_and_arrays() -> None:
    from explorer.api.training import data_for

    images, labels = shapes(20, side=8)
    _, data = data_for({"images": images, "labels": labels}, {})
    assert data is not None and data.class_names == ("0", "1", "2")
    with pytest.raises(DataError, match=r"^arrays: labels must be class numbers from 0 to 9999 \(these range "
                                        r"from 123456 to 123456\)$"):
        data_for({"images": images, "labels": np.full(20, 123456)}, {})
    with pytest.raises(DataError, match=r"^arrays: images cannot be read as one array"):
        data_for([np.zeros((8, 8)), np.zeros((9, 9))], {})


# -- hostile files: each one exact line through the CLI -----------------------------------------


def _savez(**arrays):
    def make(path: Path) -> Path:
        path = path.with_suffix(".npz")
        np.savez(path, **arrays)
        return path
    return make


def _save(array):
    def make(path: Path) -> Path:
        path = path.with_suffix(".npy")
        np.save(path, array, allow_pickle=True)
        return path
    return make


def _raw(suffix: str, data: bytes):
    def make(path: Path) -> Path:
        path = path.with_suffix(suffix)
        path.write_bytes(data)
        return path
    return make


IMAGES, LABELS = shapes(20, side=8)
NPY = npy_bytes(IMAGES)

CASES = {
    # shapes
    "flattened": (_savez(images=IMAGES.reshape(20, 64)),
                  "case.npz: images have shape (20, 64); give N x H x W, N x C x H x W or N x H x W x C "
                  "(flattened images? save images.reshape(-1, 8, 8))"),
    "five dims": (_savez(images=np.zeros((2, 1, 1, 8, 8), np.uint8)),
                  "case.npz: images have shape (2, 1, 1, 8, 8); give N x H x W, N x C x H x W or N x H x W x C"),
    "rgba": (_savez(images=np.zeros((4, 8, 8, 4), np.uint8)),
             "case.npz: images have shape (4, 8, 8, 4); images need 1 or 3 channels (N x H x W, N x C x H x W "
             "or N x H x W x C)"),
    "too small": (_savez(images=np.zeros((4, 3, 3), np.uint8)),
                  "case.npz: images are 3x3 pixels; Latent Explorer takes 4 to 512 pixels a side"),
    "too large": (_savez(images=np.zeros((2, 600, 8), np.uint8)),
                  "case.npz: images are 600x8 pixels; Latent Explorer takes 4 to 512 pixels a side"),
    "no images": (_savez(images=np.zeros((0, 8, 8), np.uint8)),
                  "case.npz: images is empty (shape (0, 8, 8), no images)"),
    "one image": (_savez(images=np.zeros((1, 8, 8), np.uint8)),
                  "case.npz has one image; training needs at least two (one to test on)"),
    # dtypes and values
    "complex": (_savez(images=np.zeros((4, 8, 8), complex)),
                "case.npz: images have dtype complex128; give uint8 (0-255) or floats in [0, 1]"),
    "strings": (_save(np.array([["ab"] * 8] * 8)),
                "case.npy: images have dtype <U2; give uint8 (0-255) or floats in [0, 1]"),
    "integers over 255": (_savez(images=np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8) * 4),
                          "case.npz: integer images must lie in 0-255; these range from 0 to 1020"),
    "negative integers": (_savez(images=np.full((4, 8, 8), -3, np.int8)),
                          "case.npz: integer images must lie in 0-255; these range from -3 to -3"),
    "floats 0-255": (_savez(images=IMAGES.astype(np.float32)),
                     "case.npz: float images must lie in [0, 1]; these range from 0 to 240 (divide by 255)"),
    "floats -1..1": (_savez(images=np.linspace(-1, 1, 4 * 64).reshape(4, 8, 8)),
                     "case.npz: float images must lie in [0, 1]; these range from -1 to 1 (scaled to [-1, 1]? save "
                     "(x + 1) / 2)"),
    "nan": (_savez(images=np.where(np.eye(8, dtype=bool), np.nan, 0.5)[None].repeat(3, 0)),
            "case.npz: images contain 24 NaN or infinite values; give finite floats in [0, 1]"),
    "inf": (_save(np.full((3, 8, 8), np.inf, np.float32)),
            "case.npy: images contain 192 NaN or infinite values; give finite floats in [0, 1]"),
    # pickles: never unpickled
    "object npz": (_savez(images=np.array([None, {"a": 1}], dtype=object)),
                   "case.npz: the array 'images' is an object array (pickled Python objects); save plain numbers "
                   "or strings (allow_pickle is never used)"),
    "object npy": (_save(np.array([[1, "x"]], dtype=object)),
                   "case.npy: the file is an object array (pickled Python objects); save plain numbers or strings "
                   "(allow_pickle is never used)"),
    "plain pickle": (_raw(".npy", pickle.dumps({"images": [1, 2, 3]})),
                     re.compile(r"case\.npy: the file is not a NumPy array or is damaged \(the magic string is not "
                                r"correct; .*\)")),
    "object labels": (_savez(images=IMAGES, labels=np.array([object()] * 20)),
                      "case.npz: the array 'labels' is an object array (pickled Python objects); save plain "
                      "numbers or strings (allow_pickle is never used)"),
    # the wrong kind of file, or a damaged one
    "empty npz": (_raw(".npz", b""), "case.npz is empty"),
    "empty npy": (_raw(".npy", b""), "case.npy is empty"),
    "text": (_raw(".npz", b"images,labels\n1,2\n"),
             "case.npz is not an .npz file (NumPy's zip of arrays, written by numpy.savez): File is not a zip file"),
    "npy named npz": (_raw(".npz", NPY), "case.npz is a single .npy array, not an .npz file; rename it to .npy"),
    "npz named npy": (lambda p: _raw(".npy", _savez(images=IMAGES)(p).read_bytes())(p),
                      "case.npy is an .npz file (a zip of arrays), not a single .npy array; rename it to .npz"),
    "truncated npy": (_raw(".npy", NPY[:-300]),
                      "case.npy is truncated (its header gives 20 x 8 x 8 uint8, 1.3 KB; the file holds 980 bytes "
                      "of data)"),
    "truncated header": (_raw(".npy", NPY[:30]),
                         "case.npy: the file is not a NumPy array or is damaged (EOF: reading array header, expected "
                         "118 bytes got 20)"),
    "negative shape": (_raw(".npy", npy_header((-1, 8, 8), "|u1") + bytes(64)),
                       "case.npy: the file is damaged (its header gives the shape (-1, 8, 8))"),
    "unknown version": (_raw(".npy", b"\x93NUMPY\x09\x00" + NPY[8:]),
                        "case.npy: the file is in .npy format version 9.0, which this NumPy cannot read (versions "
                        "1 to 3 are known)"),
    "a dtype of no bytes": (_raw(".npy", npy_header((4, 2**31), "<U0")),
                            "case.npy: the file has dtype <U0, of no bytes; save numbers (or, for class_names, "
                            "non-empty strings)"),
    "empty but vast": (_raw(".npy", npy_header((0, 2**40, 2**40), "|u1")),
                       "case.npy: the file claims 0 x 1,099,511,627,776 x 1,099,511,627,776 uint8 (0 bytes), more "
                       "than the 8 G values Latent Explorer loads"),
    "too many dimensions": (_raw(".npy", npy_header((1,) * 40, "|u1") + b"\0"),
                            "case.npy: the file has 40 dimensions; images have 3 or 4, labels and class_names 1"),
    "no arrays": (lambda p: _zip(p, {"readme.txt": b"hello"}),
                  "case.npz holds no arrays (an .npz file is written by numpy.savez)"),
    "other keys": (_savez(pixels=IMAGES, y=LABELS),
                   "case.npz has no array named 'images' (it has 'pixels', 'y'); save the images as images=..., "
                   "with optional labels=... and class_names=..."),
    "too many arrays": (_savez(**{f"a{i}": np.zeros(1) for i in range(65)}),
                        "case.npz holds 65 arrays; an image file needs a few"),
    "encrypted": (lambda p: write_zip(p.with_suffix(".npz"), "images.npy", NPY, zlib.crc32(NPY), len(NPY), 0, 1),
                  "case.npz: the array 'images' is encrypted (a password-protected zip); save the arrays with "
                  "numpy.savez or numpy.savez_compressed"),
    "unknown compression": (lambda p: write_zip(p.with_suffix(".npz"), "images.npy", NPY, zlib.crc32(NPY),
                                                len(NPY), method=99),
                            "case.npz: the array 'images' is damaged (That compression method is not supported)"),
    "bad crc": (lambda p: write_zip(p.with_suffix(".npz"), "images.npy", NPY, zlib.crc32(NPY) ^ 1, len(NPY), 0),
                "case.npz: the array 'images' is damaged (Bad CRC-32 for file 'images.npy')"),
    "member shorter than its header": (
        lambda p: write_zip(p.with_suffix(".npz"), "images.npy", NPY[:400], zlib.crc32(NPY[:400]), 400, 0),
        "case.npz: the array 'images' is damaged (its header gives 20 x 8 x 8 uint8, 1.3 KB; the zip holds "
        "400 bytes)"),
    # labels
    "huge labels": (_savez(images=IMAGES, labels=np.where(LABELS == 2, 2**40, LABELS)),
                    "case.npz: labels must be class numbers from 0 to 9999 (these range from 0 to 1099511627776)"),
    "negative labels": (_savez(images=IMAGES, labels=LABELS - 1),
                        "case.npz: labels must be class numbers from 0 to 9999 (these range from -1 to 1)"),
    "float labels 1e300": (_savez(images=IMAGES, labels=np.full(20, 1e300)),
                           "case.npz: labels must be class numbers from 0 to 9999 (these range from 1e+300 to "
                           "1e+300)"),
    "fraction labels": (_savez(images=IMAGES, labels=LABELS / 2),
                        "case.npz: labels must be whole class numbers (these have fractions, e.g. 0.5)"),
    "nan labels": (_savez(images=IMAGES, labels=np.full(20, np.nan)),
                   "case.npz: labels contain NaN or infinite values; give class numbers 0, 1, 2, ..."),
    "one-hot labels": (_savez(images=IMAGES, labels=np.eye(3)[LABELS]),
                       "case.npz: labels have shape (20, 3); give one class number per image (one-hot labels? "
                       "save labels.argmax(1))"),
    "string labels": (_savez(images=IMAGES, labels=np.array(["cat"] * 20)),
                      "case.npz: labels must be a 1-D array of class numbers (these have dtype <U3, shape (20,))"),
    "too few labels": (_savez(images=IMAGES, labels=LABELS[:19]), "case.npz: there are 19 labels for 20 images"),
    # class names
    "too few class names": (_savez(images=IMAGES, labels=LABELS, class_names=np.array(["a", "b"])),
                            "case.npz: class_names names 2 classes, but the labels go up to 2 (give 3 names, for "
                            "classes 0 to 2)"),
    "class names without labels": (_savez(images=IMAGES, class_names=np.array(["a", "b"])),
                                   "case.npz has class_names but no labels; give labels=... (a class number per "
                                   "image) too"),
    "numbers as class names": (_savez(images=IMAGES, labels=LABELS, class_names=np.arange(3)),
                               "case.npz: class_names must be a 1-D array of strings (it has dtype int64, shape "
                               "(3,))"),
    "class name with a newline": (_savez(images=IMAGES, labels=LABELS, class_names=np.array(["a", "b\nc", "d"])),
                                  "case.npz: class_names[1] ('b\\nc') holds a line break or control character; "
                                  "give names on one line"),
    "empty class name": (_savez(images=IMAGES, labels=LABELS, class_names=np.array(["a", " ", "d"])),
                         "case.npz: class_names[1] is empty; give every class a name"),
    "duplicate class names": (_savez(images=IMAGES, labels=LABELS, class_names=np.array(["a", "b", "a"])),
                              "case.npz: class_names names classes 0 and 2 both 'a'; give each class its own name"),
    "long class name": (_savez(images=IMAGES, labels=LABELS, class_names=np.array(["a", "b", "c" * 1001])),
                        "case.npz: class_names[2] is 1,001 characters long; give names of at most 1000"),
    "class names claiming gigabytes": (
        lambda p: _zip(p, {"images.npy": NPY, "labels.npy": npy_bytes(LABELS),
                           "class_names.npy": npy_header((3,), "<U100000000")}),
        "case.npz: class_names claims 3 <U100000000 (1.2 GB); give at most 10,000 names of at most 1000 "
        "characters"),
    # the two ways of giving splits, mixed up
    "images and train_images": (_savez(images=IMAGES, train_images=IMAGES, test_images=IMAGES),
                                "case.npz has both images and train_images/test_images; give one images array "
                                "(split with the seed) or the two split arrays"),
    "train_images alone": (_savez(train_images=IMAGES),
                           "case.npz: give both train_images and test_images, or one images array"),
    "labels with split arrays": (_savez(train_images=IMAGES, test_images=IMAGES, labels=LABELS),
                                 "case.npz: labels goes with one images array; with train_images and test_images "
                                 "give train_labels and test_labels"),
    "split labels with images": (_savez(images=IMAGES, train_labels=LABELS, test_labels=LABELS),
                                 "case.npz: train_labels and test_labels go with train_images and test_images; with "
                                 "one images array give labels"),
    "train_labels alone": (_savez(train_images=IMAGES, test_images=IMAGES, train_labels=LABELS),
                           "case.npz: give both train_labels and test_labels, or neither"),
    "splits of different sizes": (_savez(train_images=IMAGES, test_images=np.zeros((4, 9, 9), np.uint8)),
                                  "case.npz: train_images are (1, 8, 8) and test_images (1, 9, 9) (C, H, W); they "
                                  "must match"),
}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    path = path.with_suffix(".npz")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_file_is_one_exact_line(case: str, tmp_path: Path) -> None:
    make, expected = CASES[case]
    path = make(tmp_path / "case")
    line = refused(path, tmp_path)
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(line), line
    else:
        assert line == expected
    with pytest.raises(DataError) as caught:  # the loader says the same, on one line
        load_dataset(DataConfig(dataset=str(path)))
    assert str(caught.value) == line and "\n" not in str(caught.value)


def test_a_damaged_deflate_stream_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "damaged.npz"
    np.savez_compressed(path, images=np.random.default_rng(0).integers(0, 256, (200, 16, 16), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[300:400] = b"\xff" * 100  # inside the deflate stream of 'images.npy'
    path.write_bytes(bytes(data))
    line = refused(path, tmp_path)
    assert line.startswith("damaged.npz: the array 'images' "), line
    assert "damaged" in line and ("decompressing" in line or "CRC" in line), line


def test_a_truncated_npz_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.npz"
    np.savez(path, images=IMAGES, labels=LABELS)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # the central directory is gone
    assert refused(path, tmp_path) == "cut.npz is a damaged or truncated .npz file (File is not a zip file)"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "missing"])
def test_special_files_are_refused_without_reading(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "images.npz"
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(path)
        expected = f"{path} is a FIFO, not a regular file"
    elif kind == "dev-zero":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero here")
        path = tmp_path / "images.npy"
        path.symlink_to("/dev/zero")
        expected = f"{path} is a character device, not a regular file"
    elif kind == "folder":
        path.mkdir()
        expected = f"{path} is a folder, not a regular file"
    else:
        expected = f"{path} does not exist"
    started = time.monotonic()
    assert refused(path, tmp_path) == expected
    assert time.monotonic() - started < 30


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "vast.npy"
    with open(path, "wb") as fh:
        try:
            fh.truncate(17 * 1024**3)  # sparse: no disk used where the file system allows it
        except OSError:
            pytest.skip("this file system cannot make a 17 GB sparse file")
    assert refused(path, tmp_path) == f"{path} is 17.0 GB, more than the 16.0 GB such a file can be"


def test_a_conditional_model_on_images_without_labels_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "unlabelled.npz"
    np.savez(path, images=IMAGES)
    assert refused(path, tmp_path, "cvae").startswith("cvae is conditional: it needs at least two classes")


def test_a_file_name_with_a_line_break_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.npz"
    path.write_bytes(b"not a zip")
    line = refused(path, tmp_path)
    assert line == ("two\\nlines.npz is not an .npz file (NumPy's zip of arrays, written by numpy.savez): "
                    "File is not a zip file")


# -- zip bombs: refused from the header, never inflated -------------------------------------------


def _peak_while(call) -> tuple[int, float, str]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(DataError) as caught:
            call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, time.monotonic() - started, str(caught.value)


def test_a_zip_bomb_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1 GiB of float32 zeros from about 1 MB: a real bomb (its sizes and CRC are right).
    path = zip_bomb(tmp_path / "bomb.npz", (65536, 64, 64))
    assert path.stat().st_size < 2 * 1024**2
    with zipfile.ZipFile(path) as archive, archive.open("images.npy") as member:
        assert archive.getinfo("images.npy").file_size == len(npy_header((65536, 64, 64))) + 1024**3
        assert member.read(4096).startswith(b"\x93NUMPY")  # it inflates as it says

    monkeypatch.setenv("LATENT_EXPLORER_FREE_MEMORY", "512MiB")
    expected = ("bomb.npz: the array 'images' claims 65,536 x 64 x 64 float32 (1.1 GB); loading it needs about "
                "2.4 GB of memory and 537 MB is free; save fewer images, smaller ones, or uint8 pixels")
    peak, seconds, message = _peak_while(lambda: read_array_file(path))
    assert message == expected
    assert peak < 16 * 1024**2, f"{peak / 1024**2:.0f} MiB were allocated: the bomb was inflated"
    assert seconds < 5
    assert refused(path, tmp_path) == expected


def test_an_array_past_every_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    header = npy_header((2**40, 512, 512), "|u1")
    member = header + bytes(1024)
    path = write_zip(tmp_path / "huge.npz", "images.npy", member, zlib.crc32(member), len(member), 0)
    peak, seconds, message = _peak_while(lambda: read_array_file(path))
    assert message == ("huge.npz: the array 'images' claims 1,099,511,627,776 x 512 x 512 uint8 (over 1,000 TB), "
                       "more than the 8 G values Latent Explorer loads")
    assert peak < 16 * 1024**2 and seconds < 5

    npy = tmp_path / "huge.npy"
    npy.write_bytes(header + bytes(64))  # a .npy is checked against its real size first
    peak, _, message = _peak_while(lambda: read_array_file(npy))
    assert message == ("huge.npy is truncated (its header gives 1,099,511,627,776 x 512 x 512 uint8, over 1,000 TB; "
                       "the file holds 64 bytes of data)")
    assert peak < 16 * 1024**2


def test_arrays_handed_over_are_checked_the_same() -> None:
    with pytest.raises(DataError, match=r"^mine: float images must lie in \[0, 1\]; these range from 0 to 2$"):
        image_data_from_arrays({"images": np.linspace(0, 2, 4 * 64).reshape(4, 8, 8)}, "mine")
    with pytest.raises(DataError, match=r"^mine: class_names names 1 classes, but the labels go up to 2"):
        image_data_from_arrays({"images": IMAGES, "labels": LABELS, "class_names": ["a"]}, "mine")
    data = image_data_from_arrays({"images": torch.from_numpy(IMAGES).to(torch.bfloat16) / 255, "labels": LABELS},
                                  "mine")
    assert data.image_shape == (1, 8, 8)
