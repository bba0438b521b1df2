#!/usr/bin/env python3
"""Load benchmark: headless-dns against Knot DNS and NSD, with a bare UDP reflector as the
"limit" row, on loopback, interleaved over several rounds.

Every server is pinned to core 0 and dnsperf to core 1 (taskset). `--layouts one,shared`
adds a second instance of each DNS server given every CPU, with as many workers, and
dnsperf sharing those CPUs with as many threads, interleaved with the first; `affinity` is
the shared layout with each server's CPU-steering option (headless-dns --socket-affinity,
Knot socket-affinity; NSD has none). Per run it records
dnsperf's queries/s, average latency and lost queries, the server's CPU time
(user+sys of its whole process tree, from /proc) divided by the queries completed, and
dnsperf's own CPU time per query and how busy it was (from its rusage). A
second pass at a fixed offered load (-Q) with dnsperf -v gives latency percentiles.

Traffic goes to 127.0.0.1 only. Started by bench/run.sh; see --help.
"""

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PORTS = {"headless-dns": 15353, "knot": 15354, "nsd": 15355, "baseline": 15357}
# The reflector listens on one port per workload, from here up: each pads its echoes to the
# size of that workload's answers.
LIMIT_PORT = 15360
# A server's instance in the shared layout listens this far above its one-core twin.
SHARED_PORT_OFFSET = 100
PEERS = ("knot", "nsd")


LAYOUTS = ("one", "shared", "affinity")


def label_of(name, layout):
    """How results name a server in a layout: `knot`, `knot@shared`."""
    return name if layout == "one" else f"{name}@{layout}"


class Instance:
    """One server under test in one CPU layout: "one" (the server on --server-cpus, dnsperf
    on --client-cpus), "shared" (the server and dnsperf on every CPU, one server worker and
    one dnsperf thread per CPU) or "affinity" (shared, with the server's CPU steering). The
    limit row runs in the one-core layout only."""

    def __init__(self, name, layout, args):
        shared = layout != "one"
        cpus = sorted(os.sched_getaffinity(0))
        every_cpu = ",".join(str(c) for c in cpus)
        self.name = name
        self.layout = layout
        self.label = label_of(name, layout)
        self.server_cpus = every_cpu if shared else args.server_cpus
        self.client_cpus = every_cpu if shared else args.client_cpus
        self.client_threads = len(cpus) if shared else 1
        self.threads = args.threads or (len(cpus) if shared else 0)
        self.port = PORTS.get(name, LIMIT_PORT) + SHARED_PORT_OFFSET * LAYOUTS.index(layout)

    def port_for(self, workload, workloads):
        if self.name == "limit":
            return LIMIT_PORT + workloads.index(workload)
        return self.port

    def pin(self):
        return ["taskset", "-c", self.server_cpus]


