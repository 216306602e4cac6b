"""Every command and the app with system parts really missing, and with a broken preset or model.

Each scenario runs the real command in a subprocess. Parts are hidden in a private mount
namespace (``unshare -m``, needs root): an empty file bound over each libjack makes JACK-Client's
dlopen fail exactly as on a machine without JACK; a tmpfs over /dev/snd removes the ALSA
sequencer and every sound card; XDG_RUNTIME_DIR and PULSE_SERVER point nowhere, so no sound
server answers either. What must hold: the expected exit code, no traceback, and a failure is
one clear ``dawemo: error:`` line naming the missing part. The scenarios run in parallel.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import chord_progression, write_audio

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mount namespaces are Linux only")

BARE = ("jack", "sound")  # no libjack, no ALSA sequencer, no audio device
DAWEMO = [sys.executable, "-m", "dawemo.cli.main"]
APP = [sys.executable, "-m", "dawemo.ui.app"]


@dataclass
class Scenario:
    """One command run: ``argv`` with {name} placeholders for the files of ``files``.

    hide: parts to hide ("jack": libjack, "sound": /dev/snd, "libasound": alsa-lib).
    code: the exit code expected.
    error: words the single error line must contain (None: the command must succeed quietly).
    stdout: words stdout must contain.
    app: argv is for dawemo-app; ``config`` is then its remembered settings (app.json).
    """

    argv: list[str]
    hide: tuple[str, ...] = ()
    code: int = 0
    error: tuple[str, ...] | None = None
    stdout: tuple[str, ...] = ()
    app: bool = False
    config: dict = field(default_factory=dict)


SCENARIOS = {
    # The JACK library, the ALSA sequencer and every audio device are missing.
    "help": Scenario(["--help"], BARE, stdout=("devices",)),
    "devices": Scenario(["devices"], BARE, stdout=("note: jack: JACK library not found", "needs libjack",
                                                    "note: alsa: no ALSA sequencer")),
    "devices_json": Scenario(["devices", "--json"], BARE, stdout=('"jack": "JACK library not found',)),
    "run_jack_input": Scenario(["run", "--jack-input", "system:capture_1", "--duration-s", "1"], BARE, 2,
                               ("JACK input needs libjack", "install JACK")),
    "run_midi_jack": Scenario(["run", "--file", "{clip}", "--virtual-port", "x", "--midi-api", "jack", "-q"], BARE, 2,
                              ("virtual MIDI port 'x'", "jack: JACK library not found")),
    "run_midi_auto": Scenario(["run", "--file", "{clip}", "--virtual-port", "x", "-q"], BARE, 2,
                              ("jack: JACK library not found", "alsa: no ALSA sequencer")),
    "run_midi_alsa": Scenario(["run", "--file", "{clip}", "--virtual-port", "x", "--midi-api", "alsa", "-q"],
                              ("sound",), 2, ("alsa: no ALSA sequencer",)),
    "run_input_default": Scenario(["run", "--input", "default", "--duration-s", "1", "-q"], BARE, 2,
                                  ("audio input",)),
    "run_machine_sound": Scenario(["run", "--file", "{clip}", "-q", "--chain", "tension-bites",
                                   "--machine-output", "system:playback_1"], BARE, 2,
                                  ("live machine sound needs libjack",)),
    "run_file_no_midi": Scenario(["run", "--file", "{clip}", "-q", "--duration-s", "3"], BARE),
    "learn": Scenario(["learn", "1", "--virtual-port", "x"], BARE, 2,
                      ("jack: JACK library not found", "alsa: no ALSA sequencer")),
    "analyze": Scenario(["analyze", "{clip}"], BARE, stdout=("emotions (1-9)", "dominant:")),
    "render": Scenario(["render", "{clip}", "{clip}", "-o", "{rendered}", "--chain", "tension-bites", "-q"], BARE,
                       stdout=("wrote",)),
    "plugins": Scenario(["plugins"], BARE, stdout=("Reverb",)),
    # alsa-lib itself is missing: python-rtmidi cannot load, everything else still works.
    "no_alsa_lib_devices": Scenario(["devices"], ("libasound", "jack"), stdout=("python-rtmidi cannot load",)),
    "no_alsa_lib_run_midi": Scenario(["run", "--file", "{clip}", "--virtual-port", "x", "-q"], ("libasound",), 2,
                                     ("python-rtmidi cannot load", "libasound2")),
    "no_alsa_lib_run_file": Scenario(["run", "--file", "{clip}", "-q", "--duration-s", "3"], ("libasound",)),
    # A broken preset or model at start.
    "preset_syntax": Scenario(["run", "--file", "{clip}", "-q", "--preset", "{bad_syntax}"], code=2,
                              error=("bad_syntax.toml:1", "TOML syntax error")),
    "preset_values": Scenario(["run", "--file", "{clip}", "-q", "--preset", "{bad_values}"], code=2,
                              error=("bad_values.toml:6", "must be 0-119")),
    "learn_preset": Scenario(["learn", "1", "--virtual-port", "x", "--preset", "{bad_values}"], code=2,
                             error=("bad_values.toml:6",)),
    "run_model": Scenario(["run", "--file", "{clip}", "-q", "--model", "{garbage}"], code=2,
                          error=("garbage.onnx", "cannot load model")),
    "analyze_model": Scenario(["analyze", "{clip}", "--model", "{garbage}"], code=2,
                              error=("garbage.onnx", "cannot load model")),
    "render_model": Scenario(["render", "{clip}", "{clip}", "-o", "{not_rendered}", "--chain", "tension-bites",
                              "--model", "{truncated}"], code=2, error=("truncated.onnx", "cannot load model")),
    # The app: errors go to its banner and, one line each, to stderr; it never crashes.
    "app_no_midi": Scenario(["--file", "{clip}", "--no-midi"], BARE, app=True, error=None),
    "app_midi": Scenario(["--file", "{clip}"], BARE, app=True,
                         error=("cannot start: cannot create virtual MIDI port", "jack: JACK library not found")),
    "app_jack_input": Scenario(["--start"], BARE, app=True, error=("cannot start: JACK input needs libjack",),
                               config={"source_kind": "jack", "jack_ports": "system:capture_1", "midi_mode": "none"}),
    "app_device": Scenario(["--start"], BARE, app=True, error=("cannot start: cannot open audio input",),
                           config={"source_kind": "device", "midi_mode": "none"}),
    "app_broken_preset": Scenario(["--start"], app=True, error=("bad_values.toml:6", "must be 0-119"),
                                  config={"preset": "{bad_values}", "source_kind": "file", "file_path": "{clip}",
                                          "midi_mode": "none"}),
    "app_broken_model": Scenario(["--start"], app=True, error=("model: ", "garbage.onnx", "cannot load model"),
                                 config={"model_path": "{garbage}", "source_kind": "file", "file_path": "{clip}",
                                         "midi_mode": "none"}),
}


def library_files(prefix: str) -> list[str]:
    """The real files of the shared libraries whose names start with ``prefix`` (from ldconfig)."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    files = {os.path.realpath(line.split("=>")[-1].strip()) for line in listing.splitlines()[1:]
             if line.strip().startswith(prefix) and "=>" in line}
    return sorted(path for path in files if os.path.isfile(path))


