#!/usr/bin/env python3
"""Writes hand-made postcard seeds into ../corpus/<target>/ (corpus is not committed)."""
import os, struct
def v(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if n: out += bytes([b | 0x80])
        else: return out + bytes([b])
def s(x): return v(len(x)) + x
MAGIC = 0x41424401
ws = v(24) + v(80)
hello_attach = v(MAGIC) + v(1) + b"\0" + v(0) + v(0) + b"\x01" + s(b"work") + v(42) + b"\x01" + v(9) + v(1 << 40) + ws
hello_list = v(MAGIC) + v(1) + b"\x01" + bytes(range(16)) + bytes(range(32)) + v(1)
ups = [v(0) + v(7) + s(b"ls\r"), v(1) + v(2**64 - 1), v(2) + v(50) + v(132), v(3) + v(3), v(4)]
downs = [
    v(0) + v(5) + s(b"boom"),
    v(1) + v(1) + v(1) + s(b"s") + v(1) + s(b"bash") + v(123) + v(1700000000) + b"\x01" + v(1700000001) + v(2) + ws + v(999),
    v(2),
    v(3) + v(1) + s(b"s") + v(60001) + s(b"ab" * 32) + bytes(16) + bytes(32),
    v(4) + v(9) + s(b"s") + v(0) + v(0),
    v(5) + v(0) + s(b"abc"),
    v(6) + v(500) + s(b"scr") + b"\x00",
    v(7) + v(3), v(8) + v(1), v(9) + v(0), v(10),
]
def framed(*bodies): return b"".join(struct.pack(">I", len(b)) + b for b in bodies)
def w(target, name, data):
    d = os.path.join(os.path.dirname(__file__), "..", "corpus", target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)
for i, b in enumerate([hello_attach, hello_list] + ups + downs): w("frame_decode", f"body{i}", b)
# Sizes a hostile peer sends (issue 9): refused with BadSize, never allocated for.
huge = v(65535) + v(65535)
w("frame_decode", "resize_huge", v(2) + huge)
w("frame_decode", "resize_zero", v(2) + v(0) + v(80))
w("frame_decode", "hello_attach_huge", v(MAGIC) + v(1) + b"\0" + v(0) + v(0) + b"\x01" + s(b"work") + v(42) + b"\0" + huge)
w("frame_decode", "hello_create_huge", v(MAGIC) + v(1) + b"\0" + v(0) + v(2) + b"\x01" + s(b"w") + v(1) + s(b"sh") + v(0) + b"\0" + v(42) + b"\0" + huge)
w("frame_decode", "stream_resize_huge", framed(hello_attach, v(2) + huge))
w("frame_decode", "stream", framed(hello_attach, *ups))
w("frame_decode", "stream_down", framed(*downs))
w("frame_decode", "oversized", struct.pack(">I", 256 * 1024 + 1) + b"x")
def fr(body): return bytes([0x00 | (len(body) >> 8), len(body) & 0xff]) + body
att = downs[4]
w("client_frames", "session", fr(att) + fr(downs[5]) + b"\x83abc" + b"\xe0" + fr(downs[7]) + b"\xa5\xa5" + b"\xc0" + fr(att) + fr(v(5) + v(1) + s(b"bcdef")) + b"\xe0" + fr(downs[6]) + fr(v(6) + v(500) + s(b"een") + b"\x01") + b"\xe0" + fr(downs[9]))
w("client_frames", "garbage", fr(b"\xff\xff") + fr(att))
line = "ABIDE-CONNECT 1 60001 " + "ab" * 32 + " " + "01" * 16 + " " + "02" * 32 + " 77 10.0.0.1 work"
w("connect_line", "line", ("Welcome\nlast login: x\n" + line + "\n").encode())
w("connect_line", "nolip", line.replace("10.0.0.1", "-").encode())
