"""The machine sound through faults: a real JACK server stopped, killed or frozen and back, a chain that fails.

Each scenario runs in a child process (this file run as a script: ``python tests/test_machine_faults.py
SCENARIO`` prints one JSON row) with its own ``jackd --no-realtime -d dummy``, a player client
feeding ``machine:in_1`` and a listener on ``machine:out_1``, connected by the machine itself;
the peers live in the same process, as dawemo's input and MIDI port do beside the machine. The
player is loud before the fault and quiet after it, so the level the listener hears tells audio
from before the outage (stale) from new audio. Scenarios run in a private mount namespace with
its own ``/dev/shm`` (``unshare -m``, needs root): jackd2 allows 8 servers per machine and a
SIGKILLed one keeps its slot in /dev/shm, which then goes away with the namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RATE, PERIOD = 48000, 512
LOUD, QUIET = 0.5, 0.05  # the player's sine amplitude before and after the fault
HEARD = 0.01  # a listener block with a higher peak is sound
STALE = 0.08  # after the fault, a peak above this is sound from before it (a tail, a held note)
DOWN_S = 1.2  # how long the server stays away (or frozen)
LATE_S = 0.6  # after a stop, the listener returns this long after the server
CHAIN = ('[chain]\nname = "gain and delay"\n[[plugin]]\nplugin = "Gain"\n[plugin.set]\ngain_db = 0.0\n'
         '[[plugin]]\nplugin = "Delay"\n[plugin.set]\ndelay_seconds = 0.2\nfeedback = 0.0\nmix = 0.5\n')


def namespace_problem() -> str | None:
    """Why a private /dev/shm cannot be had here, or None."""
    if not sys.platform.startswith("linux"):
        return "mount namespaces are Linux only"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux)"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /dev/shm"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        return f"a private /dev/shm needs 'unshare -m' and mount (root): {probe.stderr.strip()[-200:]}"
    return None


def run_child(scenario: str, private_shm: bool, *args: str, timeout_s: float = 60.0) -> dict:
    """Run one scenario in a child process and return its JSON row.

    The child prints its Python stack if it crashes in native code (faulthandler), so a failure says
    where: the crashes seen earlier (about one run in 25 here, one in six in CI) were the scenario's
    own server probe opening a client while the machine rejoined, and libjack's message handler
    replaced under a live call; both now go through ``dawemo.jack_clients``.
    """
    argv = [sys.executable, str(Path(__file__).resolve()), scenario, *args]
    if private_shm:
        argv = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "sh", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    rows = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and rows, f"scenario {scenario} failed (exit {done.returncode}):\n" \
                                          f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return json.loads(rows[-1])


@pytest.fixture(scope="module")
def namespaces() -> str | None:
    if shutil.which("jackd") is None:
        pytest.skip("needs jackd (Debian package jackd2, installed by scripts/test.sh)")
    return namespace_problem()


def check_rejoin(row: dict, message: str, source: str = "machine:in_1", peer: str = "player:out_1") -> None:
    assert row["heard_before"], row
    assert row["detected_s"] is not None and row["detected_s"] <= 1.0, row
    assert row["state_after_fault"] == "recovering" and row["message"].startswith(message), row
    assert row["where"].startswith("JACK server 'machine-faults-"), row
    assert row["ok_after_ready_s"] is not None and row["ok_after_ready_s"] <= 2.0, row
    assert row["sound_after_ready_s"] is not None and row["sound_after_ready_s"] <= 2.0, row
    assert row["stale_peak"] < STALE, f"sound from before the fault played after the rejoin: {row}"
    # The same client name and the connections the machine was given, made again.
    assert row["connections"] == {source: [peer], "machine:out_1": ["listener:in_1"]}, row
    assert row["rejoins"] == 1 and row["error"] is None and row["final_state"] == "ok", row


# stop: SIGTERM, JACK tells its clients; kill: SIGKILL, they see its socket close; hang: SIGSTOP,
# nothing is said and only the missing audio cycles show it (then SIGCONT instead of a restart).
@pytest.mark.parametrize("fault,message", [("stop", "the JACK server shut down"), ("kill", "the JACK server shut down"),
                                           ("hang", "no audio cycle from the JACK server")])
def test_machine_rejoins_the_server(namespaces, fault, message):
    if fault == "kill" and namespaces is not None:
        pytest.skip(f"killing jackd leaks one of its 8 server slots without a private /dev/shm: {namespaces}")
    row = run_child(fault, namespaces is None)
    print(json.dumps(row))
    check_rejoin(row, message)
    if fault == "stop":  # the rejoin came before the listener: a missing port, then connected
        assert any(state == "degraded" and "'listener:in_1'" in text for _, state, text in row["changes"]), row


def test_instrument_rejoins_with_its_midi_port_and_no_held_notes(namespaces, tmp_path_factory):
    """A chain that starts with a VST3 instrument, played from a JACK MIDI port, through a stop."""
    from tests.test_vst3 import build_plugin

    synth = build_plugin(tmp_path_factory, "build_test_synth.sh", "TestSynth")
    row = run_child("instrument", namespaces is None, str(synth))
    print(json.dumps(row))
    check_rejoin(row, "the JACK server shut down", source="machine:midi_in", peer="keys:out")


def test_failing_chain_is_reported_failed_and_the_graph_keeps_running(namespaces):
    row = run_child("plugin", namespaces is None)
    assert row["detected_s"] is not None and row["detected_s"] <= 1.0, row
    assert row["state"] == "failed" and "the plugin crashed" in row["message"], row
    assert row["error"].startswith("machine chain failed: the plugin crashed"), row
    assert row["where"] == "chain 'gain and delay'", row
    assert row["cycles_after_failure"] > 10, row  # JACK still calls the machine (it plays silence)


# -- the child: one scenario against a real server -----------------------------------------------


class Server:
    """``jackd --no-realtime -d dummy`` under a fixed name: started, stopped, killed, started again."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until a client can join; returns the ``time.monotonic()`` it was ready."""
        import jack

        from dawemo.inputs.jack_server import _die_with_parent  # a scenario that fails leaves no server behind
        from dawemo.jack_clients import jack_client_lock

        self.process = subprocess.Popen(["jackd", "--no-realtime", "-n", self.name, "-d", "dummy", "-r", str(RATE),
                                         "-p", str(PERIOD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with jack_client_lock():  # the machine's rejoin thread opens clients in this process too
                    jack.Client("probe", no_start_server=True, servername=self.name).close()
                return time.monotonic()
            except jack.JackError:
                time.sleep(0.01)
        raise RuntimeError("jackd did not start within 10 s")

    def stop(self, kill: bool = False) -> float:
        """SIGTERM (or SIGKILL) the server and wait for it; returns when the signal went."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return sent


class Peer:
    """A JACK client: ``player`` (a looping sine on out_1), ``keys`` (a note every 0.2 s on the MIDI
    port out, its velocity giving the same peak through the test synth) or ``listener`` (the peak
    of each block heard on in_1)."""

    NOTE_EVERY, NOTE_FRAMES = RATE // 5, RATE // 10

    def __init__(self, name: str, server: str, amplitude: float = 0.0, midi: bool = False) -> None:
        import jack

        from dawemo.jack_clients import jack_client_lock

        with jack_client_lock():  # the machine's rejoin thread opens clients in this process too
            self.client = jack.Client(name, no_start_server=True, servername=server)
        self.heard: list[tuple[float, float]] = []  # (time.monotonic(), peak) of each block, listener only
        self.signal, self.midi, self.position = None, midi, 0
        if midi:
            self.port = self.client.midi_outports.register("out")
            self.play(amplitude)
        elif amplitude:
            self.port = self.client.outports.register("out_1")
            self.play(amplitude)
        else:
            self.port = self.client.inports.register("in_1")
        self.client.set_process_callback(self._process)
        self.client.activate()

    def play(self, amplitude: float) -> None:
        if self.midi:  # the test synth's peak is velocity / 127 at its default volume of -6 dB
            self.velocity = max(1, min(127, round(127 * amplitude / 0.5)))
        else:
            t = np.arange(RATE) / RATE
            self.signal = (amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.float32)

    def _process(self, frames: int) -> None:
        if self.midi:
            self.port.clear_buffer()
            for offset, message in (((-self.position) % self.NOTE_EVERY, (0x90, 69, self.velocity)),
                                    ((self.NOTE_FRAMES - self.position) % self.NOTE_EVERY, (0x80, 69, 0))):
                if offset < frames:
                    self.port.write_midi_event(offset, message)
            self.position += frames
        elif self.signal is not None:
            self.port.get_array()[:] = np.take(self.signal, range(self.position, self.position + frames), mode="wrap")
            self.position += frames
        else:
            self.heard.append((time.monotonic(), float(np.max(np.abs(self.port.get_array())))))

    def first_sound_after(self, start_s: float) -> float | None:
        return next((when for when, peak in list(self.heard) if when >= start_s and peak > HEARD), None)

    def connections(self, port: str) -> list[str]:
        import jack

        try:
            return sorted(p.name for p in self.client.get_all_connections(port))
        except RuntimeError:  # JACK-Client cannot decode an empty connection list
            return []
        except jack.JackError:  # no such port
            return None

    def close(self) -> None:
        """Close after the row is measured; bounded, as one deactivate in some hundred runs under load
        hung in libjack, and a peer's teardown is not what the scenario checks."""
        from dawemo.jack_clients import close_client_bounded

        close_client_bounded(self.client, timeout_s=5.0)

    def forget(self) -> None:
        """Let go of the client after its server shut down, without calling libjack on it.

        jack2 frees such clients itself at the next client open in this process (the machine's
        rejoin attempts); closing one afterwards would be a use-after-free (see JackMachine._let_go).
        """
        import jack

        self.client._ptr = jack._ffi.NULL


class HealthLog:
    """Every change of ``part.health``, polled every 5 ms: (time.monotonic(), state, message, where)."""

    def __init__(self, part) -> None:
        self.part, self.changes, self._stop = part, [], threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        last = None
        while not self._stop.is_set():
            health = self.part.health
            if health != last:
                self.changes.append((time.monotonic(), health.state, health.message, health.where))
                last = health
            time.sleep(0.005)

    def first(self, after_s: float, test) -> tuple | None:
        return next((change for change in list(self.changes) if change[0] >= after_s and test(change[1])), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def restart_scenario(name: str, fault: str, synth: str | None = None) -> dict:
    """Play through the machine; stop, kill or freeze (SIGSTOP) the server; start or resume it; listen.

    With ``synth`` (a VST3 instrument) the machine is played from the MIDI port ``keys:out``.
    """
    from dawemo.machine.chain import parse_chain
    from dawemo.machine.live import JackMachine

    server = Server(name)
    server.start()
    source = ("keys", "out", "midi_in") if synth else ("player", "out_1", "in_1")  # (client, its port, ours)

    def play(amplitude: float) -> Peer:
        return Peer(source[0], name, amplitude, midi=synth is not None)

    player, listener = play(LOUD), Peer("listener", name)
    chain = CHAIN if synth is None else CHAIN.replace('plugin = "Gain"\n[plugin.set]\ngain_db = 0.0',
                                                      f'plugin = "{synth}"')
    patterns = {"midi_inputs" if synth else "inputs": [f"{source[0]}:{source[1]}"]}
    machine = JackMachine(parse_chain(chain), outputs=["listener:in_1"], client_name="machine", server_name=name,
                          **patterns)
    machine.open()
    log = HealthLog(machine)
    heard_before = wait_for(lambda: listener.first_sound_after(0.0) is not None, 3.0)
    time.sleep(0.5)  # the delay line and the rings are full of loud audio now
    dead = []  # peers of a server that went, kept so that nothing finalizes their clients
    if fault == "hang":
        fault_s = time.monotonic()
        server.process.send_signal(signal.SIGSTOP)
        player.play(QUIET)
        time.sleep(DOWN_S)
        ready_s = time.monotonic()
        server.process.send_signal(signal.SIGCONT)
    else:
        fault_s = server.stop(kill=fault == "kill")
        dead += [player, listener]
        for peer in dead:
            peer.forget()
        time.sleep(DOWN_S)
        ready_s = server.start()
        player = play(QUIET)
        if fault == "stop" and synth is None:  # the machine comes back first, waits for the listener
            time.sleep(LATE_S)
        listener = Peer("listener", name)
    wait_for(lambda: machine.health.ok and listener.first_sound_after(ready_s) is not None, 4.0)
    time.sleep(0.5)  # long enough for the delay's old tail to come out, were it still there
    detected = log.first(fault_s, lambda state: state != "ok")
    back = log.first(ready_s, lambda state: state == "ok")
    sound_s = listener.first_sound_after(ready_s)
    row = {"scenario": fault if synth is None else "instrument", "heard_before": heard_before,
           "detected_s": detected[0] - fault_s if detected else None,
           "state_after_fault": detected[1] if detected else None,
           "message": detected[2] if detected else None, "where": detected[3] if detected else None,
           "ok_after_ready_s": back[0] - ready_s if back else None,
           "sound_after_ready_s": sound_s - ready_s if sound_s is not None else None,
           "stale_peak": max((peak for when, peak in list(listener.heard) if when >= ready_s), default=0.0),
           "connections": {port: listener.connections(port) for port in (f"machine:{source[2]}", "machine:out_1")},
           "rejoins": machine.rejoins, "error": machine.error, "final_state": machine.health.state,
           "changes": [(round(when - fault_s, 3), state, message) for when, state, message, _ in log.changes]}
    log.stop()
    started = time.monotonic()
    machine.close()
    row["close_s"] = time.monotonic() - started
    player.close()
    listener.close()
    server.stop()
    return row


def plugin_scenario(name: str) -> dict:
    """A chain that raises while the server runs: ``failed``, and JACK keeps calling the machine."""
    from dawemo.machine.chain import parse_chain
    from dawemo.machine.live import JackMachine

    server = Server(name)
    server.start()
    player = Peer("player", name, LOUD)
    with JackMachine(parse_chain(CHAIN), inputs=["player:out_1"], client_name="machine", server_name=name) as machine:
        wait_for(lambda: machine.processor.samples_done > 0, 3.0)

        def crash(audio):  # what a plugin that throws does to the chain's process()
            raise RuntimeError("the plugin crashed\nwith a second line")

        machine.processor.process = crash
        broken_s = time.monotonic()
        wait_for(lambda: not machine.health.ok, 2.0)
        detected_s, health = time.monotonic() - broken_s, machine.health
        cycles = machine._cycles
        time.sleep(0.3)
        row = {"detected_s": detected_s if not health.ok else None, "state": health.state,
               "message": health.message, "where": health.where, "error": machine.error,
               "cycles_after_failure": machine._cycles - cycles}
    player.close()
    server.stop()
    return row


def main(scenario: str, *args: str) -> None:
    import faulthandler

    faulthandler.enable()  # a crash in native code shows the Python stack that led to it
    faulthandler.dump_traceback_later(40, exit=True)  # a hang shows where, instead of a bare timeout
    sys.path.insert(0, str(ROOT))
    from dawemo.jack_clients import route_libjack_messages

    route_libjack_messages()  # "cannot connect" is expected while the server is away
    name = f"machine-faults-{uuid.uuid4().hex[:6]}"
    os.environ["JACK_DEFAULT_SERVER"] = name
    if scenario == "plugin":
        row = plugin_scenario(name)
    elif scenario == "instrument":
        row = restart_scenario(name, "stop", synth=args[0])
    else:
        row = restart_scenario(name, scenario)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
