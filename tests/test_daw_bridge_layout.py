"""The shared-memory layout is defined once (bridge/BridgeLayout.h); dawemo's reader agrees with it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bridge_helpers import BRIDGE_SRC
from dawemo import bridge_shm

FIELDS = [name for name in bridge_shm.OFFSETS if name not in ("magic",)]


def test_python_offsets_equal_the_header(tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    lines = [f'std::printf("{name} %zu\\n", offsetof(Header, {name}));' for name in FIELDS]
    lines += [f'std::printf("T.{name} %zu\\n", offsetof(TransportRecord, {name}));'
              for name in bridge_shm.TRANSPORT_DTYPE.names]
    lines += [f'std::printf("M.{name} %zu\\n", offsetof(MidiRecord, {name}));' for name in bridge_shm.MIDI_DTYPE.names]
    lines += ['std::printf("X.version %d\\n", DAWEMO_BRIDGE_LAYOUT_VERSION);',
              'std::printf("X.magic %s\\n", DAWEMO_BRIDGE_MAGIC);',
              'std::printf("X.prefix %s\\n", DAWEMO_BRIDGE_SHM_PREFIX);',
              'std::printf("S.T %zu\\nS.M %zu\\n", sizeof(TransportRecord), sizeof(MidiRecord));']
    source = tmp_path / "dump.cpp"
    source.write_text('#include <cstdio>\n#include "BridgeLayout.h"\nusing namespace dawemo_bridge;\n'
                      "int main() {\n" + "\n".join(lines) + "\nreturn 0; }\n")
    subprocess.run(["g++", "-std=gnu++17", "-Wno-invalid-offsetof", "-I", str(BRIDGE_SRC), str(source), "-o",
                    str(tmp_path / "dump")], check=True, capture_output=True)
    dumped = dict(line.split(" ", 1) for line in subprocess.run(
        [str(tmp_path / "dump")], check=True, capture_output=True, text=True).stdout.splitlines())
    for name in FIELDS:
        assert int(dumped[name]) == bridge_shm.OFFSETS[name], name
    for name in bridge_shm.TRANSPORT_DTYPE.names:
        assert int(dumped[f"T.{name}"]) == bridge_shm.TRANSPORT_DTYPE.fields[name][1], name
    for name in bridge_shm.MIDI_DTYPE.names:
        assert int(dumped[f"M.{name}"]) == bridge_shm.MIDI_DTYPE.fields[name][1], name
    assert int(dumped["S.T"]) == bridge_shm.TRANSPORT_DTYPE.itemsize
    assert int(dumped["S.M"]) == bridge_shm.MIDI_DTYPE.itemsize
    assert int(dumped["X.version"]) == bridge_shm.LAYOUT_VERSION
    assert dumped["X.magic"].encode() == bridge_shm.MAGIC
    assert dumped["X.prefix"] == bridge_shm.SHM_PREFIX
