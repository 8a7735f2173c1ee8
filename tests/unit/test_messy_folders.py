"""A user's own, messy folder of images: what loads, what is skipped and how it is reported.

Every fixture is generated with PIL in tmp_path and kept tiny; the "huge" images are PNG
headers that only claim a gigapixel size, so no real memory is used.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)
from PIL import Image

from explorer.config import DataConfig, TrainConfig
from explorer.data import FolderReport, ImageData, load_dataset
from explorer.data import folder as folder_module
from explorer.data.folder import load_folder
from explorer.errors import DataError, UserError
from explorer.training.runs import model_config_for, prepare_run

pytestmark = pytest.mark.usefixtures("single_thread_torch")

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _save(img: Image.Image, path: Path, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **params)
    return path


def _write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_text if isinstance(content, str) else path.write_bytes)(content)
    return path


def _grey(path: Path, value: int = 100, size: tuple[int, int] = (6, 6)) -> Path:
    return _save(Image.new("L", size, value), path)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR for an RGB image of this size, and almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + _chunk(b"IEND", b""))


def _noise_bytes(fmt: str, mode: str = "RGB", size: int = 48) -> bytes:
    """A real image file full of noise (so it does not compress to nothing), as bytes."""
    import io

    shape = (size, size) if mode == "L" else (size, size, 3)
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def _all(data: ImageData) -> tuple[torch.Tensor, torch.Tensor | None]:
    images = torch.cat([data.train_images, data.test_images])
    labels = None if data.train_labels is None else torch.cat([data.train_labels, data.test_labels])
    return images, labels


def _by_class(data: ImageData) -> dict[str, torch.Tensor]:
    """One image per class folder: {class name: its (C, H, W) image}."""
    images, labels = _all(data)
    assert torch.bincount(labels).tolist() == [1] * data.num_classes
    return {name: images[labels == k][0] for k, name in enumerate(data.class_names)}


def _skipped(report: FolderReport) -> dict[str, str]:
    return {Path(name).name: reason for name, reason in report.skipped}


# -- no images at all ----------------------------------------------------------------------


NO_IMAGES = {
    "empty": ({}, ["the folder is empty"]),
    "text-only": ({"a.txt": "hello", "b.csv": "x,y\n1,2\n", "notes.md": "# hi"},
                  ["3 skipped", "a.txt: not an image", "b.csv: not an image"]),
    "corrupt-only": ({"broken.png": "this is text, not a PNG", "empty.jpg": b"",
                      "cut.png": _noise_bytes("PNG")[:300]},
                     ["3 skipped", "broken.png: not an image", "empty.jpg: an empty file", "cut.png: damaged"]),
    "hidden-only": ({".DS_Store": b"\x00\x00\x00\x01Bud1", ".hidden.png": _noise_bytes("PNG"),
                     ".git/config": "[core]"},
                    ["only 3 hidden or system files", "are ignored"]),
    "junk-in-class-folders": ({"cats/a.txt": "meow", "dogs/b.jpg": b""},
                              ["2 skipped", "a.txt: not an image", "b.jpg: an empty file"]),
}


@pytest.mark.parametrize("case", list(NO_IMAGES))
def test_a_folder_without_images_is_one_line_naming_it_and_what_was_found(tmp_path: Path, case: str) -> None:
    files, expected = NO_IMAGES[case]
    root = tmp_path / "my pictures"
    root.mkdir()
    for name, content in files.items():
        _write(root / name, content)
    report = FolderReport()
    with pytest.raises(DataError) as info:
        load_folder(root, report=report)
    message = str(info.value)
    assert message.startswith(f"no readable images in {root}: "), message
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)
    assert report.loaded == 0 and report.skipped == []  # the caller's report is untouched on failure


def test_the_message_about_many_junk_files_stays_short(tmp_path: Path) -> None:
    for i in range(40):
        _write(tmp_path / f"note{i:02}.txt", "x")
    with pytest.raises(DataError) as info:
        load_folder(tmp_path)
    message = str(info.value)
    assert "40 skipped" in message and "note00.txt" in message and "and 37 more" in message
    assert "note39.txt" not in message and len(message) < 400


def test_one_image_among_junk_names_the_junk_too(tmp_path: Path) -> None:
    _grey(tmp_path / "only.png")
    _write(tmp_path / "bad.png", "text")
    with pytest.raises(DataError, match=r"only one readable image.*bad\.png: not an image"):
        load_folder(tmp_path)


# -- modes and sizes -----------------------------------------------------------------------


def _palette_with_transparency(size: tuple[int, int], rgb: tuple[int, int, int], clear_box) -> Image.Image:
    """A P image of colour ``rgb`` whose pixels in ``clear_box`` use a transparent palette entry."""
    img = Image.new("P", size, 1)
    img.putpalette([0, 0, 0, *rgb] + [0] * (3 * 254))
    img.paste(0, clear_box)
    img.info["transparency"] = 0
    return img


def _every_mode(root: Path) -> dict[str, tuple[int, int, int]]:
    """One class folder per kind of file, each a different size; the RGB each should load as."""
    expect: dict[str, tuple[int, int, int]] = {}

    def add(name: str, img: Image.Image, rgb: tuple[int, int, int], ext: str = "png", **params) -> None:
        _save(img, root / name / f"img.{ext}", **params)
        expect[name] = rgb

    add("L", Image.new("L", (7, 5), 10), (10, 10, 10))
    add("RGB", Image.new("RGB", (5, 9), (200, 0, 0)), (200, 0, 0))
    add("RGBA-opaque", Image.new("RGBA", (12, 4), (0, 200, 0, 255)), (0, 200, 0))
    add("RGBA-clear", Image.new("RGBA", (4, 4), (0, 200, 0, 0)), (0, 0, 0))
    add("P", Image.new("RGB", (9, 9), (0, 0, 200)).convert("P", palette=Image.Palette.ADAPTIVE), (0, 0, 200))
    add("P-clear", _palette_with_transparency((6, 6), (90, 90, 0), (0, 0, 6, 6)), (0, 0, 0))
    add("LA-opaque", Image.new("LA", (8, 3), (120, 255)), (120, 120, 120))
    add("LA-clear", Image.new("LA", (8, 3), (120, 0)), (0, 0, 0))
    add("1-bit", Image.new("1", (10, 10), 1), (255, 255, 255))
    add("I16", Image.fromarray(np.full((5, 5), 257 * 100, dtype=np.uint16)), (100, 100, 100))
    add("CMYK", Image.new("CMYK", (6, 6), (0, 255, 255, 0)), (255, 0, 0), "tif")
    add("BMP", Image.new("RGB", (3, 30), (40, 50, 60)), (40, 50, 60), "bmp")
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    add("GIF-animated", frames[0], (255, 0, 0), "gif", save_all=True, append_images=frames[1:], duration=50)
    return expect


def test_every_mode_and_size_loads_at_one_size_with_the_right_colours(tmp_path: Path) -> None:
    expect = _every_mode(tmp_path / "modes")
    report = FolderReport()
    data = load_folder(tmp_path / "modes", image_size=4, report=report)
    assert report.skipped == [] and report.loaded == len(expect)
    assert data.image_shape == (3, 4, 4)  # colour files present: every image gets 3 channels
    loaded = _by_class(data)
    for name, rgb in expect.items():
        got = loaded[name].float().mean(dim=(1, 2))
        assert torch.allclose(got, torch.tensor(rgb, dtype=torch.float32), atol=1.5), (name, got.tolist(), rgb)


def test_the_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 255), (255, 0, 0), (0, 255, 0))]
    _save(frames[0], tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=50)
    _save(Image.new("RGB", (8, 8), (0, 0, 255)), tmp_path / "b.png")
    images, _ = _all(load_folder(tmp_path, image_size=4))
    assert (images[:, 2] > 250).all() and (images[:, :2] < 5).all()  # blue, the first frame, in both


def test_palette_transparency_is_composited_like_rgba(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (8, 8), (90, 90, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 4, 8))  # left half fully transparent
    _save(rgba, tmp_path / "t" / "rgba" / "x.png")
    _save(_palette_with_transparency((8, 8), (90, 90, 0), (0, 0, 4, 8)), tmp_path / "t" / "palette" / "x.png")
    # A greyscale PNG whose tRNS chunk marks the value 50 (its left half) transparent.
    grey = Image.new("L", (8, 8), 90)
    grey.paste(50, (0, 0, 4, 8))
    _save(grey, tmp_path / "t" / "trns" / "x.png", transparency=50)
    loaded = _by_class(load_folder(tmp_path / "t", image_size=8, channels=1))
    assert torch.equal(loaded["rgba"], loaded["palette"])
    assert loaded["rgba"][0, :, :4].max() == 0 and loaded["rgba"][0, :, 5:].min() > 0
    assert loaded["trns"][0, :, :4].max() == 0 and loaded["trns"][0, :, 5:].min() == 90


def test_an_all_grey_family_gets_one_channel_and_any_colour_file_makes_three(tmp_path: Path) -> None:
    root = tmp_path / "grey"
    _save(Image.new("L", (5, 5), 50), root / "l.png")
    _save(Image.new("LA", (6, 4), (60, 255)), root / "la.png")
    _save(Image.new("1", (9, 9), 1), root / "one.png")
    _save(Image.fromarray(np.full((4, 7), 257 * 70, dtype=np.uint16)), root / "i16.png")
    _save(Image.new("L", (12, 12), 80), root / "g.jpg")
    data = load_folder(root, image_size=5)
    assert data.image_shape == (1, 5, 5)
    assert sorted(_all(data)[0].float().mean(dim=(1, 2, 3)).round().tolist()) == [50, 60, 70, 80, 255]

    _save(Image.new("RGB", (5, 5), (10, 20, 30)), root / "colour.png")
    images, _ = _all(load_folder(root, image_size=5))
    assert images.shape == (6, 3, 5, 5)
    greys = images[(images[:, 0] == images[:, 1]).all(dim=(1, 2))]
    assert len(greys) == 5 and torch.equal(greys[:, 0], greys[:, 2])  # grey files copied into all three


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("L", (32, 16), 0)
    img.paste(255, (0, 0, 16, 16))  # as stored: left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    _save(img, tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    _save(img, tmp_path / "plain.jpg", quality=95)
    images, _ = _all(load_folder(tmp_path, image_size=8))
    rows = images[:, 0].float().mean(dim=2)  # (N, 8): each row's brightness
    cols = images[:, 0].float().mean(dim=1)
    rotated = [i for i in range(2) if rows[i, :3].mean() > 200 and rows[i, 5:].mean() < 50]
    upright = [i for i in range(2) if cols[i, :3].mean() > 200 and cols[i, 5:].mean() < 50]
    assert len(rotated) == 1 and len(upright) == 1  # the tagged photo now has its white half on top


# -- big and bomb-sized images -------------------------------------------------------------


def test_decompression_bombs_are_skipped_as_too_large_and_nothing_escapes(tmp_path: Path,
                                                                          capfd: pytest.CaptureFixture) -> None:
    _write(tmp_path / "giga.png", _png_claiming(100_000, 100_000))  # over Pillow's error limit
    _write(tmp_path / "warn.png", _png_claiming(10_000, 10_000))  # in Pillow's warning band
    _write(tmp_path / "ours.png", _png_claiming(8_000, 8_000))  # under Pillow's limits, over ours
    _grey(tmp_path / "a.png")
    _grey(tmp_path / "b.png")
    report = FolderReport()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_folder(tmp_path, image_size=4, report=report)
    assert report.loaded == 2 and data.train_images.shape[0] + data.test_images.shape[0] == 2
    reasons = _skipped(report)
    assert set(reasons) == {"giga.png", "warn.png", "ours.png"}
    assert all(reason.startswith("too large") for reason in reasons.values()), reasons
    assert "8000x8000" in reasons["ours.png"]
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    out, err = capfd.readouterr()
    assert "DecompressionBomb" not in out + err and "decompression bomb" not in (out + err).lower()


def test_only_bombs_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "giga.png", _png_claiming(100_000, 100_000))
    with pytest.raises(DataError, match=r"giga\.png: too large"):
        load_folder(tmp_path)


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_a_big_but_acceptable_image_loads_downscaled(tmp_path: Path, ext: str) -> None:
    big = Image.new("RGB", (3000, 2000), (220, 0, 0))
    big.paste((0, 0, 220), (1500, 0, 3000, 2000))  # left red, right blue
    _save(big, tmp_path / f"big.{ext}")
    _save(Image.new("RGB", (10, 10), (0, 0, 0)), tmp_path / "small.png")
    report = FolderReport()
    images, _ = _all(load_folder(tmp_path, image_size=8, report=report))
    assert report.skipped == [] and images.shape == (2, 3, 8, 8)
    big_one = images[images.float().mean(dim=(1, 2, 3)).argmax()].float()
    assert big_one[0, :, :3].mean() > 200 and big_one[2, :, :3].mean() < 20
    assert big_one[2, :, 5:].mean() > 200 and big_one[0, :, 5:].mean() < 20


# -- corrupt and non-image files -----------------------------------------------------------


def test_corrupt_files_are_skipped_by_name_and_the_rest_loads(tmp_path: Path) -> None:
    for i in range(3):
        _grey(tmp_path / f"good{i}.png", 40 * i)
    png, jpeg = _noise_bytes("PNG"), _noise_bytes("JPEG")
    _write(tmp_path / "half.png", png[: len(png) // 2])
    _write(tmp_path / "half.jpg", jpeg[: len(jpeg) // 2])  # Pillow refuses, unless LOAD_TRUNCATED_IMAGES
    _write(tmp_path / "header-only.jpg", jpeg[:200])
    _write(tmp_path / "text.png", "I am not a PNG at all\n")
    _write(tmp_path / "zero.png", b"")
    _write(tmp_path / "bad-crc.png", png[:40] + bytes(8) + png[48:])  # damaged inside the pixel data
    report = FolderReport()
    data = load_folder(tmp_path, image_size=4, report=report)
    assert report.loaded == 3 and data.train_images.shape[0] + data.test_images.shape[0] == 3
    reasons = _skipped(report)
    assert set(reasons) == {"half.png", "half.jpg", "header-only.jpg", "text.png", "zero.png", "bad-crc.png"}
    assert reasons["zero.png"] == "an empty file"
    assert reasons["text.png"].startswith("not an image")
    assert reasons["half.png"].startswith("damaged") and "truncated" in reasons["half.png"]
    assert reasons["half.jpg"].startswith("damaged") and "truncated" in reasons["half.jpg"]
    assert reasons["bad-crc.png"] == "a damaged PNG file"  # not "not an image": it is one, broken
    assert all(str(tmp_path) not in reason for reason in reasons.values())  # the name is given once, not twice


def test_non_image_files_are_reported_or_ignored_but_never_fatal(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    _grey(root / "a.png", 10)
    _grey(root / "b.png", 20)
    _write(root / "notes.txt", "hello")
    _write(root / "labels.csv", "file,label\na.png,0\n")
    _write(root / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    _write(root / "Thumbs.db", b"\xd0\xcf\x11\xe0")
    _write(root / "desktop.ini", "[.ShellClassInfo]")
    np.save(root / "images.npy", np.zeros(3))
    report = FolderReport()
    data = load_folder(root, report=report)
    assert not data.has_labels and report.loaded == 2
    assert set(_skipped(report)) == {"notes.txt", "labels.csv"}


def test_nested_folders_belong_to_their_class_and_hidden_folders_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _grey(root / "cats" / "a.png", 10)
    _grey(root / "cats" / "kittens" / "tiny" / "b.png", 20)
    _write(root / "cats" / "kittens" / "readme.txt", "kittens")
    (root / "cats" / "kittens" / "empty").mkdir()
    _grey(root / "dogs" / "c.png", 200)
    _grey(root / "dogs" / ".thumbnails" / "black.png", 0)
    _write(root / "dogs" / ".thumbnails" / "index.txt", "x")
    _grey(root / ".git" / "objects" / "ab.png", 0)
    report = FolderReport()
    data = load_folder(root, image_size=4, report=report)
    images, labels = _all(data)
    assert data.class_names == ("cats", "dogs")
    assert torch.bincount(labels).tolist() == [2, 1]
    assert (images.flatten(1).amax(dim=1) > 0).all()  # no black image from a hidden folder
    assert set(_skipped(report)) == {"readme.txt"}


def test_a_junk_sub_folder_is_not_a_class(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    _grey(flat / "a.png", 10)
    _grey(flat / "b.png", 20)
    _write(flat / "misc" / "notes.txt", "x")
    (flat / "empty").mkdir()
    report = FolderReport()
    data = load_folder(flat, report=report)
    assert not data.has_labels and report.loaded == 2  # still the flat folder it was
    assert set(_skipped(report)) == {"notes.txt"}

    pets = tmp_path / "pets"
    _grey(pets / "cats" / "a.png", 10)
    _grey(pets / "dogs" / "b.png", 20)
    _write(pets / "misc" / "notes.txt", "x")
    report = FolderReport()
    data = load_folder(pets, report=report)
    assert data.class_names == ("cats", "dogs")  # no phantom third class
    reasons = _skipped(report)
    assert set(reasons) == {"notes.txt", "misc"} and "not used as a class" in reasons["misc"]


# -- one class -----------------------------------------------------------------------------


@pytest.fixture
def one_class(tmp_path: Path) -> Path:
    for i in range(4):
        _grey(tmp_path / "cats-only" / "cats" / f"{i}.png", 30 + 40 * i, (6 + i, 6))
    return tmp_path / "cats-only"


def test_a_single_class_folder_keeps_its_one_label(one_class: Path) -> None:
    data = load_folder(one_class, image_size=4)
    assert data.class_names == ("cats",) and data.num_classes == 1 and data.has_labels
    _, labels = _all(data)
    assert labels.tolist() == [0, 0, 0, 0]


def test_a_single_class_trains_unconditionally_and_refuses_conditionally(one_class: Path) -> None:
    train_config = TrainConfig(epochs=1, batch_size=2, device="cpu")
    run_ = prepare_run(model_config_for("ae"), DataConfig(dataset=str(one_class), image_size=8), train_config)
    assert run_.model.config.image_shape == (1, 8, 8) and run_.data.num_classes == 1
    with pytest.raises(UserError, match="conditional"):
        prepare_run(model_config_for("cvae"), DataConfig(dataset=str(one_class), image_size=8), train_config)


# -- nothing half-loaded -------------------------------------------------------------------


@pytest.mark.parametrize("failure", [KeyboardInterrupt, MemoryError])
def test_a_failure_midway_returns_nothing_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             failure: type[BaseException]) -> None:
    root = tmp_path / "pics"
    for i in range(5):
        _grey(root / f"{i}.png", 10 * i)
    _write(root / "junk.txt", "x")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cache = Path(os.environ["LATENT_EXPLORER_CACHE"])
    cached_before = sorted(cache.rglob("*")) if cache.exists() else []
    real_read, calls = folder_module._read, []

    def failing_read(path: Path, channels, size):
        calls.append(path.name)
        if len(calls) == 3:
            raise failure()
        return real_read(path, channels, size)

    monkeypatch.setattr(folder_module, "_read", failing_read)
    report = FolderReport()
    with pytest.raises(failure):
        load_dataset(DataConfig(dataset=str(root)), report)
    assert report.loaded == 0 and report.skipped == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (sorted(cache.rglob("*")) if cache.exists() else []) == cached_before


def test_an_io_error_on_one_file_costs_only_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a.png", "b.png", "c.png"):
        _grey(tmp_path / name)
    real_open = Image.open

    def flaky_open(fp, *args, **kwargs):
        if Path(getattr(fp, "name", fp)).name == "b.png":  # the loader passes an open file
            raise OSError(5, "Input/output error", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", flaky_open)
    report = FolderReport()
    load_folder(tmp_path, report=report)
    assert report.loaded == 2 and _skipped(report) == {"b.png": "cannot read it (Input/output error)"}


# -- links, special and unreadable files ---------------------------------------------------


def test_link_loops_broken_links_and_fifos_are_reported_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _grey(root / "cats" / "a.png", 10)
    _grey(root / "cats" / "b.png", 20)
    (root / "cats" / "loop").symlink_to(root / "cats", target_is_directory=True)  # cats/loop/loop/loop/...
    (root / "cats" / "up").symlink_to(root, target_is_directory=True)
    (root / "cats" / "self.png").symlink_to(root / "cats" / "self.png")
    (root / "cats" / "dangling.png").symlink_to(root / "missing.png")
    (root / "cats" / "linked.png").symlink_to(root / "cats" / "a.png")  # a link to a real file is fine
    (root / "again").symlink_to(root, target_is_directory=True)  # would nest the dataset in itself
    _grey(tmp_path / "elsewhere" / "dogs" / "d.png", 200)
    (root / "dogs").symlink_to(tmp_path / "elsewhere" / "dogs", target_is_directory=True)  # a linked class
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "cats" / "pipe.png")  # opening it would block forever
    report = FolderReport()
    data = load_folder(root, image_size=4, report=report)
    assert data.class_names == ("cats", "dogs") and report.loaded == 4
    _, labels = _all(data)
    assert torch.bincount(labels).tolist() == [3, 1]
    reasons = _skipped(report)
    assert "not followed" in reasons["loop"] and "not followed" in reasons["up"] and "not followed" in reasons["again"]
    assert reasons["self.png"] == reasons["dangling.png"] == "a broken or looping link"
    if hasattr(os, "mkfifo"):
        assert reasons["pipe.png"] == "not a regular file"


@pytest.mark.skipif(IS_ROOT, reason="root reads chmod-000 files anyway; the simulated PermissionError test covers it")
def test_unreadable_files_and_folders_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _grey(root / "cats" / "a.png")
    _grey(root / "cats" / "b.png")
    locked_file = _grey(root / "cats" / "locked.png")
    locked_dir = root / "cats" / "private"
    _grey(locked_dir / "c.png")
    locked_class = root / "dogs"
    _grey(locked_class / "d.png")
    locked_file.chmod(0)
    for folder in (locked_dir, locked_class):
        folder.chmod(0)
    try:
        report = FolderReport()
        data = load_folder(root, report=report)
    finally:
        for folder in (locked_dir, locked_class):
            folder.chmod(0o755)
        locked_file.chmod(0o644)
    reasons = _skipped(report)
    assert report.loaded == 2 and data.class_names == ("cats",)
    assert len(report.skipped) == len(reasons) == 3  # the locked class folder is listed once
    assert reasons["locked.png"] == "cannot read it (Permission denied)"
    assert reasons["private"] == reasons["dogs"] == "cannot read this folder (Permission denied)"


def test_a_permission_error_is_reported_with_the_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a.png", "b.png", "locked.png"):
        _grey(tmp_path / name)
    real_open = Image.open

    def guarded_open(fp, *args, **kwargs):
        if Path(getattr(fp, "name", fp)).name == "locked.png":  # the loader passes an open file
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", guarded_open)
    report = FolderReport()
    load_folder(tmp_path, report=report)
    assert _skipped(report) == {"locked.png": "cannot read it (Permission denied)"}


# -- names ---------------------------------------------------------------------------------


def test_unicode_and_spaces_in_names_are_reported_exactly(tmp_path: Path) -> None:
    root = tmp_path / "crème brûlée"
    _grey(root / "naïve ☃ 1.png", 10)
    _grey(root / "日本 語.png", 20)
    _write(root / "café au lait.png", "text")
    _write(root / "Ünïcödé notes.txt", "text")
    report = FolderReport()
    load_folder(root, report=report)
    assert sorted(name for name, _ in report.skipped) == sorted([str(root / "café au lait.png"),
                                                                 str(root / "Ünïcödé notes.txt")])
    assert all(why.startswith("not an image") for _, why in report.skipped)
    junk = tmp_path / "dossier été"
    _write(junk / "résumé.png", "text")
    with pytest.raises(DataError) as info:
        load_folder(junk)
    assert str(junk) in str(info.value) and "résumé.png: not an image" in str(info.value)


# -- what the user sees --------------------------------------------------------------------


def test_cli_train_on_a_messy_folder_names_the_skipped_files_and_trains(tmp_path: Path) -> None:
    root = tmp_path / "messy pics"
    for i in range(6):
        _grey(root / f"{i}.png", 30 * i, (8 + i, 8))
    _save(Image.new("RGBA", (9, 9), (10, 200, 30, 128)), root / "rgba.png")
    _write(root / "broken ☃.png", "text")
    _write(root / "empty.jpg", b"")
    _write(root / "giga.png", _png_claiming(100_000, 100_000))
    _write(root / "Thumbs.db", b"\xd0\xcf")
    out = tmp_path / "m.safetensors"
    # No --limit: with one, only the files the run uses are tried (test_limit_decodes_only_what_is_used)
    rc, _, err = run("train", "--model", "ae", "--dataset", root, "--epochs", 1, "--image-size", 8,
                     "--batch-size", 2, "--device", "cpu", "--json", "--out", out)
    assert rc == 0, err
    assert out.exists()
    skipped_lines = [line for line in err.splitlines() if line.startswith("latent-explorer: skipped ")]
    assert len(skipped_lines) == 3, err
    for name, why in (("broken ☃.png", "not an image"), ("empty.jpg", "empty file"), ("giga.png", "too large")):
        assert any(str(root / name) in line and why in line for line in skipped_lines), (name, err)
    assert "Thumbs.db" not in err and "Traceback" not in err and "DecompressionBomb" not in err


def test_cli_train_on_an_all_junk_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    root = tmp_path / "junk only"
    _write(root / "a.txt", "x")
    _write(root / "b.png", b"")
    rc, out, err = run("train", "--model", "ae", "--dataset", root, "--epochs", 1, "--device", "cpu",
                       "--out", tmp_path / "m.safetensors")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("latent-explorer: error: no readable images in ") and str(root) in lines[0]
    assert "a.txt: not an image" in lines[0] and "b.png: an empty file" in lines[0]
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_conditional_training_on_one_class_is_a_clear_error(one_class: Path, tmp_path: Path) -> None:
    rc, _, err = run("train", "--model", "cvae", "--dataset", one_class, "--epochs", 1, "--device", "cpu",
                     "--out", tmp_path / "m.safetensors")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "conditional" in lines[0], err
