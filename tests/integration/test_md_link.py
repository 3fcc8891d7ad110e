"""md_gateway's WebSocket link (``ws.Link``) against a real websockets server: what the protocol
layer must get right beyond the happy path. A fragmented message arrives as one frame; the server's
control PING is answered; a close frame, a message above the hard limit and a failed handshake each
end the link with a reason; sending on a closed link raises."""
from __future__ import annotations

import json
import queue
import threading
from typing import Callable, Iterator

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from libs.common.clock import SystemClock
from services.md_gateway.shards import initial_subscribe
from services.md_gateway.ws import Link, LinkClosed

Script = Callable[[ServerConnection, dict], None]


@pytest.fixture()
def server() -> Iterator[Callable[[Script], str]]:
    """Start a websockets server that reads the subscribe, then runs ``script(conn, subscribe)``."""
    started: list[Server] = []

    def start(script: Script) -> str:
        def handler(conn: ServerConnection) -> None:
            script(conn, json.loads(conn.recv()))

        srv = serve(handler, "127.0.0.1", 0, compression=None, max_size=None)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return f"ws://127.0.0.1:{srv.socket.getsockname()[1]}/ws/market"

    yield start
    for srv in started:
        srv.shutdown()


def events(q: "queue.SimpleQueue[tuple]", until: str, timeout_s: float = 5.0) -> list[tuple]:
    """Queued link events up to and including the first of kind ``until``."""
    out = []
    while True:
        item = q.get(timeout=timeout_s)
        out.append(item)
        if item[0] == until:
            return out


def link(url: str, hard_limit: int = 1 << 20) -> tuple[Link, "queue.SimpleQueue[tuple]"]:
    q: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
    lk = Link(3, 7, url, ["tok-a", "tok-b"], q, SystemClock(), 5.0, hard_limit=hard_limit)
    lk.start()
    return lk, q


def test_subscribe_then_fragmented_and_whole_messages_arrive_in_order(server: Callable[[Script], str]) -> None:
    seen: list[dict] = []

    def script(conn: ServerConnection, sub: dict) -> None:
        seen.append(sub)
        conn.send(["[{\"a\":", "1}", "]"])  # one text message in three fragments
        conn.send('{"b":2}')
        conn.send(b'{"c":3}')  # a binary message is passed on as well

    lk, q = link(server(script))
    got = events(q, "frame") + [q.get(timeout=5), q.get(timeout=5)]
    assert got[0][:3] == ("open", 3, 7)
    assert [g[3] for g in got[1:]] == [b'[{"a":1}]', b'{"b":2}', b'{"c":3}']
    assert all(g[0] == "frame" and g[1:3] == (3, 7) and g[4] > 0 and g[5] > 0 for g in got[1:])
    assert seen == [json.loads(initial_subscribe(["tok-a", "tok-b"]))]
    lk.abort()
    assert events(q, "closed")[-1][0] == "closed"


def test_the_servers_control_ping_is_answered(server: Callable[[Script], str]) -> None:
    answered: list[bool] = []

    def script(conn: ServerConnection, sub: dict) -> None:
        answered.append(conn.ping().wait(5))
        conn.send("after-ping")

    lk, q = link(server(script))
    assert events(q, "frame")[-1][3] == b"after-ping"
    assert answered == [True]
    lk.abort()


def test_a_close_frame_ends_the_link_with_its_code_and_send_then_raises(server: Callable[[Script], str]) -> None:
    lk, q = link(server(lambda conn, sub: conn.close(1001, "going away")))
    closed = events(q, "closed")[-1]
    assert closed[:3] == ("closed", 3, 7) and "code=1001" in closed[3]
    with pytest.raises(LinkClosed):
        lk.send("PING")


def test_a_message_above_the_hard_limit_ends_the_link(server: Callable[[Script], str]) -> None:
    lk, q = link(server(lambda conn, sub: conn.send("x" * 5000)), hard_limit=4096)
    closed = events(q, "closed")[-1]
    assert "PayloadTooBig" in closed[3], closed


def test_a_refused_handshake_is_reported_as_closed() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as srv:  # answers HTTP 404 instead of 101
        port = srv.getsockname()[1]

        def answer() -> None:
            conn, _ = srv.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            conn.close()

        threading.Thread(target=answer, daemon=True).start()
        _, q = link(f"ws://127.0.0.1:{port}/ws/market")
        got = events(q, "closed")
    assert [g[0] for g in got] == ["closed"] and "404" in got[0][3]


def test_wss_verifies_the_certificate_and_reads_while_the_main_thread_sends(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``wss://`` (live mode): TLS with the default, verifying context; the reader thread receives
    while the caller's thread sends PINGs on the same TLS socket."""
    import ssl

    import trustme

    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))

    def handler(conn: ServerConnection) -> None:
        conn.recv()  # the subscribe
        for i in range(200):
            conn.send(f'{{"n":{i}}}')
        for msg in conn:
            if msg == "PING":
                conn.send("PONG")

    srv = serve(handler, "127.0.0.1", 0, ssl=ctx, compression=None)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        lk, q = link(f"wss://127.0.0.1:{srv.socket.getsockname()[1]}/ws/market")
        assert q.get(timeout=5)[0] == "open"
        for _ in range(20):
            lk.send("PING")
        got = [q.get(timeout=5)[3] for _ in range(220)]
        assert [g for g in got if g != b"PONG"] == [f'{{"n":{i}}}'.encode() for i in range(200)]
        assert got.count(b"PONG") == 20
        lk.abort()
    finally:
        srv.shutdown()


def test_wss_refuses_a_certificate_it_cannot_verify(tmp_path) -> None:
    import ssl

    import trustme

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)  # a CA nobody trusts
    srv = serve(lambda conn: conn.recv(), "127.0.0.1", 0, ssl=ctx)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _, q = link(f"wss://127.0.0.1:{srv.socket.getsockname()[1]}/ws/market")
        closed = events(q, "closed")
        assert [c[0] for c in closed] == ["closed"] and "CERTIFICATE_VERIFY_FAILED" in closed[0][3]
    finally:
        srv.shutdown()
