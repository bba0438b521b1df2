#!/usr/bin/env python3
"""Zone transfers, measured: AXFR time and peak extra memory of the server, the size of the
IXFR that carries one pod change, and the lag from a change to Knot's and NSD's answers.

    cargo build --release
    python3 bench/gen_dataset.py --pods 10000 --out bench/out/data-10000   # and 100000, 1000000
    python3 bench/transfer.py --sizes 10000,100000,1000000 --changes 100

1. AXFR: the release binary serves bench/out/data-N/manifests; a client on loopback (this
   script, reading every message to the closing SOA) takes `cluster.local` three times.
   Peak extra memory = the server's VmHWM during the transfer (the peak is reset through
   /proc/PID/clear_refs first) minus its VmRSS before, as a share of that RSS.
2. IXFR: one pod's address is edited in its manifest (the 100k dataset, or the largest
   given); once the serial moves, an IXFR from the old serial is taken: its octets and
   records.
3. Lag: knotd and nsd (Debian packages) are secondaries of `cluster.local` with
   `--notify` pointing at them, on the 10k dataset. Each change edits one pod's address;
   the clock starts at the file write and stops when each server answers the new address
   (polled every 2 ms over UDP): headless-dns itself (the manifests' reload), Knot and NSD.

Loopback only; every loop is bounded in count and time. Needs root for clear_refs.
"""

import argparse
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPE_SOA, TYPE_A, TYPE_AXFR, TYPE_IXFR = 6, 1, 252, 251


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, name, qtype, authority=b"", nscount=0):
    header = struct.pack(">HHHHHH", qid, 0, 1, 0, nscount, 0)
    return header + encode_name(name) + struct.pack(">HH", qtype, 1) + authority


def skip_name(msg, at):
    while True:
        length = msg[at]
        if length >= 0xC0:
            return at + 2
        if length == 0:
            return at + 1
        at += 1 + length


def records(msg):
    """(type, rdata) of each answer record of one message."""
    qd, an = struct.unpack(">HH", msg[4:8])
    at = 12
    for _ in range(qd):
        at = skip_name(msg, at) + 4
    out = []
    for _ in range(an):
        at = skip_name(msg, at)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[at:at + 10])
        at += 10
        out.append((rtype, msg[at:at + rdlen]))
        at += rdlen
    return out


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the transfer")
        data += chunk
    return bytes(data)


def transfer(port, request):
    """Sends a transfer request over TCP; (records, octets, messages) until the final SOA.

    AXFR (and AXFR-style IXFR): SOA, records, SOA. IXFR (RFC 1995): SOA(new), then per
    step SOA(from), deletions, SOA(to), additions, and SOA(new) where a step would start."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(struct.pack(">H", len(request)) + request)
        count, octets, messages = 0, 0, 0
        first, phase = None, None  # phase: "whole", "deletions", "additions"
        while True:
            (length,) = struct.unpack(">H", recv_exact(sock, 2))
            msg = recv_exact(sock, length)
            octets += length + 2
            messages += 1
            rcode = msg[3] & 0xF
            if rcode:
                raise RuntimeError(f"transfer refused, rcode {rcode}")
            for rtype, rdata in records(msg):
                count += 1
                if count == 1:
                    first = rdata
                elif count == 2:
                    phase = "deletions" if rtype == TYPE_SOA and rdata != first else "whole"
                elif rtype == TYPE_SOA:
                    if phase == "deletions":
                        phase = "additions"
                    elif rdata == first:
                        return count, octets, messages
                    else:
                        phase = "deletions"
            if count == 1:
                return count, octets, messages  # IXFR up to date: the SOA alone


def udp_ask(sock, port, name, qtype=TYPE_A, timeout=1.0):
    qid = random.randrange(65536)
    sock.settimeout(timeout)
    sock.sendto(query(qid, name, qtype), ("127.0.0.1", port))
    try:
        while True:
            data, _ = sock.recvfrom(65535)
            if data[:2] == struct.pack(">H", qid):
                return data
    except socket.timeout:
        return None


def serial(sock, port):
    answer = udp_ask(sock, port, "cluster.local", TYPE_SOA)
    if not answer:
        return None
    for rtype, rdata in records(answer):
        if rtype == TYPE_SOA:
            return struct.unpack(">I", rdata[-20:-16])[0]
    return None


def cpu_seconds(pid):
    """User + system CPU time of the process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


