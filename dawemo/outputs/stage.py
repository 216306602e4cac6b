"""Stage controls shared by every output: hold, release with a glide, panic (blackout), per-lane mute.

``StageControl`` only records what the performer asked for and when; each mapper
(``LaneMapper.stage``) turns that into its lanes' values on its own control ticks, so MIDI, OSC
and DMX lanes freeze, glide and black out together. Thread-safe: the app's or the CLI's thread
sets it, the engine's control thread reads it (plain attribute swaps under one small lock).

Per lane, on each tick (``value`` below; ``music`` is the lane's mapped value following the music):

* muted, or panic: the lane's safe value (``safe`` in the preset, default its lowest output);
* hold: the value the lane had when hold (or the latest change) began;
* following: ``music``, reached over ``glide_s`` by a straight line from the value the lane had
  when it was released (from hold or panic) or unmuted.
"""

from __future__ import annotations

import math
import threading

FOLLOW = "follow"
HOLD = "hold"
PANIC = "panic"
MODES = (FOLLOW, HOLD, PANIC)
DEFAULT_GLIDE_S = 2.0  # release back to the music over two seconds: a fade, not a jump
MAX_GLIDE_S = 60.0


class StageControl:
    """What the performer asked for: mode (follow, hold, panic), muted lanes (by name), glide time.

    Args:
        glide_s: seconds a lane takes to glide back to the music after release or unmute (0: jump).
    """

    def __init__(self, glide_s: float = DEFAULT_GLIDE_S) -> None:
        if not (math.isfinite(glide_s) and 0.0 <= glide_s <= MAX_GLIDE_S):
            raise ValueError(f"glide_s must be 0-{MAX_GLIDE_S:g} seconds, got {glide_s}")
        self.glide_s = float(glide_s)
        self._lock = threading.Lock()
        self._mode = FOLLOW
        self._version = 0  # counts mode changes: each lane snapshots its value when it sees a new one
        self._muted: frozenset[str] = frozenset()

    # -- performer side -------------------------------------------------------------------------

    def hold(self) -> None:
        """Freeze every lane at its current value."""
        self._set_mode(HOLD)

    def release(self) -> None:
        """Back to following the music (from hold or panic), gliding over ``glide_s``."""
        self._set_mode(FOLLOW)

    def panic(self) -> None:
        """Every lane to its safe value (blackout) until ``release``."""
        self._set_mode(PANIC)

    def set_muted(self, lane_name: str, muted: bool = True) -> None:
        """Mute (safe value) or unmute (glide back to the music) every lane named ``lane_name``."""
        with self._lock:
            self._muted = self._muted | {lane_name} if muted else self._muted - {lane_name}

    def toggle_muted(self, lane_name: str) -> bool:
        """Flip one lane's mute; returns whether it is now muted."""
        with self._lock:
            muted = lane_name not in self._muted
            self._muted = self._muted | {lane_name} if muted else self._muted - {lane_name}
        return muted

    def _set_mode(self, mode: str) -> None:
        with self._lock:
            if mode != self._mode:
                self._mode = mode
                self._version += 1

    # -- mapper side ----------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def muted(self) -> frozenset[str]:
        return self._muted

    def snapshot(self) -> tuple[str, int, frozenset[str]]:
        """(mode, version, muted names), consistent with each other."""
        with self._lock:
            return self._mode, self._version, self._muted

    def describe(self) -> str:
        """One short line for a live view: ``HOLD``, ``BLACKOUT``, ``muted: Strobe``; "" when following."""
        mode, _, muted = self.snapshot()
        words = {HOLD: ["HOLD"], PANIC: ["BLACKOUT"]}.get(mode, [])
        if muted:
            words.append("muted: " + ", ".join(sorted(muted)))
        return " | ".join(words)


class LaneStage:
    """One mapper's per-lane stage state: what each lane last put out and where its glide starts."""

    __slots__ = ("seen", "start_value", "start_s", "last_value")

    def __init__(self, lanes: int) -> None:
        self.seen: list[tuple[int, bool] | None] = [None] * lanes
        self.start_value: list[float | None] = [None] * lanes
        self.start_s = [-math.inf] * lanes
        self.last_value: list[float | None] = [None] * lanes

    def value(self, control: StageControl, snapshot: tuple[str, int, frozenset[str]], index: int, name: str,
              music: float | None, safe: float, now_s: float) -> float | None:
        """Lane ``index``'s value at ``now_s`` (None: nothing to send yet, the lane has no music value)."""
        mode, version, muted_names = snapshot
        muted = name in muted_names
        key = (version, muted)
        if self.seen[index] != key:  # a change for this lane: its glide or its hold starts here
            first = self.seen[index] is None
            self.seen[index] = key
            self.start_value[index] = music if first else self.last_value[index]
            self.start_s[index] = -math.inf if first else now_s
        if muted or mode == PANIC:
            value = safe
        elif mode == HOLD:
            value = self.start_value[index] if self.start_value[index] is not None else music
        elif music is None:
            value = None
        else:
            start = self.start_value[index]
            fraction = 1.0 if control.glide_s <= 0 else (now_s - self.start_s[index]) / control.glide_s
            value = music if start is None or fraction >= 1.0 else start + (music - start) * max(0.0, fraction)
        if value is not None:
            self.last_value[index] = value
        return value

    def quiet(self, control: StageControl, now_s: float) -> bool:
        """True when no lane holds, glides or is muted: the mapper may skip idle ticks."""
        mode, version, muted = control.snapshot()
        if mode != FOLLOW or muted:
            return False
        return all(seen is None or seen[0] == version for seen in self.seen) and all(
            now_s >= start + control.glide_s for start in self.start_s)
