"""Real receivers for the show-control tests: python-osc's OSC server, sacn's sACN receiver,
stupidArtnet's Art-Net receiver, and OLA's olad (Art-Net and E1.31 plugins) where it runs.
All listen on 127.0.0.1 (olad: its own ports) on free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class OscReceiver:
    """python-osc's UDP server on 127.0.0.1; ``messages`` is [(arrival_s, address, args, packet_no)]:
    messages of one bundle share ``packet_no``."""

    def __init__(self, port: int | None = None) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.messages: list[tuple[float, str, tuple, int]] = []
        self.packets = 0
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._handle)
        receiver = self

        class Server(BlockingOSCUDPServer):
            def process_request(self, request, client_address):  # one datagram: one packet number
                receiver.packets += 1
                super().process_request(request, client_address)

        self.server = Server(("127.0.0.1", port or 0), dispatcher)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def _handle(self, address: str, *args) -> None:
        self.messages.append((time.monotonic(), address, args, self.packets))

    def __enter__(self) -> "OscReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2)

    def values(self, address: str) -> list[float]:
        return [args[0] for _, a, args, _ in self.messages if a == address]

    def last(self, address: str):
        values = self.values(address)
        return values[-1] if values else None


class SacnReceiver:
    """sACN frames on 127.0.0.1:port, parsed by the sacn package (``DataPacket.make_data_packet``);
    ``frames`` is [(arrival_s, universe, dmx tuple)]. (sacn's own receiver calls back only when the
    data changes, which would hide the frame rate.)"""

    def __init__(self, universe: int, port: int | None = None) -> None:
        self.universe = universe
        self.frames: list[tuple[float, int, tuple]] = []
        self.sequences: list[int] = []
        self.terminated = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from sacn.messages.data_packet import DataPacket

        while not self._stop.is_set():
            try:
                data = self.sock.recv(1024)
            except socket.timeout:
                continue
            arrival = time.monotonic()
            packet = DataPacket.make_data_packet(data)
            if packet.universe == self.universe:
                if packet.option_StreamTerminated:  # the sender's goodbye: not a frame of the stream
                    self.terminated = True
                    continue
                self.sequences.append(packet.sequence)
                self.frames.append((arrival, packet.universe, packet.dmxData))

    def __enter__(self) -> "SacnReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def last(self) -> tuple | None:
        return self.frames[-1][2] if self.frames else None


class ArtnetReceiver:
    """stupidArtnet's Art-Net server on a free port; ``frames`` is [(arrival_s, dmx list)].

    Its thread blocks in recvfrom until the next packet, so ``__exit__`` sends it one to let go.
    """

    def __init__(self, universe: int, port: int | None = None) -> None:
        from stupidArtnet import StupidArtnetServer

        self.port = port or free_udp_port()
        self.frames: list[tuple[float, list]] = []
        self.server = StupidArtnetServer(port=self.port)
        self.server.listeners = []  # a class attribute there: two servers would share their listeners
        self.server.register_listener(universe=universe, callback_function=self._frame)
        wait_until(lambda: getattr(self.server, "socket_server", None) is not None, 5, "the Art-Net server")
        time.sleep(0.05)  # bound right after socket_server is set

    def _frame(self, data) -> None:
        self.frames.append((time.monotonic(), list(data)))

    def __enter__(self) -> "ArtnetReceiver":
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"bye", ("127.0.0.1", self.port))
        time.sleep(0.02)
        self.server.socket_server.close()

    def last(self) -> list | None:
        return self.frames[-1][1] if self.frames else None


def frame_value(frame, channel: int, bits: int = 8) -> int:
    """A channel's value in a DMX frame (channels count from 1; 16-bit: coarse, fine)."""
    if bits == 8:
        return frame[channel - 1]
    return frame[channel - 1] * 256 + frame[channel]


def olad_available() -> bool:
    import os

    return shutil.which("olad") is not None and (os.geteuid() != 0 or shutil.which("setpriv") is not None)


class Olad:
    """OLA's olad with its Art-Net and E1.31 plugins on loopback, run as user nobody (olad refuses
    root). ``dmx(universe)`` reads a universe's current 512 values over olad's HTTP API."""

    def __init__(self, http_port: int, rpc_port: int) -> None:
        self.http_port = http_port
        self.rpc_port = rpc_port
        self.config = Path(tempfile.mkdtemp(prefix="dawemo-olad-"))
        self.process = None

    def __enter__(self) -> "Olad":
        import os

        plugins = ["artnet", "e131"]
        all_plugins = ["artnet", "dummy", "e131", "espnet", "ftdidmx", "gpio", "karate", "kinet", "milinst", "opendmx",
                       "openpixelcontrol", "osc", "pathport", "renard", "sandnet", "shownet", "spi", "stageprofi",
                       "uartdmx", "usbdmx", "usbserial", "dmx4linux", "nanoleaf"]
        for name in all_plugins:
            lines = [f"enabled = {'true' if name in plugins else 'false'}"]
            if name in plugins:
                lines.append("ip = 127.0.0.1")
            (self.config / f"ola-{name}.conf").write_text("\n".join(lines) + "\n")
        as_nobody = []
        if os.geteuid() == 0:  # olad refuses to run as root
            as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            for path in [self.config, *self.config.iterdir()]:
                os.chown(path, 65534, 65534)
        self.process = subprocess.Popen(
            [*as_nobody, "olad", "-c", str(self.config),
             "-p", str(self.http_port), "-r", str(self.rpc_port), "-l", "2", "--no-register-with-dns-sd"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.config, ignore_errors=True)

    def get(self, path: str) -> bytes:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as reply:
            return reply.read()

    def post(self, path: str, data: dict) -> bytes:
        import urllib.parse
        import urllib.request

        body = urllib.parse.urlencode(data).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", body, timeout=2) as reply:
            return reply.read()

    def dmx(self, universe: int) -> list[int]:
        import json

        return json.loads(self.get(f"/get_dmx?u={universe}"))["dmx"]


def udp_sockets(pid: int) -> list[tuple[str, str]]:
    """(local "ip:port", remote "ip:port") of every IPv4 UDP socket process ``pid`` holds (Linux /proc).
    A remote of 0.0.0.0:0 is a socket that takes datagrams from anyone: one that listens."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])

    def address(text: str) -> str:
        ip, port = text.split(":")
        return f"{'.'.join(str(int(ip[i:i + 2], 16)) for i in (6, 4, 2, 0))}:{int(port, 16)}"

    out = []
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            out.append((address(fields[1]), address(fields[2])))
    return out
