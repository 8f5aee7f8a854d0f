"""The runtime API's interactive session: one answer per command, however the bytes arrive."""

import socket
import threading
import time

import pytest

from ansible_collections.portico.k8s.plugins.module_utils import _runtime


def peer(path, script):
    """A UNIX socket at path that reads one line per entry of script and sends that entry's chunks."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve():
        connection, dummy = listener.accept()
        reader = connection.makefile('rb')
        for chunks in script:
            if not reader.readline():
                break
            for chunk in chunks:
                connection.sendall(chunk)
                time.sleep(0.02)  # each chunk its own read on the other side
        connection.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_prompt_split_across_reads_ends_the_answer_and_each_command_gets_its_own(tmp_path):
    path = tmp_path / 'admin.sock'
    thread = peer(path, [[b'\n> '], [b'New server registered.\n\n', b'\n', b'>', b' '], [b'\n> '],
                         [b'Server deleted.\n> ']])
    with _runtime.Session(str(path), timeout=2) as session:
        assert session.send('add server b/n1 192.0.2.1:1 check') == 'New server registered.\n\n'
        assert session.send('set server b/n1 state ready') == ''
        assert session.send('del server b/n1') == 'Server deleted.'
    thread.join(timeout=5)


def test_a_command_that_is_not_one_plain_line_is_never_sent(tmp_path):
    path = tmp_path / 'admin.sock'
    thread = peer(path, [[b'\n> ']])
    with _runtime.Session(str(path), timeout=2) as session:
        for bad in ('del server b/n1; shutdown sessions server b/n2', 'set server b/n1 weight 0\nhelp', 'é'):
            with pytest.raises(_runtime.RuntimeAPIError, match='one plain command per line'):
                session.send(bad)
    thread.join(timeout=5)


def test_a_peer_that_hangs_up_or_is_not_there_is_a_clear_error(tmp_path):
    with pytest.raises(_runtime.RuntimeAPIError, match='admin.sock'):
        with _runtime.Session(str(tmp_path / 'admin.sock'), timeout=1):
            pass
    path = tmp_path / 'gone.sock'
    thread = peer(path, [])
    with pytest.raises(_runtime.RuntimeAPIError, match='gone.sock'):
        with _runtime.Session(str(path), timeout=2):
            pass
    thread.join(timeout=5)