class Server:
    def __init__(self, binary, manifests, extra=(), port=None):
        self.port, self.http = port or free_port(), free_port()
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log")
        args = [binary, "--manifests", manifests, "--listen", f"127.0.0.1:{self.port}",
                "--http", f"127.0.0.1:{self.http}", "--transfer-allow", "127.0.0.1",
                "--threads", "1", "--log", "info", *extra]
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {open(self.log.name).read()}")
            answer = udp_ask(sock, self.port, "cluster.local", TYPE_SOA, 0.2)
            if answer and answer[3] & 0xF == 0:
                break
            time.sleep(0.2)
        sock.close()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


class Churn:
    """A headless Service in the manifests folder rewritten every `ms` milliseconds (a new
    file renamed over the old), as a rolling restart changes a Service: two pods' addresses
    carry the change's number. Removed again by stop()."""

    def __init__(self, folder, ms):
        import threading
        self.path = os.path.join(folder, "zz-bench-churn.yaml")
        self.ms, self.changes, self.running = ms, 0, True
        self.write(0)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def write(self, n):
        ips = [f"10.{net}.{(n // 250) % 250}.{n % 250 + 1}" for net in (250, 251)]
        endpoints = "".join(f"- addresses: [\"{ip}\"]\n  hostname: churn-{i}\n"
                            for i, ip in enumerate(ips))
        text = ("apiVersion: v1\nkind: Service\nmetadata: {name: churn, namespace: bench-churn}\n"
                "spec: {clusterIP: None, ports: [{name: web, port: 80}]}\n---\n"
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                "metadata: {name: churn-x, namespace: bench-churn, "
                "labels: {kubernetes.io/service-name: churn}}\naddressType: IPv4\n"
                f"endpoints:\n{endpoints}ports: [{{name: web, port: 80}}]\n")
        with open(self.path + ".new", "w") as f:
            f.write(text)
        os.rename(self.path + ".new", self.path)

    def start(self):
        self.thread.start()

    def run(self):
        n = 1
        while self.running and n < 100_000:
            self.write(n)
            self.changes = n
            n += 1
            time.sleep(self.ms / 1000)

    def stop(self):
        self.running = False
        self.thread.join()
        os.remove(self.path)


