"""Desktop packaging: the .desktop and AppStream files, the icons, the PyInstaller spec, and
``latent-explorer --self-test`` (the check a packaged app runs). No PyInstaller build here:
that is packaging/build.sh (make package). The self-test runs in subprocesses, so no Qt is
loaded into this process."""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import explorer
from explorer.cli import build_parser
from explorer.paths import RESOURCES

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
APP_ID = "io.github.latent_explorer.LatentExplorer"
DESKTOP = PACKAGING / f"{APP_ID}.desktop"
METAINFO = PACKAGING / f"{APP_ID}.metainfo.xml"
ICONS = RESOURCES / "icons"
SVG = ICONS / "latent-explorer.svg"
PNG_SIZES = (16, 32, 48, 64, 128, 256)
SELF_TEST_OK = "latent-explorer self-test: ok:"
SELF_TEST_TIMEOUT_S = 240


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive in desktop files
    parser.read(DESKTOP, encoding="utf-8")
    return parser["Desktop Entry"]


def _pyproject_text() -> str:
    return (ROOT / "pyproject.toml").read_text(encoding="utf-8")


# -- the .desktop file ---------------------------------------------------------------------


def test_desktop_file_has_the_required_keys():
    entry = _desktop_entry()
    for key in ("Type", "Name", "GenericName", "Comment", "Exec", "Icon", "Terminal", "Categories"):
        assert entry.get(key, "").strip(), f"{DESKTOP.name} lacks {key}"
    assert entry["Type"] == "Application"
    assert entry["Terminal"] == "false"
    categories = entry["Categories"].split(";")
    assert categories[-1] == "", "Categories must end with ';'"
    assert {"Education", "Science"} & set(categories)


def test_desktop_icon_is_the_bundled_icon():
    assert _desktop_entry()["Icon"] == SVG.stem


def test_desktop_exec_is_the_console_script_and_the_cli_accepts_its_arguments():
    words = _desktop_entry()["Exec"].split()
    assert words[0] == "latent-explorer"
    assert re.search(r'^latent-explorer = "explorer\.__main__:main"$', _pyproject_text(), re.MULTILINE)
    # %f expands to nothing (plain launch) or to one dropped file: both must parse.
    for expanded in ([w for w in words[1:] if w != "%f"], [w if w != "%f" else "model.safetensors"
                                                           for w in words[1:]]):
        args = build_parser().parse_args(expanded)
        assert args.command in (None, "gui")
    assert build_parser().parse_args(["gui", "model.safetensors"]).checkpoint == "model.safetensors"


# -- AppStream ----------------------------------------------------------------------------


