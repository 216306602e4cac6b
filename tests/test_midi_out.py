"""MidiOutput on a real (dummy-driver) JACK server: delivery, timing, port lookup, port loss."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jack_helpers import Receiver, connect, unique, wait_until
import rtmidi

from dawemo.inputs.jack_server import DummyJackServer
from dawemo.outputs.midi import MidiOutput, MidiPortError, list_midi_ports, match_port_name

needs_jack = pytest.mark.skipif(
    shutil.which("jackd") is None or rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api(),
    reason="needs jackd (Debian package jackd2, installed by scripts/test.sh) and python-rtmidi with JACK")

# A receiving client in its own process, so a test can kill it (-9) like a crashing synth/DAW.
RECEIVER_SCRIPT = """
import sys, threading, rtmidi
midi_in = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=sys.argv[1])
midi_in.set_callback(lambda event, data: print(" ".join(map(str, event[0])), flush=True))
midi_in.open_virtual_port(sys.argv[2])
print("ready", flush=True)
threading.Event().wait()
"""


@pytest.fixture
def jack_server():
    """A private ``jackd -d dummy`` for one test (0.3 s to start), named in JACK_DEFAULT_SERVER."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed (Debian package jackd2; scripts/test.sh installs it)")
    with DummyJackServer() as server:
        yield server


@pytest.fixture
def receiver(jack_server):
    made = []

    def make(client: str | None = None, port: str = "in") -> Receiver:
        made.append(Receiver(client or unique("recv"), port))
        return made[-1]

    yield make
    for item in made:  # before the server stops: clients of a dead server are unsafe to close
        item.close()