def in_namespace(argv: list[str], hide: tuple[str, ...]) -> list[str]:
    """``argv`` run in a private mount namespace with the parts in ``hide`` made unavailable."""
    steps = []
    for part, prefix in (("jack", "libjack"), ("libasound", "libasound.so")):
        if part in hide:
            steps += [f"mount --bind /dev/null {shlex.quote(path)}" for path in library_files(prefix)]
    if "sound" in hide:
        steps.append("if [ -d /dev/snd ]; then mount -t tmpfs tmpfs /dev/snd; fi")
    return ["unshare", "-m", "sh", "-c", " && ".join(steps + ['exec "$@"']), "sh", *argv]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("missing")
    paths = {"clip": write_audio(folder / "clip.wav", chord_progression(6.0, 22050), 22050),
             "garbage": folder / "garbage.onnx", "truncated": folder / "truncated.onnx",
             "bad_syntax": folder / "bad_syntax.toml", "bad_values": folder / "bad_values.toml",
             "rendered": folder / "rendered.wav", "not_rendered": folder / "not_rendered.wav"}
    paths["garbage"].write_bytes(bytes(range(256)) * 40)
    from dawemo.emotion.model import default_model_path

    paths["truncated"].write_bytes(default_model_path().read_bytes()[:20000])
    paths["bad_syntax"].write_text('[preset\nname = "broken"\n')
    paths["bad_values"].write_text('[preset]\nname = "bad"\n\n[[lane]]\nsource = "valence"\ncc = 300\n')
    return {name: str(path) for name, path in paths.items()} | {"folder": str(folder)}


@pytest.fixture(scope="module")
def namespaces_work(files) -> None:
    """Skip unless libjack can really be hidden here (root, unshare, mount)."""
    if os.geteuid() != 0:
        pytest.skip("hiding libjack and /dev/snd needs root (unshare -m and bind mounts)")
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(in_namespace([sys.executable, "-c", "import jack"], ("jack",)),
                           capture_output=True, text=True, timeout=60)
    if "OSError" not in probe.stderr:
        pytest.skip(f"could not hide libjack in a mount namespace: {(probe.stderr or 'import jack worked').strip()[-300:]}")