def test_metainfo_parses_and_matches_the_desktop_file():
    root = ET.parse(METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == DESKTOP.stem == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    assert root.find("launchable").get("type") == "desktop-id"
    assert root.findtext("metadata_license")
    assert root.findtext("project_license") == "MIT"
    assert root.findtext("name") == _desktop_entry()["Name"]
    summary = root.findtext("summary")
    assert summary and not summary.endswith(".")
    assert root.find("description/p") is not None
    assert [b.text for b in root.findall("provides/binary")] == ["latent-explorer"]
    assert {c.text for c in root.findall("categories/category")} >= {"Education", "Science"}
    assert root.find("content_rating") is not None
    releases = [r.get("version") for r in root.findall("releases/release")]
    assert explorer.__version__ in releases


# -- icons --------------------------------------------------------------------------------


def test_svg_icon_parses_and_is_square():
    root = ET.parse(SVG).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    x, y, w, h = (float(v) for v in root.get("viewBox").split())
    assert w == h > 0


@pytest.mark.parametrize("size", PNG_SIZES)
def test_png_icon_exists_with_its_size(size):
    from PIL import Image

    path = ICONS / f"latent-explorer-{size}.png"
    assert path.is_file(), f"{path.name} is missing; run packaging/render_icons.py"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (size, size)
        assert image.mode == "RGBA"
        assert image.getpixel((0, 0))[3] == 0, "the corners should be transparent"
        assert image.getpixel((size // 2, size // 2))[3] == 255


def test_render_script_writes_every_size():
    text = (PACKAGING / "render_icons.py").read_text(encoding="utf-8")
    assert f"SIZES = {PNG_SIZES}" in text


def test_package_data_ships_every_resource_file():
    """Every file under explorer/resources matches a [tool.setuptools.package-data] pattern,
    so a wheel (and pip install) carries the MNIST files and the icons."""
    match = re.search(r'^\[tool\.setuptools\.package-data\]\s*\nexplorer = \[(.*?)\]', _pyproject_text(),
                      re.MULTILINE | re.DOTALL)
    assert match, "pyproject.toml has no package-data for explorer"
    patterns = re.findall(r'"([^"]+)"', match.group(1))
    files = [p.relative_to(RESOURCES.parent).as_posix() for p in RESOURCES.rglob("*") if p.is_file()
             and "__pycache__" not in p.parts]
    assert any(f.startswith("resources/icons/") for f in files)
    missed = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not missed, f"not shipped in the wheel: {missed}"


def test_pyinstaller_is_a_package_extra_not_a_test_dependency():
    import tomllib

    extras = tomllib.loads(_pyproject_text())["project"]["optional-dependencies"]
    assert any(dep.lower().startswith("pyinstaller") for dep in extras["package"])
    assert not any("pyinstaller" in dep.lower() for dep in extras["test"])


# -- the PyInstaller spec -----------------------------------------------------------------


def test_spec_bundles_the_resources_and_a_one_folder_app():
    spec = (PACKAGING / "latent-explorer.spec").read_text(encoding="utf-8")
    compile(spec, "latent-explorer.spec", "exec")  # valid Python
    for needed in ('"explorer" / "resources"', '"mnist" / "*.gz"', 'ICONS / "*.png"', 'ICONS / "*.svg"',
                   '"explorer/resources/mnist"', '"explorer/resources/icons"', "COLLECT(",
                   "exclude_binaries=True", 'name="latent-explorer"', '"tkinter"'):
        assert needed in spec, f"the spec lacks {needed}"
    assert "onefile" not in spec.lower()
    for path in re.findall(r'ROOT / "packaging" / "([^"]+)"', spec):
        assert (PACKAGING / path).is_file(), f"the spec names packaging/{path}, which does not exist"
    gz = sorted(p.name for p in (RESOURCES / "mnist").glob("*.gz"))
    assert len(gz) == 4


def test_build_script_builds_the_spec_and_runs_the_self_test():
    script = PACKAGING / "build.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text(encoding="utf-8")
    assert "latent-explorer.spec" in text and "--self-test" in text
    assert "dist/latent-explorer/latent-explorer" in text
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "build/" in ignored and "dist/" in ignored


# -- the self-test ------------------------------------------------------------------------


def _private_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
               LATENT_EXPLORER_DATA=str(tmp_path / "data"), LATENT_EXPLORER_CACHE=str(tmp_path / "cache"),
               OMP_NUM_THREADS="1")
    return env


def _run_python(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=_private_env(tmp_path), capture_output=True,
                          text=True, timeout=SELF_TEST_TIMEOUT_S)


def test_self_test_trains_through_the_window_and_exits_0(tmp_path):
    out = _run_python(["-m", "explorer", "--self-test"], tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(SELF_TEST_OK), out.stdout
    assert "1 epoch on 256 MNIST images" in lines[0]
    # Its settings, data and cache were private and temporary: nothing of the user's touched.
    for folder in ("config", "data", "cache"):
        assert not (tmp_path / folder).exists(), f"the self-test wrote into the user's {folder} folder"


_FAILING_RUN = """
import sys
import explorer.training.runs as runs

def broken(*args, **kwargs):
    raise RuntimeError("injected failure")

runs.prepare_run = broken
from explorer.cli import main
sys.exit(main(["--self-test"]))
"""


def test_self_test_exits_1_with_one_line_when_training_fails(tmp_path):
    out = _run_python(["-c", _FAILING_RUN], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert SELF_TEST_OK not in out.stdout
    reasons = [line for line in out.stderr.splitlines() if line.startswith("latent-explorer self-test:")]
    assert len(reasons) == 1, out.stderr
    assert "FAILED" in reasons[0] and "injected failure" in reasons[0]


def test_self_test_exits_1_when_the_run_outlasts_the_timeout(tmp_path):
    code = ("import sys\nfrom explorer.gui.app.self_test import run_self_test\n"
            "sys.exit(run_self_test(timeout_s=0.001))\n")
    out = _run_python(["-c", code], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "did not finish within" in out.stderr


def test_self_test_takes_no_command():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--self-test", "train"])  # train lacks --out: usage error first
    assert exc.value.code == 2
    from cli_runner import run  # tests/unit is on sys.path (pytest rootdir conftest)

    rc, _, err = run("--self-test", "gui")
    assert rc == 2 and "--self-test takes no command" in err


@pytest.mark.parametrize("tool, args, path", [
    ("desktop-file-validate", [], DESKTOP),
    ("appstreamcli", ["validate", "--no-net"], METAINFO),
])
def test_the_freedesktop_validators_accept_the_files(tool, args, path):
    """Where the validators are installed (desktop-file-utils, appstream), they must pass."""
    import shutil

    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed")
    out = subprocess.run([exe, *args, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "error" not in (out.stdout + out.stderr).lower()