def axfr_runs(binary, sizes, rounds, zone, churn_ms=0):
    print(f"AXFR of {zone} (release build, server on one thread"
          + (f", the zone changing every {churn_ms} ms" if churn_ms else "") + "):")
    print(f"{'endpoints':>10} {'records':>9} {'MB':>7} {'msgs':>6} {'time':>9} "
          f"{'server CPU':>10} {'RSS before':>11} {'peak extra':>11}")
    for size in sizes:
        manifests = os.path.join(ROOT, "bench", "out", f"data-{size}", "manifests")
        churn = Churn(manifests, churn_ms) if churn_ms else None
        server = Server(binary, manifests)
        time.sleep(1)
        times, cpus, extras = [], [], []
        moved = []
        request = query(0x4242, zone, TYPE_AXFR)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if churn:
            churn.start()
            time.sleep(0.5)
        try:
            for _ in range(rounds):
                before_serial = serial(sock, server.port)
                rss = status_kib(server.process.pid, "VmRSS:")
                with open(f"/proc/{server.process.pid}/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current RSS
                started, cpu = time.perf_counter(), cpu_seconds(server.process.pid)
                count, octets, messages = transfer(server.port, request)
                times.append(time.perf_counter() - started)
                moved.append(serial(sock, server.port) != before_serial)
                cpus.append(cpu_seconds(server.process.pid) - cpu)
                extras.append((status_kib(server.process.pid, "VmHWM:") - rss, rss))
        finally:
            if churn:
                churn.stop()
        changes = churn.changes if churn else 0
        sock.close()
        server.stop()
        extra, rss = max(extras)
        print(f"{size:>10} {count:>9} {octets / 1e6:>7.1f} {messages:>6} "
              f"{statistics.median(times) * 1e3:>7.0f} ms {statistics.median(cpus) * 1e3:>7.0f} ms "
              f"{rss / 1024:>8.1f} MiB "
              f"{extra / 1024:>6.1f} MiB ({100 * extra / rss:.1f}%)")
        print(f"{'':>10} times over {rounds} rounds: "
              + ", ".join(f"{t * 1e3:.0f} ms" for t in times))
        if churn_ms:
            print(f"{'':>10} every transfer complete; the serial moved during "
                  f"{sum(moved)} of {rounds}; {changes} changes written")


def edit_one_pod(folder, rng):
    """Changes one pod's address in one file; the pod's name and its new address."""
    files = sorted(os.listdir(folder))
    path = os.path.join(folder, rng.choice(files))
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")
    at = rng.choice([i for i, line in enumerate(lines) if line.startswith("- addresses:")])
    address = f"10.{rng.randrange(200, 250)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    hostname = lines[at + 1].split(":")[1].strip()
    namespace = os.path.basename(path)[:-5]
    service = hostname.rsplit("-", 1)[0]
    lines[at] = f'- addresses: ["{address}"]'
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)
    name = f"{hostname}.{service}.{namespace}.svc.cluster.local"
    return name, socket.inet_aton(address)


def ixfr_run(binary, size):
    work = tempfile.mkdtemp()
    try:
        folder = os.path.join(work, "manifests")
        shutil.copytree(os.path.join(ROOT, "bench", "out", f"data-{size}", "manifests"), folder)
        server = Server(binary, folder)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        before = serial(sock, server.port)
        edit_one_pod(folder, random.Random(7))
        deadline = time.time() + 30
        while serial(sock, server.port) == before and time.time() < deadline:
            time.sleep(0.01)
        after = serial(sock, server.port)
        soa = struct.pack(">HHIH", TYPE_SOA, 1, 0, 22) + b"\0\0" + struct.pack(">IIIII", before, 0, 0, 0, 0)
        request = query(0x4243, "cluster.local", TYPE_IXFR, b"\xc0\x0c" + soa, 1)
        count, octets, messages = transfer(server.port, request)
        print(f"IXFR for one pod's new address ({size} endpoints loaded, serial {before} -> "
              f"{after}): {count} records, {octets} octets in {messages} message(s)")
        server.stop()
    finally:
        shutil.rmtree(work)


