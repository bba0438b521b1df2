#!/usr/bin/env python3
"""Generates a benchmark cluster, the same data in two forms.

- manifests/ for headless-dns: per namespace, headless Services with their StatefulSets
  and EndpointSlices (at most 100 endpoints per slice, as Kubernetes does);
- cluster.local.zone and 10.in-addr.arpa.zone (RFC 1035) for the peers (Knot DNS, NSD);
- dnsperf query files: pod A, headless multi-A (3, 10 and 100 endpoints) and a realistic
  mix (70% pod A, 15% Service multi-A, 5% SRV, 5% AAAA NODATA, 5% NXDOMAIN);
- expected.json: a sample of names with their answers, to check each server once;
- with --clusterset, manifests-clusterset/: the same cluster plus, for every Service, a
  headless ServiceImport and the EndpointSlices of a second cluster `west` (as many pods,
  at 10.128.x.x upwards), and queries-clusterset-pod-a.txt, pod A queries for
  `<pod>.west.<svc>.<ns>.svc.clusterset.local`.

Each namespace holds StatefulSets of 3, 10 and 100 replicas (ten, five and one of them:
180 pods); --pods sets the total (rounded up to whole namespaces).
"""

import argparse
import json
import os
import random

GROUPS = [3] * 10 + [10] * 5 + [100]
PODS_PER_NAMESPACE = sum(GROUPS)
QUERY_LINES = 200_000


