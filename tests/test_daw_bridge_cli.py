"""``dawemo bridge list|install|build`` and ``dawemo run --bridge`` errors and waiting."""

from __future__ import annotations

import numpy as np
import pytest

from bridge_helpers import build_bridge, toolchain_problem, unique_name
from dawemo.cli.bridge import user_plugin_dirs
from dawemo.cli.main import main

pedalboard = pytest.importorskip("pedalboard")


@pytest.fixture
def hosted(monkeypatch):
    """The VST3 build in pedalboard; pedalboard makes two instances (a probe and the active one)."""
    build = build_bridge()
    prefix = unique_name("cli")
    monkeypatch.setenv("DAWEMO_BRIDGE_NAME", prefix)
    host = pedalboard.load_plugin(str(build / "vst3" / "DawemoBridge.vst3"))
    host.process(np.zeros((2, 512), np.float32), 48000, buffer_size=512, reset=False)
    yield prefix
    del host


def test_list_shows_the_running_bridges(hosted, capsys):
    assert main(["bridge", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{hosted}-1 (VST3" in out and f"{hosted}-2 (VST3" in out and "48000 Hz, active" in out


def test_run_with_an_ambiguous_bridge_name_is_a_one_line_error(hosted, capsys):
    assert main(["run", "--bridge", hosted, "-q", "--duration-s", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "several bridges" in err[0] and f"{hosted}-1" in err[0]


def test_run_waits_for_a_bridge_that_is_not_there_yet(capsys):
    assert main(["run", "--bridge", unique_name("absent"), "-q", "--duration-s", "1"]) == 0
    assert "waiting for dawemo Bridge" in capsys.readouterr().err


def test_install_builds_into_the_plugin_folders(tmp_path, capsys):
    if toolchain_problem():
        pytest.skip(toolchain_problem())
    assert main(["bridge", "install", "--prefix", str(tmp_path), "--formats", "vst3,lv2"]) == 0
    assert list((tmp_path / "vst3" / "DawemoBridge.vst3" / "Contents").glob("*-linux/DawemoBridge.so"))
    assert (tmp_path / "lv2" / "DawemoBridge.lv2" / "manifest.ttl").is_file()
    assert "urn:dawemo:bridge" in (tmp_path / "lv2" / "DawemoBridge.lv2" / "DawemoBridge.ttl").read_text()
    assert not (tmp_path / "clap").exists()
    assert "installed VST3" in capsys.readouterr().out


def test_bad_format_is_a_one_line_error(capsys):
    assert main(["bridge", "install", "--formats", "vst2"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_user_plugin_folders_follow_each_formats_convention(tmp_path):
    linux = user_plugin_dirs(tmp_path, "linux")
    assert linux == {"vst3": tmp_path / ".vst3", "clap": tmp_path / ".clap", "lv2": tmp_path / ".lv2"}
    mac = user_plugin_dirs(tmp_path, "darwin")
    assert mac["vst3"] == tmp_path / "Library/Audio/Plug-Ins/VST3" and mac["clap"].name == "CLAP"
