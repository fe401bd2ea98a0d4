"""The embedded dev server starts even when its port is someone else's for a moment."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from retention.runtime.devserver import free_port, start_dev_server, stop

pytestmark = pytest.mark.temporal


def test_a_dev_server_whose_port_is_briefly_taken_starts_once_it_is_free(tmp_path: Path) -> None:
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    threading.Timer(3.0, holder.close).start()  # as an outgoing connection lets go of it

    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    try:
        log = (tmp_path / "temporal.log").read_text(errors="replace")
        assert "address already in use" in log  # the first try met the taken port
        assert server.poll() is None
    finally:
        stop(server)