def ip_of(n):
    """The n-th pod address (n >= 1), counting up from 10.0.0.1."""
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def build(pods):
    """Namespaces as lists of (service, [(pod, ip)]) in ordinal order."""
    PODS_PER_NAMESPACE = sum(GROUPS)
    namespaces = []
    n = 0
    for i in range((pods + PODS_PER_NAMESPACE - 1) // PODS_PER_NAMESPACE):
        ns = f"ns-{i:05d}"
        services = []
        counters = {}
        for size in GROUPS:
            k = counters.get(size, 0)
            counters[size] = k + 1
            svc = f"s{size}-{k}"
            members = []
            for ordinal in range(size):
                n += 1
                members.append((f"{svc}-{ordinal}", ip_of(n)))
            services.append((svc, members))
        namespaces.append((ns, services))
    return namespaces


def remote_ip_of(ip):
    """The address of the same pod in cluster `west`: 10.128.0.0/9 where this one has 10.0/9."""
    a, b, c, d = ip.split(".")
    return f"{a}.{int(b) + 128}.{c}.{d}"


def import_docs(ns, services):
    """A headless ServiceImport per Service and cluster `west`'s imported slices."""
    docs = []
    for svc, members in services:
        docs.append(
            f"apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\n"
            f"metadata: {{name: {svc}, namespace: {ns}}}\n"
            f"spec: {{type: Headless, ports: [{{name: web, port: 80, protocol: TCP}}]}}\n"
        )
        remote = [(pod, remote_ip_of(ip)) for pod, ip in members]
        labels = (f"multicluster.kubernetes.io/service-name: {svc}, "
                  "multicluster.kubernetes.io/source-cluster: west")
        docs.extend(slice_docs(f"{svc}-west", ns, labels, remote))
    return docs


def slice_docs(name, ns, labels, members):
    """EndpointSlices `<name>-0`, `<name>-1`, ... of at most 100 of `members` each."""
    docs = []
    for s in range(0, len(members), 100):
        chunk = members[s : s + 100]
        endpoints = "".join(
            f"- addresses: [\"{ip}\"]\n  hostname: {pod}\n  conditions: {{ready: true}}\n"
            for pod, ip in chunk
        )
        docs.append(
            f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata:\n  name: {name}-{s // 100}\n  namespace: {ns}\n"
            f"  labels: {{{labels}}}\n"
            f"addressType: IPv4\nendpoints:\n{endpoints}"
            f"ports: [{{name: web, port: 80, protocol: TCP}}]\n"
        )
    return docs


def write_manifests(out, namespaces, clusterset=False):
    os.makedirs(out, exist_ok=True)
    for ns, services in namespaces:
        docs = import_docs(ns, services) if clusterset else []
        for svc, members in services:
            docs.append(
                f"apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: {ns}}}\n"
                f"spec:\n  clusterIP: None\n  ports: [{{name: web, port: 80, protocol: TCP}}]\n"
            )
            docs.append(
                f"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {svc}, namespace: {ns}}}\n"
                f"spec: {{serviceName: {svc}, replicas: {len(members)}, selector: {{}}, template: {{}}}}\n"
            )
            docs.extend(slice_docs(svc, ns, f"kubernetes.io/service-name: {svc}", members))
        with open(os.path.join(out, f"{ns}.yaml"), "w") as f:
            f.write("---\n".join(docs))


SOA = "@ 5 IN SOA ns.dns.{origin} hostmaster.{origin} 1 7200 1800 86400 5\n@ 5 IN NS ns.dns.cluster.local.\n"


def write_zones(out, namespaces):
    with open(os.path.join(out, "cluster.local.zone"), "w") as f:
        f.write("$ORIGIN cluster.local.\n$TTL 5\n")
        f.write(SOA.format(origin="cluster.local."))
        # The peers want an address for the in-zone name server; nothing queries it.
        f.write('ns.dns A 127.0.0.53\ndns-version TXT "1.1.0"\n')
        for ns, services in namespaces:
            for svc, members in services:
                base = f"{svc}.{ns}.svc"
                weight = max(1, 100 // len(members))
                for _, ip in members:
                    f.write(f"{base} A {ip}\n")
                for pod, ip in members:
                    f.write(f"{pod}.{base} A {ip}\n")
                for pod, _ in members:
                    f.write(f"_web._tcp.{base} SRV 0 {weight} 80 {pod}.{base}.cluster.local.\n")
    with open(os.path.join(out, "10.in-addr.arpa.zone"), "w") as f:
        f.write("$ORIGIN 10.in-addr.arpa.\n$TTL 5\n")
        f.write(SOA.format(origin="cluster.local."))
        for ns, services in namespaces:
            for svc, members in services:
                for pod, ip in members:
                    a, b, c, d = ip.split(".")
                    f.write(f"{d}.{c}.{b} PTR {pod}.{svc}.{ns}.svc.cluster.local.\n")


def write_clusterset_queries(out, namespaces, rng):
    pods = [(ns, svc, pod) for ns, services in namespaces for svc, members in services for pod, _ in members]
    lines = [f"{p[2]}.west.{p[1]}.{p[0]}.svc.clusterset.local A"
             for p in (rng.choice(pods) for _ in range(QUERY_LINES))]
    with open(os.path.join(out, "queries-clusterset-pod-a.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_queries(out, namespaces, rng):
    pods = [(ns, svc, pod) for ns, services in namespaces for svc, members in services for pod, _ in members]
    services = [(ns, svc, len(m)) for ns, svcs in namespaces for svc, m in svcs]

    def pod_name(p):
        return f"{p[2]}.{p[1]}.{p[0]}.svc.cluster.local"

    def svc_name(s):
        return f"{s[1]}.{s[0]}.svc.cluster.local"

    def write(name, lines):
        with open(os.path.join(out, f"queries-{name}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")

    write("pod-a", [f"{pod_name(rng.choice(pods))} A" for _ in range(QUERY_LINES)])
    for size in (3, 10, 100):
        group = [s for s in services if s[2] == size]
        if not group:
            continue
        write(f"multi-a-{size}", [f"{svc_name(rng.choice(group))} A" for _ in range(QUERY_LINES)])
    mix = []
    for _ in range(QUERY_LINES):
        r = rng.random()
        if r < 0.70:
            mix.append(f"{pod_name(rng.choice(pods))} A")
        elif r < 0.85:
            mix.append(f"{svc_name(rng.choice(services))} A")
        elif r < 0.90:
            mix.append(f"_web._tcp.{svc_name(rng.choice(services))} SRV")
        elif r < 0.95:
            mix.append(f"{pod_name(rng.choice(pods))} AAAA")
        else:
            s = rng.choice(services)
            mix.append(f"nope-{rng.randrange(1000)}.{svc_name(s)} A")
    write("mix", mix)


def write_expected(out, namespaces):
    ns, services = namespaces[0]
    checks = []
    for svc, members in services[:1] + services[10:11] + services[15:16]:
        base = f"{svc}.{ns}.svc.cluster.local"
        checks.append({"name": base, "type": "A", "answer": [ip for _, ip in members]})
        pod, ip = members[-1]
        checks.append({"name": f"{pod}.{base}", "type": "A", "answer": [ip]})
        checks.append({"name": f"{pod}.{base}", "type": "AAAA", "answer": []})
        checks.append({"name": f"nope-1.{base}", "type": "A", "answer": [], "rcode": "NXDOMAIN"})
        weight = max(1, 100 // len(members))
        checks.append(
            {
                "name": f"_web._tcp.{base}",
                "type": "SRV",
                "answer": [f"0 {weight} 80 {p}.{base}." for p, _ in members],
            }
        )
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(checks, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000, help="pods in total (default 10000)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clusterset", action="store_true",
                        help="also manifests-clusterset/ and its pod A queries")
    parser.add_argument("--sizes", help="StatefulSet sizes per namespace, comma-separated "
                        "(default: ten of 3, five of 10, one of 100)")
    args = parser.parse_args()
    if args.sizes:
        GROUPS[:] = [int(n) for n in args.sizes.split(",")]
    namespaces = build(args.pods)
    os.makedirs(args.out, exist_ok=True)
    write_manifests(os.path.join(args.out, "manifests"), namespaces)
    write_zones(args.out, namespaces)
    write_queries(args.out, namespaces, random.Random(args.seed))
    write_expected(args.out, namespaces)
    if args.clusterset:
        write_manifests(os.path.join(args.out, "manifests-clusterset"), namespaces, clusterset=True)
        write_clusterset_queries(args.out, namespaces, random.Random(args.seed))
    total = sum(len(m) for _, s in namespaces for _, m in s)
    services = sum(len(s) for _, s in namespaces)
    print(f"{args.out}: {len(namespaces)} namespaces, {services} services, {total} pods")


if __name__ == "__main__":
    main()