class ReceiverProcess:
    """RECEIVER_SCRIPT running as a child; ``lines`` collects 'status data1 data2' strings."""

    def __init__(self, client: str, port: str, script: Path) -> None:
        self.port_name = f"{client}:{port}"
        self.process = subprocess.Popen([sys.executable, str(script), client, port], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line(10.0) == "ready"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout_s: float = 3.0) -> str:
        return self.lines.get(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL the receiver and wait until the server has removed its port.

        Stopping jackd right after a client died makes it hang ~6 s (measured), longer than
        DummyJackServer waits before it SIGKILLs jackd, which leaks a jack2 server slot.
        """
        import jack

        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        watcher = jack.Client(unique("watch"), no_start_server=True)
        try:
            wait_until(lambda: not watcher.get_ports(self.port_name), 5.0, f"{self.port_name} to go away")
        finally:
            watcher.close()


@pytest.fixture
def receiver_process(tmp_path):
    script = tmp_path / "receiver.py"
    script.write_text(RECEIVER_SCRIPT)
    started = []

    def start(client: str, port: str = "in") -> ReceiverProcess:
        started.append(ReceiverProcess(client, port, script))
        return started[-1]

    yield start
    for item in started:
        if item.process.poll() is None:
            item.kill()


def cc(channel: int, control: int, value: int) -> list[int]:
    return [0xB0 | channel, control, value]


# -- no server needed -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{"platform": "win32"}, {"api": "windows"}])
def test_virtual_port_on_windows_says_to_use_loopmidi(kwargs):
    with pytest.raises(MidiPortError, match="loopMIDI") as error:
        MidiOutput("dawemo", virtual=True, **kwargs)
    assert "virtual=False" in str(error.value)


def test_unknown_api_is_rejected():
    with pytest.raises(MidiPortError, match="unknown MIDI api 'dsound'"):
        MidiOutput("x", api="dsound")


def test_port_name_matching():
    names = ["loopMIDI Port 1", "Midi Through:Midi Through Port-0 14:0", "Synth A", "Synth B"]
    assert match_port_name("Synth A", names) == "Synth A"
    assert match_port_name("loopmidi", names) == "loopMIDI Port 1"
    assert match_port_name("nothing", names) is None
    with pytest.raises(MidiPortError, match="ambiguous.*'Synth A'.*'Synth B'"):
        match_port_name("synth", names)


def test_out_of_range_event_is_rejected_and_unopened_output_drops():
    output = MidiOutput("x", virtual=True)
    with pytest.raises(ValueError, match="out of range"):
        output.send([(0.0, 0, 16, 1, 1)])
    output.send([(0.0, 0, 0, 1, 1)])  # not entered: dropped and counted, never raises
    assert output.dropped_count == 1


# -- JACK ------------------------------------------------------------------------------------------

@needs_jack
def test_virtual_port_delivers_cc_in_order(jack_server, receiver):
    recv = receiver()
    statuses = []
    with MidiOutput("cc", virtual=True, api="auto", client_name=unique("dawemo"),
                    on_status=lambda state, error: statuses.append(state)) as output:
        assert (output.state, output.api) == ("open", "jack")
        assert output.port_name.endswith(":cc")
        connect(output.port_name, recv.name)
        now_s = time.monotonic()
        # A 2000-message burst (channels, controls and values all varying) must arrive complete.
        events = [(now_s, i % 15, i % 16, (i * 5) % 128, (i * 7) % 128) for i in range(2000)]
        output.send(events)
        got = recv.wait_for(len(events), timeout_s=5.0)
        assert got == [cc(channel, control, value) for _, _, channel, control, value in events]
        assert (output.sent_count, output.dropped_count) == (2000, 0)
    assert statuses == ["open", "closed"] and output.state == "closed"


@needs_jack
def test_timed_batch_goes_out_when_due_in_time_order(jack_server, receiver):
    recv = receiver()
    with MidiOutput("timed", virtual=True, api="jack", client_name=unique("dawemo")) as output:
        connect(output.port_name, recv.name)
        start_s = time.monotonic()
        # Given out of order; 0.30-0.33 s ahead, like a batch computed for upcoming ticks.
        output.send([(start_s + 0.33, 0, 0, 1, 4), (start_s + 0.30, 0, 0, 1, 1),
                     (start_s + 0.32, 0, 0, 1, 3), (start_s + 0.31, 0, 0, 1, 2)])
        got = recv.wait_for(4)
    assert got == [cc(0, 1, value) for value in (1, 2, 3, 4)]
    arrivals_s = [arrival_s - start_s for arrival_s, _ in recv.received]
    # Not early (JACK delivers at most one period, 21 ms, after the send) and not very late.
    assert 0.295 <= arrivals_s[0] <= 0.30 + 0.2, arrivals_s
    assert 0.325 <= arrivals_s[3] <= 0.33 + 0.2, arrivals_s


@needs_jack
def test_full_queue_drops_oldest_for_same_control(jack_server, receiver):
    recv = receiver()
    with MidiOutput("q", virtual=True, api="jack", client_name=unique("dawemo"), queue_size=4) as output:
        connect(output.port_name, recv.name)
        due_s = time.monotonic() + 0.4  # held in the queue while we fill it
        output.send([(due_s, 0, 0, 1, 10), (due_s + 0.01, 1, 0, 2, 20), (due_s + 0.02, 0, 0, 1, 11),
                     (due_s + 0.03, 1, 0, 2, 21)])
        output.send([(due_s + 0.04, 0, 0, 1, 12)])  # full: CC 1's oldest (value 10) goes
        assert (output.pending_count, output.dropped_count) == (4, 1)
        got = recv.wait_for(4)
    assert got == [cc(0, 2, 20), cc(0, 1, 11), cc(0, 2, 21), cc(0, 1, 12)]


@needs_jack
def test_existing_port_by_substring_and_other_message_forms(jack_server, receiver):
    import mido

    from dawemo.outputs.mapping import CcEvent

    recv = receiver(client=unique("synth"), port="midi_in")
    with MidiOutput("MIDI_IN", api="auto", client_name=unique("dawemo")) as output:
        assert output.port_name == recv.name and output.api == "jack"
        output.send([mido.Message("control_change", channel=9, control=74, value=100),
                     (time.monotonic(), 2, 15, 0, 127), CcEvent(time.monotonic(), 1, 3, 20, 64, 8200.0)])
        assert recv.wait_for(3) == [cc(9, 74, 100), cc(15, 0, 127), cc(3, 20, 64)]


@needs_jack
def test_missing_and_ambiguous_port_names_list_the_ports(jack_server, receiver):
    first, second = receiver(client="synth-a"), receiver(client="synth-b")
    with pytest.raises(MidiPortError) as missing:
        MidiOutput("no-such-port", api="jack").__enter__()
    message = str(missing.value)
    assert "no MIDI output port matches 'no-such-port'" in message
    assert first.name in message and second.name in message
    with pytest.raises(MidiPortError, match="ambiguous.*synth-a:in.*synth-b:in"):
        MidiOutput("synth-", api="jack").__enter__()


@needs_jack
def test_list_midi_ports(jack_server, receiver):
    recv = receiver()
    ports = list_midi_ports("auto", platform="linux")
    assert "jack" in ports["apis"] and recv.name in ports["outputs"]
    assert recv.name in ports["by_api"]["jack"]["outputs"]
    if not os.path.exists("/dev/snd/seq"):
        assert "ALSA sequencer" in ports["unavailable"]["alsa"]


@needs_jack
def test_lost_existing_port_is_reopened_and_resumes(jack_server, receiver_process):
    client = unique("synth")
    first = receiver_process(client)
    statuses = []
    with MidiOutput(client, api="jack", client_name=unique("dawemo"), retry_interval_s=0.3,
                    on_status=lambda state, error: statuses.append((state, error))) as output:
        output.send_cc(0, 20, 1)
        assert first.next_line() == "176 20 1"

        first.kill()
        wait_until(lambda: output.state == "lost", 3.0, "state 'lost'")
        assert "disappeared" in output.last_error
        # While lost only the newest value per control is kept, and the caller never blocks.
        output.send([(time.monotonic(), 0, 0, 20, value) for value in (2, 3)] + [(time.monotonic(), 1, 0, 21, 9)])

        second = receiver_process(client)  # the synth is restarted with the same port name
        wait_until(lambda: output.state == "open", 3.0, "state 'open' again")
        assert [second.next_line(), second.next_line()] == ["176 20 3", "176 21 9"]
        output.send_cc(0, 22, 7)
        assert second.next_line() == "176 22 7"
        assert output.reconnect_count == 1 and output.skipped_while_lost == 1
    assert [state for state, _ in statuses] == ["open", "lost", "open", "closed"]
    assert statuses[1][1] == f"MIDI port '{client}:in' disappeared"


@needs_jack
def test_virtual_port_survives_jack_server_restart(receiver_process):
    name = unique("dawemo-restart")
    first_server = DummyJackServer(name=name).__enter__()
    second_server = None
    try:
        with MidiOutput("cc", virtual=True, api="jack", client_name=unique("dawemo"),
                        retry_interval_s=0.3) as output:
            recv = receiver_process("recv")
            connect(output.port_name, "recv:in")
            output.send_cc(1, 7, 64)
            assert recv.next_line() == "177 7 64"

            recv.kill()
            # The server stops under us. (SIGKILL behaves the same for MidiOutput, checked by hand,
            # but a SIGKILLed jackd leaves its slot in jack2's 8-server registry until a server of
            # the same name starts, so a test failing here would leak it.)
            first_server._process.terminate()
            wait_until(lambda: output.state == "lost", 3.0, "state 'lost'")
            assert output.last_error == "JACK server has stopped"
            output.send_cc(1, 7, 65)  # accepted while lost, never raises
            time.sleep(0.5)  # a few failed re-open attempts against no server
            assert output.state == "lost"

            second_server = DummyJackServer(name=name).__enter__()
            wait_until(lambda: output.state == "open", 3.0, "state 'open' on the new server")
            recv = receiver_process("recv")
            connect(output.port_name, "recv:in")
            output.send_cc(1, 7, 66)
            assert recv.next_line() == "177 7 66"
            recv.kill()
    finally:
        if second_server is not None:
            second_server.__exit__(None, None, None)
        first_server.__exit__(None, None, None)


@needs_jack
def test_wait_for_port_starts_lost_then_connects(jack_server, receiver_process):
    client = unique("late-synth")
    with MidiOutput(client, api="jack", client_name=unique("dawemo"), wait_for_port=True,
                    retry_interval_s=0.3) as output:
        assert output.state == "lost" and "no MIDI output port matches" in output.last_error
        late = receiver_process(client)
        wait_until(lambda: output.state == "open", 3.0, "state 'open'")
        output.send_cc(4, 1, 2)
        assert late.next_line() == "180 1 2"