@pytest.fixture(scope="module")
def results(files, namespaces_work) -> dict[str, subprocess.CompletedProcess]:
    """Every scenario's finished process, run in parallel."""
    folder = Path(files["folder"])
    runtime = folder / "runtime"  # no sound server socket in there
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "DAWEMO_DEBUG"}
    env |= {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(runtime), "PULSE_SERVER": "unix:/nonexistent",
            "JACK_DEFAULT_SERVER": "dawemo-none", "JACK_NO_START_SERVER": "1",
            "DAWEMO_CONFIG_DIR": str(folder / "config")}

    def run(name: str) -> subprocess.CompletedProcess:
        scenario = SCENARIOS[name]
        argv = [part.format(**files) for part in scenario.argv]
        if scenario.app:
            config = folder / f"config-{name}"
            config.mkdir(exist_ok=True)
            settings = {key: value.format(**files) if isinstance(value, str) else value
                        for key, value in scenario.config.items()}
            (config / "app.json").write_text(json.dumps(settings))
            argv = APP + argv + ["--config-dir", str(config), "--quit-after-s", "2"]
        else:
            argv = DAWEMO + argv
        if scenario.hide:
            argv = in_namespace(argv, scenario.hide)
        return subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, cwd=folder)

    names = list(SCENARIOS)
    needs_libasound = [name for name in names if "libasound" in SCENARIOS[name].hide]
    if not library_files("libasound.so"):
        names = [name for name in names if name not in needs_libasound]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        return dict(zip(names, pool.map(run, names)))


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_clear_line_never_a_traceback(name, results):
    scenario = SCENARIOS[name]
    if name not in results:
        pytest.skip("alsa-lib (libasound.so.2) is not installed here: nothing to hide")
    done = results[name]
    log = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr, log
    assert done.returncode == scenario.code, log
    for words in scenario.stdout:
        assert words in done.stdout, log
    lines = done.stderr.strip().splitlines()
    prefix = "dawemo-app: error: " if scenario.app else "dawemo: error: "
    errors = [line for line in lines if line.startswith(prefix)]
    # Qt may print its own notes; no other line may speak of errors or of the missing parts
    # (alsa-lib's and libjack's own messages go to the debug log).
    others = [line for line in lines if not line.startswith(prefix)]
    assert not [line for line in others if any(word in line.lower() for word in
                                               ("error", "cannot", "alsa", "jack", "traceback"))], log
    if not scenario.app and scenario.error is not None:
        assert len(lines) == 1, log  # exactly one line: the error
    if scenario.error is None:
        assert not errors, log
    else:
        assert errors, log
        for words in scenario.error:
            assert any(words in line for line in errors), log


def test_devices_json_names_what_is_missing(results):
    data = json.loads(results["devices_json"].stdout)
    assert data["audio"]["jack"] is None
    assert any("needs libjack" in message for message in data["audio"]["errors"])
    assert data["midi"]["unavailable"]["jack"].startswith("JACK library not found")
    assert data["midi"]["unavailable"]["alsa"].startswith("no ALSA sequencer")


def test_render_and_the_app_work_without_jack(results, files):
    assert Path(files["rendered"]).stat().st_size > 10000
    remembered = json.loads((Path(files["folder"]) / "config-app_no_midi" / "app.json").read_text())
    assert remembered["file_path"] == files["clip"]


def test_the_window_shows_a_broken_model_and_preset(files, tmp_path):
    pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtWidgets import QApplication

    from dawemo.ui.main_window import MainWindow
    from dawemo.ui.settings import AppSettings

    app = QApplication.instance() or QApplication([])
    settings = AppSettings(source_kind="file", file_path=files["clip"], midi_mode="none",
                           preset=files["bad_syntax"], model_path=files["garbage"])
    window = MainWindow(settings, tmp_path / "config")
    try:
        window.show()
        app.processEvents()
        assert any("bad_syntax.toml:1" in error for error in window.errors)
        assert window.error_banner.isVisible() and "cannot load model" in window.error_banner.text()
        assert window.start_engine() is False
        assert "cannot start" in window.error_banner.text() and "garbage.onnx" in window.error_banner.text()
    finally:
        window.stop_engine()
        window.close()


def test_an_unforeseen_error_is_one_line_and_the_traceback_needs_dawemo_debug(capsys, monkeypatch):
    from dawemo.cli.main import report_unexpected

    try:
        import jack_client_that_is_not_installed  # noqa: F401
    except ImportError as error:
        caught = error
    monkeypatch.delenv("DAWEMO_DEBUG", raising=False)
    assert report_unexpected(caught) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["dawemo: error: ModuleNotFoundError: No module named 'jack_client_that_is_not_installed' "
                     "(set DAWEMO_DEBUG=1 for the traceback)"]
    monkeypatch.setenv("DAWEMO_DEBUG", "1")
    report_unexpected(caught)
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("dawemo: error: ModuleNotFoundError")
