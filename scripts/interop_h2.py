#!/usr/bin/env python3
"""WebSocket over HTTP/2 (RFC 8441) with an independent peer: Python's
sans-IO `h2` library over a plain socket (h2c with prior knowledge), the
WebSocket frames built and parsed by hand here (RFC 6455 §5).

    interop_h2.py server
        Prints its port on the first line of stdout, then serves ONE
        HTTP/2 connection: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441
        §3), each extended CONNECT checked (RFC 8441 §4: :method CONNECT,
        :protocol websocket, :scheme http, :authority, :path,
        sec-websocket-version 13, no sec-websocket-key) and answered 200
        (sec-websocket-protocol "chat" when offered); on each stream client
        frames must be masked and are unmasked; text and binary messages are
        echoed unmasked, the text "binary please" is answered with the
        binary message 00 01 02 03 04; pings get pongs; a close is answered
        with the same code, then END_STREAM. Exits 0 once every stream it
        opened closed cleanly, 1 on any violation (said on stderr).

    interop_h2.py client PORT PATH
        Connects to 127.0.0.1:PORT, waits for the server's SETTINGS to
        enable extended CONNECT, opens a WebSocket on PATH, sends masked
        text, binary (300 KB: flow control both ways) and a ping, checks the
        echoes and the pong, closes with 1000 and waits for the close reply
        and END_STREAM. Exits 0 on success, 1 otherwise.
"""