def secondary_configs(work, primary_port):
    knot_port, nsd_port = free_port(), free_port()
    knot_dir, nsd_dir = os.path.join(work, "knot"), os.path.join(work, "nsd")
    os.makedirs(knot_dir)
    os.makedirs(nsd_dir)
    with open(os.path.join(knot_dir, "knot.conf"), "w") as f:
        f.write(f"""server:
    listen: 127.0.0.1@{knot_port}
    rundir: {knot_dir}
    automatic-acl: on
database:
    storage: {knot_dir}
remote:
  - id: primary
    address: 127.0.0.1@{primary_port}
template:
  - id: default
    storage: {knot_dir}
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: cluster.local
    master: primary
""")
    with open(os.path.join(nsd_dir, "nsd.conf"), "w") as f:
        f.write(f"""server:
    ip-address: 127.0.0.1@{nsd_port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{nsd_dir}"
    pidfile: "{nsd_dir}/nsd.pid"
    xfrdfile: ""
    xfrdir: "{nsd_dir}"
    zonelistfile: "{nsd_dir}/zone.list"
    database: ""
    zonefiles-write: 0
    xfrd-reload-timeout: 0
remote-control:
    control-enable: no
zone:
    name: cluster.local
    request-xfr: 127.0.0.1@{primary_port} NOKEY
    allow-notify: 127.0.0.1 NOKEY
""")
    return knot_port, knot_dir, nsd_port, nsd_dir


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def lag_runs(binary, size, changes, gap):
    work = tempfile.mkdtemp()
    processes = []
    try:
        folder = os.path.join(work, "manifests")
        shutil.copytree(os.path.join(ROOT, "bench", "out", f"data-{size}", "manifests"), folder)
        primary_port = free_port()
        knot_port, knot_dir, nsd_port, nsd_dir = secondary_configs(work, primary_port)
        log = open(os.path.join(work, "secondaries.log"), "w")
        processes.append(subprocess.Popen(
            ["knotd", "-c", os.path.join(knot_dir, "knot.conf")], stdout=log, stderr=log))
        processes.append(subprocess.Popen(
            ["nsd", "-d", "-c", os.path.join(nsd_dir, "nsd.conf")], stdout=log, stderr=log))
        time.sleep(0.5)
        server = Server(binary, folder, [
            "--notify", f"127.0.0.1:{knot_port}", "--notify", f"127.0.0.1:{nsd_port}"],
            port=primary_port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        servers = {"headless-dns": primary_port, "knot": knot_port, "nsd": nsd_port}
        deadline = time.time() + 60
        want = serial(sock, primary_port)
        while time.time() < deadline and any(serial(sock, p) != want for p in servers.values()):
            time.sleep(0.05)
        lags = {name: [] for name in servers}
        missed = {name: 0 for name in servers}
        rng = random.Random(1)
        for _ in range(changes):
            name, address = edit_one_pod(folder, rng)
            started = time.perf_counter()
            waiting = dict(servers)
            limit = started + 10
            while waiting and time.perf_counter() < limit:
                for server_name, port in list(waiting.items()):
                    answer = udp_ask(sock, port, name, TYPE_A, 0.2)
                    # NSD adds the zone's NS in authority: read the answer section.
                    if answer and (TYPE_A, address) in records(answer):
                        lags[server_name].append(time.perf_counter() - started)
                        del waiting[server_name]
                time.sleep(0.002)
            for server_name in waiting:
                missed[server_name] += 1
            time.sleep(gap)
        print(f"change -> answer, {changes} pod address changes on {size} endpoints "
              f"(a manifest edit; NOTIFY, then IXFR):")
        for server_name, values in lags.items():
            if values:
                print(f"  {server_name:<13} median {statistics.median(values) * 1e3:7.1f} ms   "
                      f"p90 {percentile(values, 90) * 1e3:7.1f} ms   "
                      f"p99 {percentile(values, 99) * 1e3:7.1f} ms   max {max(values) * 1e3:7.1f} ms"
                      f"   not seen in 10 s: {missed[server_name]}")
            else:
                print(f"  {server_name:<13} never answered the new address")
        server.stop()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(work)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "headless-dns"))
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between changes")
    parser.add_argument("--skip", default="", help="comma list of axfr,ixfr,lag to skip")
    parser.add_argument("--churn", type=int, default=0,
                        help="ms between changes to the zone while the AXFRs run (0: none)")
    parser.add_argument("--zone", default="cluster.local",
                        help="the zone the AXFR runs take (in-addr.arpa: every pod's PTR)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    if "axfr" not in skip:
        axfr_runs(args.binary, sizes, args.rounds, args.zone, args.churn)
    if "ixfr" not in skip:
        ixfr_run(args.binary, min(sizes, key=lambda s: abs(s - 100000)))
    if "lag" not in skip:
        lag_runs(args.binary, min(sizes), args.changes, args.gap)


if __name__ == "__main__":
    main()
