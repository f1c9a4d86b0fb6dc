#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from inputs of the unit tests of
pingora-http-codec, pingora-http, pingora-tls and pingora-cache. Run from anywhere; rewrites the seed files
(named seed-*), leaves other corpus files alone."""
import hashlib
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

REQUESTS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Case: Yes\r\n\r\nNEXT",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET / http/1.1\r\nHost: a\r\n\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET http://example.com/x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
]

RESPONSES = [
    b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=3\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
]

# h1_body_decoder: mode byte (0 chunked, 1 until close, 2 length, 3 encoder round trip;
# 0x80 = EOF), chunk-head limit byte, trailer limit u16, [length u16], split seed u16, body.
def body(mode, data, length=None, head_limit=255, trailer_limit=0x4000, seed=7):
    out = bytes([mode, head_limit]) + struct.pack(">H", trailer_limit)
    if length is not None:
        out += struct.pack(">H", length)
    return out + struct.pack(">H", seed) + data

CHUNKED = [
    b"5\r\nhello\r\n6;ext=1;x\r\n world\r\n0\r\n\r\nNEXT",
    b"00A\r\n0123456789\r\n000\r\n\r\n",
    b"3 ;a=b\r\nabc\r\n0\t\r\n\r\n",
    b"3\r\nabc\r\n0\r\nX-Sum: 1\r\ngrpc-status: 0\r\n\r\n",
    b"3\r\nabcd\r\n0\r\n\r\n",
    b"3;ext\nabc\r\n0\r\n\r\n",
    b"ffffffffffffffff\r\nab",
    b"10000000000000000\r\n",
    b"5\r\nhel",
]
BODIES = [body(0, c) for c in CHUNKED] + [body(0x80, c) for c in CHUNKED[-2:]]
BODIES += [
    body(1, b"everything until eof"),
    body(0x81, b"everything until eof"),
    body(2, b"0123456789", length=10),
    body(0x82, b"short", length=10),
    body(2, b"abcGET", length=3),
    b"\x03\x00" + bytes([5]) + b"hello" + bytes([6]) + b" world",
    b"\x03\x01" + bytes([3]) + b"abc" + bytes([0]) + bytes([2]) + b"de",
]

# h1_framing: method byte, status u16 (100 + n % 900), framing byte [length u16], then
# (name, value) picks: a byte < 16 / < 12 picks from the lists in src/lib.rs, else a
# length-prefixed literal.
def lit(b):
    return bytes([200, len(b)]) + b

FRAMING = [
    b"\x00\x00\x64\x01" + b"\x03\x04",  # GET 200 chunked, Transfer-Encoding: chunked
    b"\x01\x00\x64\x03\x00\x05" + b"\x01\x02",  # HEAD 200 length 5
    b"\x03\x00\x64\x02",  # CONNECT 200
    b"\x02\x00\x68\x00" + b"\x02\x03" + b"\x04\x05",  # 204, CL 5, 5 and TE gzip, chunked
    b"\x00\x00\x00\x03\x00\x07" + lit(b"content-length") + lit(b" 7 , 7,7 "),
    b"\x00\x00\x00\x00" + lit(b"keep-alive") + lit(b"max=100, Timeout = 7"),
    b"\x00\x00\x00\x00" + b"\x05\x07" + lit(b"transfer-encoding") + lit(b"chunked, gzip"),
]

# header_map_ops: selector byte (even: request, odd: response), then operations
# (op byte % 5: 0-1 append, 2 insert, 3 remove, 4 other), names and values as above.
HEADER_OPS = [
    b"\x00\x00\x01" + b"\x00\x00\x00" + b"\x00\x0d\x09" + b"\x02\x00\x00",
    b"\x00\x01\x00" + b"\x00\x00\x00" + b"\x00\x01\x02" + b"\x03\x01",
    b"\x00\x02\x03" + b"\x00\x00\x00" + b"\x04\x00" + bytes([4]) + b"/new" + b"\x00\x09\x09",
    b"\x00\x00\x00" + b"\x00\x00\x00" + b"\x00" + lit(b"X-Case") + lit(b"v") + b"\x02" + lit(b"x-case") + lit(b"w"),
    b"\x01\x00\x64" + b"\x00\x01\x02" + b"\x00\x03\x04" + b"\x04\x00\x04Fine",
    b"\x01\x00\xc8" + b"\x00\x0e\x09" + b"\x00\x0e\x09" + b"\x03\x0e",
]

# tls_client_hello: even selector: raw bytes; odd: a built hello (record size byte, SNI,
# ALPN names).
def hello(sni, alpn):
    exts = b""
    if sni is not None:
        entry = b"\x00" + struct.pack(">H", len(sni)) + sni
        lst = struct.pack(">H", len(entry)) + entry
        exts += struct.pack(">HH", 0, len(lst)) + lst
    if alpn:
        names = b"".join(bytes([len(n)]) + n for n in alpn)
        lst = struct.pack(">H", len(names)) + names
        exts += struct.pack(">HH", 16, len(lst)) + lst
    b = b"\x03\x03" + b"\x07" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    b += struct.pack(">H", len(exts)) + exts
    msg = b"\x01" + struct.pack(">I", len(b))[1:] + b
    out = b""
    for i in range(0, len(msg), 100):
        part = msg[i:i + 100]
        out += b"\x16\x03\x01" + struct.pack(">H", len(part)) + part
    return out

HELLOS = [
    b"\x00" + hello(b"a.example", [b"h2", b"http/1.1"]),
    b"\x00" + hello(None, []),
    b"\x00GET / HTTP/1.1\r\n",
    b"\x01\x09" + bytes([9]) + b"a.example" + bytes([2]) + b"h2" + bytes([8]) + b"http/1.1",
    b"\x01\x00" + bytes([0]),
]

# h2_heads: mode byte (even: request, bit 1 = TLS; odd: response), method, target choice
# (5-7: literal), then (name, value) picks.
H2 = [
    b"\x00\x00\x00" + b"\x00\x00" + b"\x05\x06" + b"\x09\x09" + b"\x0a\x09",
    b"\x02\x01\x03" + b"\x08\x08" + b"\x05\x07" + b"\x06\x07",
    b"\x00\x02\x02" + b"\x00\x00",
    b"\x00\x00\x05" + bytes([4]) + b"/a/b" + b"\x0d\x00",
    b"\x01\x00\x64" + b"\x05\x06" + b"\x03\x04" + b"\x08\x08" + b"\x0e\x09",
]

# cache_control: field lines separated by "\n" (from pingora-cache/src/cache_control/tests.rs).
CACHE_CONTROL = [
    b"public, max-age=60\nprivate=\"Set-Cookie, X-Token\"",
    b"Public, MAX-AGE=60",
    b"public; max-age=5,,, ,s-maxage=1",
    b"private=\"a, b\", max-age=1",
    b"x=\"q\\\"uote\\\\\"",
    b"x=\"unterminated, y",
    b"max-age=60, max-age=60",
    b"max-age=99999999999999999999999",
    b"max-age=+5\nmax-age=-1",
    b"no-cache=\"x-a\"\nno-cache",
    b"stale-while-revalidate=5, stale-if-error=7, must-revalidate",
    b"max-age=0, min-fresh=5, max-stale, only-if-cached, no-store",
    b"must-understand, no-store\n=5, y",
    b"a=1;p, b=?0, c=\"x\", d=:aGk=:, e=(1 2 \"x\");q=1, f=*tok/en:x",
    b"a=-1.5, b=123456789012345, c=()",
]

# cache_range: body length (u16), most ranges (byte), then the Range value
# (from pingora-cache/src/range/tests.rs).
def rng(length, max_ranges, value):
    return struct.pack(">H", length) + bytes([max_ranges]) + value

CACHE_RANGE = [
    rng(10, 2, b"bytes=0-9"),
    rng(10, 2, b"bytes=5-"),
    rng(10, 2, b"bytes=-3"),
    rng(10, 2, b"BYTES = 1-2,"),
    rng(10, 2, b"bytes=0-1,4-5, -2"),
    rng(10, 0, b"bytes=0-0,1-1,2-2,3-3"),
    rng(10, 2, b"bytes=10-20"),
    rng(0, 2, b"bytes=0-"),
    rng(10, 2, b"bytes=99999999999999999999999-"),
    rng(10, 2, b"bytes=5-1"),
    rng(10, 2, b"items=0-1"),
]

# cache_vary: respelling choices (byte), then lines "V <Vary value>" and "H <name>:<value>"
# (from pingora-cache/src/variance.rs).
CACHE_VARY = [
    b"\x00V Accept-Encoding\nH accept-encoding:GZIP , br",
    b"\x03V accept-encoding, ACCEPT-ENCODING\nV Origin\nH origin:a\nH accept-encoding:gzip,,br",
    b"\x01V Accept-Encoding\nH accept-encoding:",
    b"\x02V Accept, *\nH accept:text/html",
    b"\x00V User-Agent\nH user-agent:A (X, Y)\nH cookie:a=1",
    b"\x00V a b, c\nH c:1\nH c:2",
]

# cache_meta: a mode byte (bit 0: the header part is an HTTP/1 head the check compresses),
# the length of the internal part (byte), the internal part (version 1), then the header part
# (from pingora-cache/src/meta/codec.rs).
def meta_internal(flags=0, extra=b""):
    def t(secs, nanos=0):
        return struct.pack(">qI", secs, nanos)
    body = bytes([1, flags]) + t(1000060) + t(1000000) + t(1000010, 5) + struct.pack(">II", 7, 8)
    return body + extra

def meta(internal, header, mode=1):
    return bytes([mode, len(internal)]) + internal + header

CACHE_META = [
    meta(meta_internal(), b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"v\"\r\n\r\n"),
    meta(meta_internal(3, b"\x09" * 16 + struct.pack(">qI", -2, 500000000)),
         b"HTTP/1.0 599 Odd Thing\r\nx-lower: a\r\nX-Lower: b\r\n\r\n"),
    meta(meta_internal(), b"HTTP/1.1 299 \r\n\r\n"),
    meta(meta_internal()[:20], b"HTTP/1.1 200 OK\r\n"),
    meta(meta_internal(), b"HTTP/2 404\r\nVary: Accept\r\n\r\n"),
    meta(meta_internal(), b"\x28\xb5\x2f\xfd", mode=0),
]

TARGETS = {
    "h1_request_head": REQUESTS,
    "h1_response_head": RESPONSES,
    "h1_body_decoder": BODIES,
    "h1_framing": FRAMING,
    "header_map_ops": HEADER_OPS,
    "tls_client_hello": HELLOS,
    "h2_heads": H2,
    "cache_control": CACHE_CONTROL,
    "cache_range": CACHE_RANGE,
    "cache_vary": CACHE_VARY,
    "cache_meta": CACHE_META,
}

for target, seeds in TARGETS.items():
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for s in seeds:
        name = "seed-" + hashlib.sha1(s).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(s)
