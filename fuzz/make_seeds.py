#!/usr/bin/env python3
"""Writes the small seed corpora checked in under fuzz/corpus/<target>/seed-*.

Seeds are valid inputs of each kind (handshakes, frames of each opcode);
the fuzzer mutates from there. Run from anywhere: python3 fuzz/make_seeds.py
"""
import os, random, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def frame(op, payload, fin=True, mask=None, rsv=0):
    b = bytearray([(0x80 if fin else 0) | (rsv << 4) | op])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126: b.append(m | n)
    elif n <= 0xFFFF: b += bytes([m | 126]) + struct.pack(">H", n)
    else: b += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        b += mask
        payload = bytes(x ^ mask[i % 4] for i, x in enumerate(payload))
    return bytes(b + payload)

K = b"\x01\x02\x03\x04"
FRAMES = {
    "text": frame(1, "héllo €".encode()),
    "binary-126": frame(2, bytes(range(126)) + bytes(0)),
    "binary-65536": frame(2, bytes(65536)),
    "fragments": frame(1, b"frag", fin=False) + frame(9, b"ping") + frame(0, b"ment"),
    "ping": frame(9, b"are you there"),
    "pong": frame(10, b""),
    "close": frame(8, struct.pack(">H", 1000) + b"bye"),
    "masked-text": frame(1, b"masked", mask=K),
    "rsv-set": frame(1, b"x", rsv=4),
}
REQUEST = (b"GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n")

def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

for name, f in FRAMES.items():
    write("frame_decode", name, b"\x00" + f)
write("server_handshake", "upgrade", b"\x01" + REQUEST)
write("server_handshake", "upgrade-pipelined", b"\x01" + REQUEST + frame(1, b"hi", mask=K))
write("server_handshake", "reject", b"\x00" + REQUEST)
write("server_handshake", "plain-get", b"\x01GET / HTTP/1.1\r\nHost: a\r\n\r\n")
write("server_handshake", "version-8", b"\x01" + REQUEST.replace(b"Version: 13", b"Version: 8"))
write("server_handshake", "post", b"\x01" + REQUEST.replace(b"GET", b"POST"))
write("client_handshake", "valid-then-frames", bytes(32) + b"\x01" + FRAMES["text"] + FRAMES["close"])
write("client_handshake", "forbidden", bytes(32) + b"\x00HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
write("client_handshake", "bad-accept", bytes(32) + b"\x00HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
rng = random.Random(6455)
for target in ["connection_server", "connection_client", "roundtrip"]:
    for i, n in enumerate([16, 64, 256, 1024, 4096]):
        write(target, "random-%d" % i, bytes(rng.randrange(256) for _ in range(n)))
for name in ["text", "fragments", "ping", "close", "masked-text"]:
    write("connection_server", "frames-" + name, b"\x00\x01" + FRAMES[name])

# differential: byte 0 is flags (bit 0: wsmachine streams fragments), then
# what a server reads from a client after the handshake (masked frames).
Z = b"\x00\x00\x00\x00"  # a zero key leaves payloads readable for the fuzzer
def c(op, payload, fin=True, rsv=0, mask=K):
    return frame(op, payload, fin=fin, mask=mask, rsv=rsv)
def close(code, reason=b""):
    return struct.pack(">H", code) + reason
DIFF = {
    "text": c(1, "héllo €".encode()),
    "text-zero-key": c(1, "héllo €".encode(), mask=Z),
    "binary-126": c(2, bytes(range(126))),
    "binary-70000-too-big": c(2, bytes(70000))[:20],
    "fragments": c(1, b"frag", fin=False) + c(9, b"ping") + c(0, b"ment", mask=Z),
    "fragments-split-char": c(1, b"\xe2", fin=False, mask=Z) + c(0, b"\x82", fin=False, mask=Z) + c(0, b"\xac", mask=Z),
    "binary-fragments": c(2, b"\x00\xff", fin=False) + c(10, b"") + c(0, b"", fin=False) + c(0, b"\x01"),
    "ping-pong": c(9, b"are you there") + c(10, b"yes", mask=Z),
    "close": c(8, close(1000, b"bye")),
    "close-empty": c(8, b"") + c(1, b"after close"),
    "close-1014": c(8, close(1014, b"gateway"), mask=Z),
    "close-4999": c(8, close(4999), mask=Z),
    "close-invalid-code": c(8, close(1005), mask=Z),
    "close-one-byte": c(8, b"\x03", mask=Z),
    "close-bad-reason": c(8, close(1000, b"\xff"), mask=Z),
    "invalid-utf8": c(1, b"ok\xc0\xafno", mask=Z),
    "invalid-utf8-incomplete-frame": (c(1, b"ok\xed\xa0\x80 and more", mask=Z))[:10],
    "truncated-utf8-at-fin": c(1, b"x\xe2\x82", mask=Z),
    "unmasked": c(1, b"plain", mask=None),
    "rsv1": c(1, b"x", rsv=4),
    "reserved-opcode-3": c(3, b"x"),
    "reserved-opcode-b": c(11, b""),
    "ping-126": c(9, bytes(126), mask=Z),
    "ping-fragmented": c(9, b"x", fin=False, mask=Z),
    "unexpected-continuation": c(0, b"x", mask=Z),
    "expected-continuation": c(1, b"a", fin=False, mask=Z) + c(2, b"b", mask=Z),
    "length-top-bit": bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + Z,
    "length-non-minimal": bytes([0x82, 0xFE, 0, 3]) + Z + b"abc",
    "truncated": c(2, bytes(300), mask=Z)[:150],
    "many": b"".join(c(1 + i % 2, bytes([65 + i]) * i, mask=Z) for i in range(20)) + c(8, close(1001)) + b"junk",
}
for name, f in DIFF.items():
    write("differential", name, b"\x00" + f)
for name in ["fragments", "fragments-split-char", "binary-fragments", "invalid-utf8-incomplete-frame", "many"]:
    write("differential", "streaming-" + name, b"\x01" + DIFF[name])
# Structured inputs (flags bit 1): bytes that `arbitrary` turns into frame lists.
for i, n in enumerate([64, 256, 1024, 4096]):
    write("differential", "structured-random-%d" % i, bytes([2 | (i & 1)]) + bytes(rng.randrange(256) for _ in range(n)))
# deflate: two parameter sets, flags, then operations `arbitrary` decodes;
# random bytes of several sizes (the fuzzer finds the structure from there).
for i, n in enumerate([32, 128, 512, 2048, 8192]):
    write("deflate", "random-%d" % i, bytes(rng.randrange(256) for _ in range(n)))