import os
import socket
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def fail(msg):
    print(f"interop_h2.py: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def log(msg):
    print(f"interop_h2.py: {msg}", file=sys.stderr, flush=True)


def frame(opcode, payload, mask):
    """One final frame (RFC 6455 §5.2), masked with a random key when `mask`."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


class Frames:
    """Parses frames out of a byte stream; `masked`: what the peer must do
    (RFC 6455 §5.1: a client masks, a server does not)."""

    def __init__(self, masked):
        self.buf = bytearray()
        self.masked = masked
        self.message = None  # (opcode, bytearray) while fragmented

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            if len(self.buf) < 2:
                return out
            b0, b1 = self.buf[0], self.buf[1]
            fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
            is_masked, n = b1 & 0x80, b1 & 0x7F
            pos = 2
            if n == 126:
                if len(self.buf) < 4:
                    return out
                n = struct.unpack("!H", self.buf[2:4])[0]
                pos = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return out
                n = struct.unpack("!Q", self.buf[2:10])[0]
                pos = 10
            if rsv:
                fail(f"RSV bits set without an extension: {b0:#x}")
            if bool(is_masked) != self.masked:
                fail(f"frame masking is {bool(is_masked)}, expected {self.masked} (RFC 6455 §5.1)")
            if is_masked:
                if len(self.buf) < pos + 4:
                    return out
                key = self.buf[pos:pos + 4]
                pos += 4
            if len(self.buf) < pos + n:
                return out
            payload = bytes(self.buf[pos:pos + n])
            del self.buf[:pos + n]
            if is_masked:
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            if opcode >= 8:
                out.append((opcode, payload))
            elif opcode == OP_CONT:
                if self.message is None:
                    fail("continuation without a message")
                self.message[1].extend(payload)
                if fin:
                    out.append((self.message[0], bytes(self.message[1])))
                    self.message = None
            else:
                if self.message is not None:
                    fail("new message inside a fragmented one")
                if fin:
                    out.append((opcode, payload))
                else:
                    self.message = (opcode, bytearray(payload))


class Peer:
    """An h2 connection over a socket, with flow-controlled sends."""

    def __init__(self, sock, conn):
        self.sock = sock
        self.conn = conn
        self.outbox = {}  # stream id -> [bytearray, end_stream]

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send(self, stream_id, data, end=False):
        box = self.outbox.setdefault(stream_id, [bytearray(), False])
        box[0] += data
        box[1] = box[1] or end
        self.pump()

    def pump(self):
        """Sends what the flow-control windows allow (RFC 9113 §5.2)."""
        for stream_id, box in list(self.outbox.items()):
            while box[0]:
                window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = bytes(box[0][:window])
                del box[0][:window]
                self.conn.send_data(stream_id, chunk)
            if not box[0] and box[1]:
                self.conn.end_stream(stream_id)
                del self.outbox[stream_id]
        self.flush()

    def events(self):
        data = self.sock.recv(65536)
        if not data:
            return None
        events = self.conn.receive_data(data)
        self.flush()
        return events


def headers_dict(headers):
    out = {}
    for name, value in headers:
        name = name.decode() if isinstance(name, bytes) else name
        value = value.decode() if isinstance(value, bytes) else value
        if name in out:
            fail(f"header {name} twice")
        out[name] = value
    return out


def server():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(listener.getsockname()[1], flush=True)
    sock, _ = listener.accept()
    sock.settimeout(30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    # RFC 8441 §3: extended CONNECT enabled in the server's first SETTINGS.
    conn.local_settings = h2.settings.Settings(
        client=False,
        initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
        },
    )
    conn.initiate_connection()
    peer = Peer(sock, conn)
    peer.flush()
    streams = {}  # stream id -> Frames
    opened = closed = 0
    while True:
        events = peer.events()
        if events is None:
            break
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                h = headers_dict(ev.headers)
                checks = [
                    (h.get(":method") == "CONNECT", ":method CONNECT"),
                    (h.get(":protocol") == "websocket", ":protocol websocket"),
                    (h.get(":scheme") == "http", ":scheme http"),
                    (bool(h.get(":authority")), ":authority"),
                    (h.get(":path", "").startswith("/"), ":path"),
                    (h.get("sec-websocket-version") == "13", "sec-websocket-version: 13"),
                    ("sec-websocket-key" not in h, "no sec-websocket-key (RFC 8441 §5)"),
                    ("upgrade" not in h and "connection" not in h, "no Upgrade/Connection (RFC 9113 §8.2.2)"),
                ]
                for ok, what in checks:
                    if not ok:
                        conn.send_headers(ev.stream_id, [(":status", "400")], end_stream=True)
                        peer.flush()
                        fail(f"extended CONNECT lacks {what}: {h}")
                answer = [(":status", "200")]
                if "chat" in [p.strip() for p in h.get("sec-websocket-protocol", "").split(",")]:
                    answer.append(("sec-websocket-protocol", "chat"))
                conn.send_headers(ev.stream_id, answer)
                peer.flush()
                streams[ev.stream_id] = Frames(masked=True)
                opened += 1
                log(f"stream {ev.stream_id}: CONNECT {h[':path']} accepted")
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                frames = streams.get(ev.stream_id)
                if frames is None:
                    fail(f"DATA on unknown stream {ev.stream_id}")
                for opcode, payload in frames.feed(ev.data):
                    if opcode == OP_TEXT:
                        text = payload.decode("utf-8")
                        if text == "binary please":
                            peer.send(ev.stream_id, frame(OP_BINARY, bytes(range(5)), False))
                        else:
                            peer.send(ev.stream_id, frame(OP_TEXT, payload, False))
                    elif opcode == OP_BINARY:
                        peer.send(ev.stream_id, frame(OP_BINARY, payload, False))
                    elif opcode == OP_PING:
                        peer.send(ev.stream_id, frame(OP_PONG, payload, False))
                    elif opcode == OP_CLOSE:
                        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                        log(f"stream {ev.stream_id}: close {code}")
                        if code != 1000:
                            fail(f"close code {code}, expected 1000")
                        # RFC 6455 §5.5.1: answer with the same code; then end the stream.
                        peer.send(ev.stream_id, frame(OP_CLOSE, payload[:2], False), end=True)
                        closed += 1
                peer.flush()
            elif isinstance(ev, h2.events.WindowUpdated):
                peer.pump()
            elif isinstance(ev, h2.events.StreamReset):
                fail(f"stream {ev.stream_id} reset by the client: error code {ev.error_code}")
            elif isinstance(ev, h2.events.ConnectionTerminated):
                log(f"GOAWAY {ev.error_code}")
    if opened == 0 or closed != opened:
        fail(f"{opened} WebSockets opened, {closed} closed with 1000")
    log(f"server OK: {opened} WebSocket(s) over HTTP/2, each closed cleanly")


def client(port, path):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    peer = Peer(sock, conn)
    peer.flush()
    # RFC 8441 §3: wait for the server's SETTINGS to enable extended CONNECT.
    while True:
        events = peer.events()
        if events is None:
            fail("the server closed before its SETTINGS")
        if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
            break
    if conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) != 1:
        fail("the server's SETTINGS do not enable extended CONNECT")
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", path),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "chat"),
    ])
    peer.flush()
    frames = Frames(masked=False)
    big = bytes(i % 251 for i in range(300_000))
    script = [
        (OP_TEXT, "hello from python h2".encode()),
        (OP_TEXT, "é€😀".encode() * 100),
        (OP_BINARY, big),
        (OP_PING, b"ping?"),
    ]
    expected = [(OP_PONG if op == OP_PING else op, p) for op, p in script]
    got = []
    status = None
    ended = False
    close_reply = None
    while not ended:
        events = peer.events()
        if events is None:
            fail("the connection ended before the stream did")
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                h = headers_dict(ev.headers)
                status = h.get(":status")
                if status != "200":
                    fail(f"extended CONNECT answered {status}")
                if h.get("sec-websocket-protocol") != "chat":
                    fail(f"subprotocol {h.get('sec-websocket-protocol')!r}, expected chat")
                if "sec-websocket-accept" in h:
                    fail("sec-websocket-accept in an RFC 8441 answer")
                for op, payload in script:
                    peer.send(stream_id, frame(op, payload, True))
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                for op, payload in frames.feed(ev.data):
                    if op == OP_CLOSE:
                        close_reply = payload
                    else:
                        got.append((op, payload))
                        if len(got) == len(expected):
                            if got != expected:
                                fail(f"echoes differ: {[(o, len(p)) for o, p in got]}")
                            peer.send(stream_id, frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye", True), end=True)
                peer.flush()
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
            elif isinstance(ev, h2.events.WindowUpdated):
                peer.pump()
            elif isinstance(ev, h2.events.StreamReset):
                fail(f"stream reset by the server: error code {ev.error_code}")
    if close_reply is None or struct.unpack("!H", close_reply[:2])[0] != 1000:
        fail(f"close reply {close_reply!r}, expected code 1000")
    conn.close_connection()
    peer.flush()
    sock.close()
    log("client OK: text, binary (300 KB), ping, close 1000 over HTTP/2")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "server":
        server()
    elif len(sys.argv) == 4 and sys.argv[1] == "client":
        client(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
