"""No settings file and no value in it can stop the window: bad values fall back to the
defaults, an unusable file is set aside with a warning, and the window trains as usual."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from explorer.gui.app.main_window import MainWindow
from explorer.gui.state.settings import open_settings, read_int, read_text_list

DEEP = "[" * 5000 + "]" * 5000


def write_ini(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("junk", [
    "[view]\nfont_delta=abc\n",
    "[view]\nfont_delta=99999999999999999999999\n",
    f'[panel]\nmodel="{DEEP}"\ndata="{DEEP}"\n',
    "[plane]\ngrid=@Variant(\\0\\0\\0\\x7f\\0\\0\\0\\bQVariantMap)\ncodes=maybe\n",
    "[files]\nrecent=@Variant(\\0\\0\\0\\x7f\\0\\0\\0\\bQVariantMap)\n",
    "[window]\ngeometry=not a geometry\nstate=3\n",
    "[training]\nautosave_every=-7\n",
], ids=["font-text", "font-huge", "deep-json", "plane-variant", "recent-map", "layout-junk", "autosave-negative"])
def test_a_bad_value_falls_back_and_the_window_starts(qtbot, tmp_path: Path, junk: str):
    settings, warning = open_settings(write_ini(tmp_path / "s.ini", junk))
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.start_action.isEnabled()
    assert window.plane.grid_size.value() == 15
    assert window.autosave.actions[1].isChecked()
    assert window.files.recent() == []
    window.close_without_asking()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_settings_file_is_set_aside_not_read(qtbot, tmp_path: Path):
    path = tmp_path / "s.ini"
    os.mkfifo(path)  # QSettings would block reading it
    settings, warning = open_settings(path)
    assert warning is not None and "not a regular file" in warning and "\n" not in warning
    assert not path.exists() or path.is_file()
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    settings.setValue("view/font_delta", 1)
    settings.sync()
    assert settings.status() == QSettings.Status.NoError
    window.close_without_asking()


def test_the_window_tells_the_user_when_it_set_the_settings_file_aside(qtbot, tmp_path: Path, monkeypatch):
    path = tmp_path / "Latent Explorer.conf"
    path.mkdir()  # a folder where the file should be
    monkeypatch.setattr("explorer.gui.state.settings.settings_path", lambda: path)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.message_box is not None, timeout=3000)
    assert window.message_box.windowTitle() == "Settings reset"
    assert "not a regular file" in window.message_box.text()
    assert any(p.name.startswith("Latent Explorer.conf.broken") for p in tmp_path.iterdir())
    window.message_box.accept()
    window.close_without_asking()


def test_typed_readers_refuse_what_they_cannot_use(tmp_path: Path):
    settings = QSettings(str(write_ini(tmp_path / "r.ini", "[a]\nn=12\nbig=7\nlist=x\n")), QSettings.Format.IniFormat)
    assert read_int(settings, "a/n", 0, 0, 20) == 12
    assert read_int(settings, "a/big", 3, 0, 5) == 3
    assert read_text_list(settings, "a/list", 8) == ["x"]
    assert read_text_list(settings, "a/missing", 8) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_the_self_test_reads_a_copy_of_the_users_settings_and_names_a_broken_file(tmp_path: Path):
    import subprocess
    import sys

    folder = tmp_path / "config" / "Latent Explorer"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "Latent Explorer.conf")
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"), QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-m", "explorer", "--self-test"], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "not a regular file" in done.stdout and len(done.stdout.strip().splitlines()) == 1
    assert (folder / "Latent Explorer.conf").exists(), "the self-test must not change the user's settings"


KEYS = ["view/font_delta", "plane/grid", "plane/codes", "plane/manifold", "files/recent", "panel/model",
        "panel/data", "panel/train", "training/autosave_every", "training/autosave", "window/geometry",
        "window/state"]


def test_fuzzed_settings_files_never_stop_the_window(qtbot, tmp_path_factory):
    """Hypothesis writes settings files of random keys, values and raw bytes; each one opens
    (or is set aside) and the window builds, trains-ready, every time."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    value = st.one_of(st.text(max_size=200), st.integers().map(str), st.just("@Variant(\\0\\0\\0\\x7f)"),
                      st.just("[" * 300), st.just("true"), st.just("-1"), st.just("1e309"))
    lines = st.lists(st.tuples(st.sampled_from(KEYS), value), max_size=8).map(
        lambda pairs: "".join(f"[{k.split('/')[0]}]\n{k.split('/')[1]}={v}\n" for k, v in pairs))
    content = st.one_of(lines.map(lambda t: t.encode("utf-8", "replace")), st.binary(max_size=400))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(content)
    def check(raw: bytes) -> None:
        path = tmp_path_factory.mktemp("fuzz") / "s.ini"
        path.write_bytes(raw)
        settings_, _ = open_settings(path)
        window = MainWindow(settings=settings_)
        try:
            window.show()
            assert window.start_action.isEnabled()
            assert window.panel.configs() is not None
        finally:
            window.close_without_asking()
            window.deleteLater()

    check()
