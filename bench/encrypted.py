#!/usr/bin/env python3
"""Encrypted-transport benchmark: DNS over TLS and DNS over HTTPS, headless-dns against
unbound (authoritative for the same zone through an auth-zone, with its tls-port and
https-port), on loopback, interleaved over several rounds.

Every server is pinned to core 0 with one worker and the load generator to core 1, as
bench.py does for UDP: dnsperf 2.10 `-m dot` for DNS over TLS, h2load (nghttp2) GETs of the
same names for DNS over HTTPS (`--doh-client dnsperf` for dnsperf `-m doh`). A run records dnsperf's queries/s and lost
queries and the server's CPU time (user+sys) per query completed. The certificate is made
here with openssl (a test CA and a leaf for 127.0.0.1). `--servers` may add `baseline`
(HEADLESS_DNS_BASELINE_BIN, another build) beside headless-dns.

    python3 bench/encrypted.py --rounds 5 --seconds 5
    python3 bench/encrypted.py --transports dot --workloads pod-a,multi-a-100
    HEADLESS_DNS_BASELINE_BIN=... python3 bench/encrypted.py --transports tcp \
        --servers headless-dns,baseline      # plain TCP against another build

Traffic goes to 127.0.0.1 only.
"""

import argparse
import base64
import os
import statistics
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (bench.py's helpers: dataset, CPU accounting, dnsperf output)

# The TLS and HTTPS ports of each server; UDP for the readiness probe sits one below.
PORTS = {"headless-dns": (15853, 15443), "baseline": (15854, 15444), "unbound": (15855, 15445)}


def certificate(work):
    """A CA and a leaf certificate for 127.0.0.1, made once per work folder."""
    folder = os.path.join(work, "tls")
    leaf = (os.path.join(folder, "leaf.pem"), os.path.join(folder, "leaf.key"))
    if os.path.exists(leaf[0]):
        return leaf
    os.makedirs(folder, exist_ok=True)
    run = lambda *cmd: bench.sh(list(cmd), cwd=folder)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
        "-subj", "/CN=bench CA")
    with open(os.path.join(folder, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("openssl", "req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=bench")
    run("openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "30", "-extfile", "ext.cnf")
    return leaf


def start(name, args, data, work, cert):
    tls_port, https_port = PORTS[name]
    udp_port = tls_port - 1000
    pin = ["taskset", "-c", args.server_cpus]
    if name in ("headless-dns", "baseline"):
        binary = (os.environ.get("HEADLESS_DNS_BASELINE_BIN") if name == "baseline"
                  else os.environ.get("HEADLESS_DNS_BIN")) or os.path.join(
                      bench.ROOT, "target", "release", "headless-dns")
        # A baseline build may predate the encrypted transports: it serves TCP only.
        encrypted = [] if name == "baseline" else [
            "--tls-listen", f"127.0.0.1:{tls_port}", "--https-listen", f"127.0.0.1:{https_port}",
            "--tls-cert", cert[0], "--tls-key", cert[1]]
        cmd = pin + [binary, "--manifests", os.path.join(data, "manifests"),
                     "--listen", f"127.0.0.1:{udp_port}", *encrypted, "--threads", "1",
                     "--http", "off", "--log", "warn", "--max-tcp-connections", "4096"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    elif name == "unbound":
        folder = bench.server_dir(work, "unbound-encrypted", data)
        conf = os.path.join(folder, "unbound.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
    interface: 127.0.0.1@{udp_port}
    interface: 127.0.0.1@{tls_port}
    interface: 127.0.0.1@{https_port}
    tls-port: {tls_port}
    https-port: {https_port}
    tls-service-key: "{cert[1]}"
    tls-service-pem: "{cert[0]}"
    num-threads: 1
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "{folder}"
    pidfile: ""
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    incoming-num-tcp: 4096
    http-max-streams: 200
    verbosity: 0
auth-zone:
    name: "cluster.local"
    zonefile: "{folder}/cluster.local.zone"
    for-downstream: yes
    for-upstream: no
    fallback-enabled: no
remote-control:
    control-enable: no
""")
        proc = subprocess.Popen(pin + ["unbound", "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    else:
        sys.exit(f"unknown server {name}: pick from {', '.join(PORTS)}")
    bench.wait_port(udp_port)
    return proc


def dnsperf(args, mode, port, queries):
    extra = (["-O", f"doh-uri=https://127.0.0.1:{port}/dns-query",
              "-O", f"doh-method={args.doh_method}"] if mode == "doh" else [])
    cmd = ["taskset", "-c", args.client_cpus, "dnsperf", "-m", mode, "-s", "127.0.0.1",
           "-p", str(port), "-d", queries, "-l", str(args.seconds), "-c", str(args.clients),
           "-q", str(args.outstanding), "-T", "1", *extra]
    return bench.parse_stats(subprocess.run(cmd, text=True, capture_output=True, check=True).stdout)


def doh_uris(queries, port, folder):
    """The queries of a dnsperf query file as DoH GET URIs (RFC 8484 4.1: base64url without
    padding, ID 0, RD set), for h2load."""
    path = os.path.join(folder, f"uris-{port}-{os.path.basename(queries)}")
    if os.path.exists(path):
        return path
    types = {"A": 1, "AAAA": 28, "SRV": 33, "PTR": 12, "TXT": 16, "SOA": 6, "NS": 2, "CNAME": 5}
    with open(queries) as f, open(path, "w") as out:
        for line in f:
            name, qtype = line.split()
            message = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
            for label in name.rstrip(".").split("."):
                message += bytes([len(label)]) + label.encode()
            message += b"\0" + struct.pack(">HH", types.get(qtype, 1), 1)
            encoded = base64.urlsafe_b64encode(message).decode().rstrip("=")
            out.write(f"https://127.0.0.1:{port}/dns-query?dns={encoded}\n")
    return path


def h2load(args, port, queries, folder):
    """DNS over HTTPS load from h2load (nghttp2): --clients connections, --outstanding
    requests in flight in all, GETs of the query file's names. dnsperf 2.10's DoH client is
    not used here: with more than one connection it stalls against headless-dns (tens of
    queries/s, lost queries) though not against unbound, nor h2load against either
    (bench/README.md)."""
    streams = max(args.outstanding // args.clients, 1)
    cmd = ["taskset", "-c", args.client_cpus, "h2load", "-c", str(args.clients), "-m",
           str(streams), "-D", str(args.seconds), "-i", doh_uris(queries, port, folder)]
    out = subprocess.run(cmd, text=True, capture_output=True, check=True).stdout
    stats = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("finished in"):
            stats["qps"] = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            fields = dict(reversed(p.strip().split(" ", 1)) for p in line[9:].split(","))
            done = int(fields.get("succeeded", "0"))
            started = int(fields.get("started", "0"))
            stats["completed"] = done
            stats["lost_pct"] = 100.0 * (started - done) / max(started, 1)
    return stats


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--workloads", default="pod-a,multi-a-100")
    p.add_argument("--transports", default="dot,doh")
    p.add_argument("--servers", default="headless-dns,unbound")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c: connections")
    p.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    p.add_argument("--doh-client", default="h2load", help="h2load or dnsperf")
    p.add_argument("--doh-method", default="GET", help="dnsperf -O doh-method: GET or POST")
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpus", default="1")
    p.add_argument("--work", default=os.path.join(HERE, "out"))
    args = p.parse_args()
    servers = args.servers.split(",")
    data = os.path.join(args.work, f"data-{args.pods}")
    if not os.path.exists(os.path.join(data, "expected.json")):
        bench.sh([sys.executable, os.path.join(HERE, "gen_dataset.py"), "--pods",
                  str(args.pods), "--out", data])
    cert = certificate(args.work)
    print(f"dataset {data}; servers on CPU {args.server_cpus} (one worker), dnsperf on "
          f"{args.client_cpus}: -c {args.clients} -q {args.outstanding} -l {args.seconds}")
    procs = {name: start(name, args, data, args.work, cert) for name in servers}
    results = {}
    try:
        for r in range(args.rounds):
            for mode in args.transports.split(","):
                for workload in args.workloads.split(","):
                    for name in servers:
                        if (mode == "tcp" and name == "unbound") or (
                                name == "baseline" and mode != "tcp"):
                            continue  # unbound is the encrypted peer; baseline serves TCP
                        port = {"dot": PORTS[name][0], "doh": PORTS[name][1],
                                "tcp": PORTS[name][0] - 1000}[mode]
                        queries = os.path.join(data, f"queries-{workload}.txt")
                        before = bench.tree_cpu_seconds(procs[name].pid)
                        stats = (h2load(args, port, queries, args.work)
                                 if mode == "doh" and args.doh_client == "h2load"
                                 else dnsperf(args, mode, port, queries))
                        cpu = bench.tree_cpu_seconds(procs[name].pid) - before
                        stats["cpu_us"] = cpu / max(stats.get("completed", 1), 1) * 1e6
                        results.setdefault((mode, workload, name), []).append(stats)
                        print(f"  round {r + 1} {mode} {workload:12} {name:13} "
                              f"{stats.get('qps', 0):>9.0f} q/s {stats['cpu_us']:6.2f} us/q "
                              f"lost {stats.get('lost_pct', 0):.2f}%", flush=True)
        print()
        print("| transport | workload | server | queries/s median (min-max) | server CPU us/query "
              "median (min-max) | lost % (max) | CPU / peer (unbound; TCP: baseline), per round |")
        print("|---|---|---|---|---|---|---|")
        for (mode, workload, name), runs in results.items():
            qps = [s.get("qps", 0) for s in runs]
            cpu = [s["cpu_us"] for s in runs]
            ratio = ""
            peer = results.get((mode, workload, "baseline" if mode == "tcp" else "unbound"))
            if peer and name not in ("unbound", "baseline"):
                per_round = [a["cpu_us"] / b["cpu_us"] for a, b in zip(runs, peer)]
                ratio = (f"{statistics.median(per_round):.2f} ("
                         + ", ".join(f"{x:.2f}" for x in per_round) + ")")
            print(f"| {mode} | {workload} | {name} | {statistics.median(qps):,.0f} "
                  f"({min(qps):,.0f}-{max(qps):,.0f}) | {statistics.median(cpu):.2f} "
                  f"({min(cpu):.2f}-{max(cpu):.2f}) | "
                  f"{max(s.get('lost_pct', 0) for s in runs):.2f} | {ratio} |")
    finally:
        bench.stop(procs.values())


if __name__ == "__main__":
    main()
