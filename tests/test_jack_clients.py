"""libjack's message handlers: routed to logging once per process, never replaced under a live call.

JACK-Client keeps one handler object per kind and frees the previous one when a new one is set; a
libjack call printing through the old one from another thread then jumps into freed memory (an
abort seen in the machine-fault tests while a rejoin and a server probe ran together).
"""

from __future__ import annotations

import logging
import uuid

import pytest

from dawemo.jack_clients import route_libjack_messages


@pytest.fixture()
def jack():
    try:
        import jack
    except (ImportError, OSError) as error:
        pytest.skip(f"needs libjack and JACK-Client: {error}")
    return jack


def test_handlers_are_set_once_and_messages_reach_logging(jack, caplog):
    from dawemo.inputs.sources import AudioSourceError, open_jack_client

    route_libjack_messages()
    handlers = dict(jack._keepalive)  # JACK-Client's references to the handlers libjack calls
    assert len(handlers) == 2
    route_libjack_messages()
    with pytest.raises(AudioSourceError, match="no JACK server named"):  # opening calls it again
        open_jack_client("dawemo-test", f"dawemo-absent-{uuid.uuid4().hex[:6]}")
    assert all(jack._keepalive[setter] is handler for setter, handler in handlers.items())

    with caplog.at_level(logging.DEBUG, logger="dawemo.libjack"):
        with pytest.raises(jack.JackOpenError):
            jack.Client("dawemo-test", no_start_server=True, servername=f"dawemo-absent-{uuid.uuid4().hex[:6]}")
    said = [r.getMessage() for r in caplog.records if r.name == "dawemo.libjack"]
    assert any("connect" in line.lower() for line in said), said