def instances_of(args):
    return [Instance(name, layout, args) for layout in LAYOUTS if layout in args.layouts
            for name in args.servers if layout == "one" or name != "limit"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def tree_cpu_seconds(pid):
    """user+sys seconds of pid and all its descendants (NSD forks its server processes)."""
    children = {}
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(entry))
        stats[int(entry)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


def client_cpu_seconds():
    """user+sys seconds of this script's finished children (each dnsperf run, which taskset
    execs in its own process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_port(port, deadline=60):
    """Waits until something answers DNS on the port (any response counts)."""
    query = bytes.fromhex("abcd01000001000000000000") + b"\x07cluster\x05local\x00\x00\x06\x00\x01"
    end = time.time() + deadline
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.time() < end:
            try:
                s.sendto(query, ("127.0.0.1", port))
                s.recvfrom(4096)
                return
            except OSError:
                time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


def server_dir(work, label, data):
    """A working folder for a peer instance, holding its copy of the zone files."""
    folder = os.path.join(work, label.replace("@", "-"))
    os.makedirs(folder, exist_ok=True)
    for zone in ("cluster.local.zone", "10.in-addr.arpa.zone"):
        shutil.copy(os.path.join(data, zone), folder)
    return folder


# --clusterset: headless-dns serves the dataset with its ServiceImports (manifests-clusterset)
# and the clusterset zone; the peers are unchanged.
HEADLESS_DNS_MANIFESTS = "manifests"
HEADLESS_DNS_FLAGS = []


def start_headless_dns(instance, binary, data):
    return subprocess.Popen(
        instance.pin() + [binary, "--manifests", os.path.join(data, HEADLESS_DNS_MANIFESTS),
                          "--listen", f"127.0.0.1:{instance.port}",
                          "--max-udp-size", "4096", "--http", "off", "--log", "warn"]
        + HEADLESS_DNS_FLAGS
        + (["--threads", str(instance.threads)] if instance.threads else [])
        + (["--socket-affinity"] if instance.layout == "affinity" else []),
        stdout=subprocess.DEVNULL)


def start_server(instance, data, work):
    """Starts one DNS server instance (not the limit row)."""
    if instance.name == "headless-dns":
        # HEADLESS_DNS_BIN: another build, e.g. an older commit's, to compare against.
        binary = os.environ.get("HEADLESS_DNS_BIN") or os.path.join(
            ROOT, "target", "release", "headless-dns")
        return start_headless_dns(instance, binary, data)
    if instance.name == "baseline":
        # Another headless-dns build (e.g. the last commit's), interleaved with this one so
        # that both see the same drift of the machine: HEADLESS_DNS_BASELINE_BIN.
        baseline = os.environ.get("HEADLESS_DNS_BASELINE_BIN")
        if not baseline:
            sys.exit("--servers baseline needs HEADLESS_DNS_BASELINE_BIN=/path/to/headless-dns")
        return start_headless_dns(instance, baseline, data)
    workers = instance.threads or 1
    if instance.name == "knot":
        kdir = server_dir(work, instance.label, data)
        with open(os.path.join(kdir, "knot.conf"), "w") as f:
            f.write(f"""server:
    listen: 127.0.0.1@{instance.port}
    rundir: {kdir}
    udp-workers: {workers}
    tcp-workers: 1
    background-workers: 1
    udp-max-payload: 4096
    socket-affinity: {"on" if instance.layout == "affinity" else "off"}
log:
  - target: stderr
    any: warning
database:
    storage: {kdir}/db
template:
  - id: default
    storage: {kdir}
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
zone:
  - domain: cluster.local
    file: cluster.local.zone
  - domain: 10.in-addr.arpa
    file: 10.in-addr.arpa.zone
""")
        return subprocess.Popen(instance.pin() + ["knotd", "-c", os.path.join(kdir, "knot.conf")],
                                stdout=subprocess.DEVNULL)
    if instance.name == "nsd":
        ndir = server_dir(work, instance.label, data)
        with open(os.path.join(ndir, "nsd.conf"), "w") as f:
            f.write(f"""server:
    ip-address: 127.0.0.1@{instance.port}
    server-count: {workers}
    reuseport: {"yes" if workers > 1 else "no"}
    username: ""
    chroot: ""
    zonesdir: "{ndir}"
    pidfile: "{ndir}/nsd.pid"
    xfrdfile: "{ndir}/xfrd.state"
    zonelistfile: "{ndir}/zone.list"
    database: ""
    logfile: "{ndir}/nsd.log"
    ipv4-edns-size: 4096
    minimal-responses: yes
    round-robin: no
    hide-version: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: cluster.local
    zonefile: cluster.local.zone
zone:
    name: 10.in-addr.arpa
    zonefile: 10.in-addr.arpa.zone
""")
        return subprocess.Popen(instance.pin() + ["nsd", "-d", "-c", os.path.join(ndir, "nsd.conf")],
                                stdout=subprocess.DEVNULL)
    sys.exit(f"unknown server {instance.name}: pick from {', '.join([*PORTS, 'limit'])}")


def start_servers(instances, data, work):
    procs = {i.label: start_server(i, data, work) for i in instances if i.name != "limit"}
    for i in instances:
        if i.label in procs:
            wait_port(i.port)
    return procs


def response_sizes(args, instances, workloads, data):
    """Average answer size per workload, from a one-second dnsperf pass against the first
    DNS server listed: the size the limit row pads its echoes to (none without a server)."""
    server = next((i for i in instances if i.name != "limit"), None)
    if server is None:
        return None, {w: 0 for w in workloads}
    sizes = {w: parse_stats(dnsperf(args, server, server.port,
                                    os.path.join(data, f"queries-{w}.txt"),
                                    seconds=1)).get("response_bytes", 0)
             for w in workloads}
    return server.label, sizes


def start_limit(args, instances, workloads, data, work):
    """The reflector, one port per workload, each padding its echoes to that workload's
    average answer size."""
    limit = next(i for i in instances if i.name == "limit")
    server, sizes = response_sizes(args, instances, workloads, data)
    reflector = os.path.join(work, "reflector")
    sh(["cc", "-O2", "-pthread", "-o", reflector, os.path.join(HERE, "reflector.c")])
    ports = [f"{limit.port_for(w, workloads)}:{sizes[w]}" for w in workloads]
    proc = subprocess.Popen(limit.pin() + [reflector, *ports])
    for w in workloads:
        wait_port(limit.port_for(w, workloads))
    print("  limit: echoes padded to " + ", ".join(f"{w} {sizes[w]} B" for w in workloads)
          + (f" (the average answer of {server})" if server else ""))
    return proc


def dig(port, name, rtype):
    out = sh(["dig", "@127.0.0.1", "-p", str(port), "+time=2", "+tries=2", "+noall", "+answer",
              "+comments", name, rtype]).stdout
    status = out.split("status: ", 1)[1].split(",", 1)[0] if "status: " in out else "?"
    answer = [line.split(None, 4)[4] for line in out.splitlines()
              if line and not line.startswith(";") and len(line.split(None, 4)) == 5]
    return status, answer


def check(name, port, expected, ordered):
    """Every sample name answers as the dataset says; headless-dns also in ordinal order."""
    for e in expected:
        status, answer = dig(port, e["name"], e["type"])
        want = e["answer"]
        ok = status == e.get("rcode", "NOERROR") and (
            answer == want if ordered else sorted(answer) == sorted(want))
        if not ok:
            raise SystemExit(f"{name} answers {e['name']} {e['type']} wrongly: {status} {answer[:5]}")
    print(f"  {name}: {len(expected)} sample answers correct{' (in ordinal order)' if ordered else ''}")


def dnsperf(args, instance, port, queries, extra=(), seconds=None):
    cmd = ["taskset", "-c", instance.client_cpus, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
           "-d", queries, "-l", str(seconds or args.seconds), "-c", str(args.clients),
           "-q", str(args.outstanding), "-T", str(instance.client_threads), "-e", *extra]
    return subprocess.run(cmd, text=True, capture_output=True, check=True).stdout


def parse_stats(out):
    stats = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Queries completed:"):
            stats["completed"] = int(line.split()[2])
        elif line.startswith("Queries lost:"):
            stats["lost_pct"] = float(line.split("(")[1].rstrip("%)"))
        elif line.startswith("Queries per second:"):
            stats["qps"] = float(line.split()[3])
        elif line.startswith("Average packet size:"):
            stats["response_bytes"] = int(line.rsplit(None, 1)[1])
        elif line.startswith("Average Latency (s):"):
            stats["avg_ms"] = float(line.split()[3]) * 1000
    return stats


def throughput(args, instances, procs, workloads, data):
    results = {}
    for r in range(args.rounds):
        for workload in workloads:
            for i in instances:
                queries = os.path.join(data, f"queries-{workload}.txt")
                before = tree_cpu_seconds(procs[i.label].pid)
                client_before = client_cpu_seconds()
                started = time.monotonic()
                stats = parse_stats(dnsperf(args, i, i.port_for(workload, workloads), queries))
                wall = time.monotonic() - started
                cpu = tree_cpu_seconds(procs[i.label].pid) - before
                client_cpu = client_cpu_seconds() - client_before
                completed = max(stats.get("completed", 1), 1)
                stats["cpu_us"] = cpu / completed * 1e6
                # dnsperf's own CPU: near one full CPU per thread, the load generator is the
                # ceiling, and its cost per response decides the queries/s.
                stats["client_cpu_us"] = client_cpu / completed * 1e6
                stats["client_busy"] = client_cpu / wall / i.client_threads
                results.setdefault((workload, i.label), []).append(stats)
                print(f"  round {r + 1} {workload:12} {i.label:19} {stats['qps']:>10.0f} q/s "
                      f"{stats['cpu_us']:6.2f} us/q lost {stats['lost_pct']:.2f}% "
                      f"response {stats.get('response_bytes', 0)} B; dnsperf "
                      f"{stats['client_cpu_us']:.2f} us/q, {stats['client_busy']:.0%} busy", flush=True)
    return results


def latency(args, instance, port, queries):
    """Percentiles at a fixed offered load, from dnsperf's per-query lines."""
    cmd = ["taskset", "-c", instance.client_cpus, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
           "-d", queries, "-l", str(args.seconds), "-c", str(args.clients),
           "-T", str(instance.client_threads), "-e", "-v",
           "-Q", str(args.latency_qps)]
    proc = subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    samples = []
    for line in proc.stdout:
        if line.startswith("> "):
            try:
                samples.append(float(line.rsplit(None, 1)[1]))
            except ValueError:
                pass  # a timed-out query has no latency
    proc.wait()
    samples.sort()
    if not samples:
        return {}
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000
    return {"lat_avg_ms": statistics.fmean(samples) * 1000, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def report(args, instances, results, lat, workloads):
    lines = [
        f"| workload | server | queries/s median (min-max) | avg latency ms | p99 ms @{args.latency_qps} q/s, median (min-max) | lost % | server CPU us/query | dnsperf CPU us/query, busy | vs best peer (q/s, CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in workloads:
        med = lambda n, k: statistics.median(s[k] for s in results[(workload, n)])
        for i in instances:
            name = i.label
            runs = results[(workload, name)]
            qps = [s["qps"] for s in runs]
            p99s = [x["p99_ms"] for x in lat.get((workload, name), [])]
            p99 = (f"{statistics.median(p99s):.3f} ({min(p99s):.3f}-{max(p99s):.3f})"
                   if p99s else "n/a")
            ratio = ""
            # Peers in the same layout as this instance.
            peers = [label_of(p, i.layout) for p in PEERS]
            peers = [p for p in peers if (workload, p) in results]
            if i.name == "headless-dns" and peers:
                best_qps = max(med(p, "qps") for p in peers)
                best_cpu = min(med(p, "cpu_us") for p in peers)
                ratio = f"{med(name, 'qps') / best_qps:.2f}, {med(name, 'cpu_us') / best_cpu:.2f}"
            this_build = label_of("headless-dns", i.layout)
            if i.name == "baseline" and (workload, this_build) in results:
                # This build against the baseline build.
                ratio = (f"headless-dns / baseline: {med(this_build, 'qps') / med(name, 'qps'):.2f}, "
                         f"{med(this_build, 'cpu_us') / med(name, 'cpu_us'):.2f}")
            lines.append(
                f"| {workload} | {name} | {statistics.median(qps):,.0f} ({min(qps):,.0f}-{max(qps):,.0f}) "
                f"| {med(name, 'avg_ms'):.3f} | {p99} "
                f"| {med(name, 'lost_pct'):.2f} | {med(name, 'cpu_us'):.2f} "
                f"| {med(name, 'client_cpu_us'):.2f}, {med(name, 'client_busy'):.0%} | {ratio} |")
    return "\n".join(lines)


def per_round(results, workload, numerator, denominators, key, best=min):
    """numerator's `key` over the best of denominators' in each round (runs seconds apart,
    so the machine's drift between rounds cancels), or None when one is missing."""
    if (workload, numerator) not in results:
        return None
    runs = [results.get((workload, d)) for d in denominators]
    runs = [r for r in runs if r]
    if not runs:
        return None
    return [n[key] / best(r[round_][key] for r in runs)
            for round_, n in enumerate(results[(workload, numerator)])]


def bars(results, workloads):
    """The issue's bars read per round: CPU per query against the better peer (<= 0.9),
    queries/s against the limit row (>= 0.95), and queries/s on two shared cores against
    one core (> 1: scales up)."""
    def cell(ratios):
        if not ratios:
            return "n/a"
        return f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})"

    servers = ("headless-dns", *PEERS)
    # A change is judged against the baseline build in the same rounds.
    baseline = any(n == "baseline" for _, n in results)
    lines = [
        "| workload | headless-dns CPU / better peer | headless-dns q/s / limit "
        + ("| headless-dns CPU / baseline " if baseline else "")
        + "".join(f"| {layout} / one core, q/s: {n} " for layout in LAYOUTS[1:] for n in servers)
        + "|",
        "|---|---|---" + ("|---" if baseline else "")
        + "|---" * (len(LAYOUTS) - 1) * len(servers) + "|",
    ]
    for w in workloads:
        scaling = [cell(per_round(results, w, label_of(n, layout), [n], "qps"))
                   for layout in LAYOUTS[1:] for n in servers]
        against_baseline = (f"| {cell(per_round(results, w, 'headless-dns', ['baseline'], 'cpu_us'))} "
                            if baseline else "")
        lines.append(
            f"| {w} | {cell(per_round(results, w, 'headless-dns', PEERS, 'cpu_us'))} "
            f"| {cell(per_round(results, w, 'headless-dns', ['limit'], 'qps', best=max))} "
            f"{against_baseline}| {' | '.join(scaling)} |")
    return "Per-round ratios, median (each round):\n\n" + "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10, help="per dnsperf run")
    p.add_argument("--workloads", default="pod-a,multi-a-100,mix,multi-a-3,multi-a-10")
    p.add_argument("--servers", default="headless-dns,knot,nsd,limit")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c")
    p.add_argument("--outstanding", type=int, default=200, help="dnsperf -q")
    p.add_argument("--latency-qps", type=int, default=50_000, help="dnsperf -Q of the latency pass")
    p.add_argument("--latency-rounds", type=int, default=3, help="interleaved latency passes per server")
    p.add_argument("--server-cpus", default="0", help="taskset list for the servers")
    p.add_argument("--client-cpus", default="1", help="taskset list for dnsperf")
    p.add_argument("--threads", type=int, default=0,
                   help="server worker threads (0: one per CPU the server is given)")
    p.add_argument("--layouts", default="one",
                   help="one (servers on --server-cpus, dnsperf on --client-cpus), shared (servers "
                        "and dnsperf on every CPU), affinity (shared, with CPU steering), or a "
                        "comma-separated list of them, interleaved")
    p.add_argument("--work", default=os.path.join(HERE, "out"))
    p.add_argument("--json", help="write raw results here")
    p.add_argument("--clusterset", action="store_true",
                   help="headless-dns serves the dataset's ServiceImports too (--clusterset-zone "
                        "clusterset.local): with workload clusterset-pod-a, pod A under clusterset.local")
    args = p.parse_args()
    if args.clusterset:
        global HEADLESS_DNS_MANIFESTS, HEADLESS_DNS_FLAGS
        HEADLESS_DNS_MANIFESTS = "manifests-clusterset"
        HEADLESS_DNS_FLAGS = ["--clusterset-zone", "clusterset.local"]
    args.servers = args.servers.split(",")
    args.layouts = args.layouts.split(",")
    unknown = set(args.layouts) - set(LAYOUTS)
    if unknown:
        sys.exit(f"--layouts takes {', '.join(LAYOUTS)} (comma-separated), not {','.join(unknown)}")
    workloads = args.workloads.split(",")
    instances = instances_of(args)

    data = os.path.join(args.work, f"data-{args.pods}")
    wanted = "queries-clusterset-pod-a.txt" if args.clusterset else "expected.json"
    if not os.path.exists(os.path.join(data, wanted)):
        sh([sys.executable, os.path.join(HERE, "gen_dataset.py"), "--pods", str(args.pods), "--out", data]
           + (["--clusterset"] if args.clusterset else []))
    expected = json.load(open(os.path.join(data, "expected.json")))
    print(f"dataset {data}; layouts {','.join(args.layouts)}: one-core servers on CPUs "
          f"{args.server_cpus}, dnsperf on {args.client_cpus}; "
          f"dnsperf -c {args.clients} -q {args.outstanding} -e -l {args.seconds}")
    procs = start_servers(instances, data, args.work)
    try:
        for i in instances:
            if i.name != "limit":
                check(i.label, i.port, expected, ordered=i.name in ("headless-dns", "baseline"))
        if any(i.name == "limit" for i in instances):
            procs["limit"] = start_limit(args, instances, workloads, data, args.work)
        results = throughput(args, instances, procs, workloads, data)
        # Interleaved too: one 99th percentile is one sample of the machine's minute, and
        # a single pass per server let a stall on a busy VM pass for a server's tail.
        lat = {}
        for _ in range(args.latency_rounds):
            for workload in workloads:
                for i in instances:
                    res = latency(args, i, i.port_for(workload, workloads),
                                  os.path.join(data, f"queries-{workload}.txt"))
                    if res:
                        lat.setdefault((workload, i.label), []).append(res)
        print()
        print(report(args, instances, results, lat, workloads))
        print()
        print(bars(results, workloads))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "runs": {f"{w}/{n}": r for (w, n), r in results.items()},
                           "latency": {f"{w}/{n}": r for (w, n), r in lat.items()}}, f, indent=1)
    finally:
        stop(procs.values())


def stop(procs):
    """Stops the servers: SIGTERM, then SIGKILL after 10 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
