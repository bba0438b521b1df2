//! The binary: flags, environment, errors that say what to change, and a clean stop.

use std::time::Duration;

use hickory_net::proto::rr::RecordType;

use crate::support::{Binary, ask, data, demo_manifests};

fn run_to_exit(args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
        .args(args)
        .env_remove("HEADLESS_DNS_MANIFESTS")
        .output()
        .expect("binary runs");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn bad_flags_exit_with_what_to_change() {
    let demo = demo_manifests();
    let demo = demo.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--manifests", demo, "--max-udp-size", "100"],
            "--max-udp-size",
        ),
        (&["--manifests", demo, "--zone", "a..b"], "--zone"),
        (&["--manifests", demo, "--listen", "localhost"], "--listen"),
        (
            &[
                "--manifests",
                demo,
                "--zone",
                "cluster.local",
                "--zone",
                "Cluster.Local",
            ],
            "given twice",
        ),
        (
            &["--manifests", demo, "--zone", "10.in-addr.arpa"],
            "reverse zones",
        ),
        (
            &["--manifests", demo, "--tcp-idle-timeout", "forever"],
            "--tcp-idle-timeout",
        ),
        (&["--manifests", demo, "--namespace", "demo"], "--namespace"),
        (&["--namespace", "Not_A_Namespace"], "--namespace"),
        (&["--http", "8080"], "--http"),
        // The API server would refuse it on every list: never ready. Refused here instead.
        (&["--label-selector", "env in prod"], "--label-selector"),
        (
            &["--label-selector", "app=web,,tier=db"],
            "empty requirement",
        ),
        (
            &["--manifests", demo, "--reverse-zone", "10.0.0.1/8"],
            "10.0.0.0/8",
        ),
        (
            &["--manifests", demo, "--ns-address", "ns.example"],
            "--ns-address",
        ),
        (
            &["--manifests", demo, "--udp-truncation", "half"],
            "--udp-truncation",
        ),
        (
            &["--manifests", demo, "--max-connections-per-client", "0"],
            "--max-connections-per-client",
        ),
        (
            &["--manifests", demo, "--tls-handshake-timeout", "0s"],
            "--tls-handshake-timeout",
        ),
        (
            &[
                "--manifests",
                demo,
                "--snapshot",
                "/nonexistent/folder/state",
            ],
            "does not exist",
        ),
        (
            &["--manifests", demo, "--snapshot-interval", "0s"],
            "--snapshot-interval",
        ),
        (
            &["--manifests", demo, "--clusterset-zone", "cluster.local"],
            "also a --zone",
        ),
        (
            &["--manifests", demo, "--clusterset-zone", "10.in-addr.arpa"],
            "--clusterset-zone",
        ),
        (
            &["--manifests", demo, "--cluster-id", "east"],
            "give --clusterset-zone",
        ),
        (
            &[
                "--manifests",
                demo,
                "--clusterset-zone",
                "clusterset.local",
                "--cluster-id",
                "East_1",
            ],
            "--cluster-id \"East_1\"",
        ),
    ];
    for (args, needle) in cases {
        let (code, stderr) = run_to_exit(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn without_manifests_or_a_cluster_it_says_what_to_give() {
    let home = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
        .env_clear()
        .env("HOME", home.path())
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needle in ["--kubeconfig", "KUBECONFIG", "--manifests"] {
        assert!(stderr.contains(needle), "{needle} missing: {stderr}");
    }

    let (code, stderr) = run_to_exit(&["--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--kubeconfig /nonexistent/kubeconfig"),
        "{stderr}"
    );
}

#[test]
fn unreadable_manifests_and_busy_ports_are_reported() {
    let (code, stderr) = run_to_exit(&["--manifests", "/nonexistent/manifests"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--manifests /nonexistent/manifests"),
        "{stderr}"
    );

    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let demo = demo_manifests();
    let (code, stderr) = run_to_exit(&["--manifests", demo.to_str().unwrap(), "--listen", &port]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("cannot listen on {port}")),
        "{stderr}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_exit(&[
        "--manifests",
        demo.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--http",
        &port,
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("cannot serve HTTP on {port}")) && stderr.contains("--http"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serves_from_flags_and_environment_then_stops_on_sigterm() {
    let demo = demo_manifests();
    let binary = Binary::start(
        &[
            "--manifests",
            demo.to_str().unwrap(),
            "--zone",
            "cluster.local,sts.example.internal",
        ],
        &[("HEADLESS_DNS_TTL", "30")],
    )
    .await;
    let response = ask(
        binary.addr,
        "web-2.nginx.demo.svc.sts.example.internal.",
        RecordType::A,
    )
    .await;
    assert_eq!(data(&response), ["10.244.3.12"]);
    assert_eq!(response.answers[0].ttl, 30, "TTL from HEADLESS_DNS_TTL");
    let (code, _log) = binary.terminate().await;
    assert_eq!(code, Some(0), "SIGTERM is a clean exit");
}

#[cfg(target_os = "linux")]
#[test]
fn socket_affinity_without_one_worker_per_cpu_says_what_to_set() {
    let demo = demo_manifests();
    let cpus = headless_dns::serve::affinity::allowed_cpus()
        .expect("affinity mask")
        .len();
    let threads = (cpus + 1).to_string();
    let (code, stderr) = run_to_exit(&[
        "--manifests",
        demo.to_str().unwrap(),
        "--socket-affinity",
        "--threads",
        &threads,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--socket-affinity") && stderr.contains(&format!("--threads to {cpus}")),
        "{stderr}"
    );
}

/// The UDP worker threads' CPU lists (`Cpus_allowed_list`), in thread order.
#[cfg(target_os = "linux")]
fn udp_worker_cpus(pid: u32) -> Vec<String> {
    let mut workers = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let task = task.expect("task").path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let Some(index) = name.trim().strip_prefix("dns-udp-") else {
            continue;
        };
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_default()
            .trim()
            .to_string();
        workers.push((index.parse::<usize>().unwrap_or(usize::MAX), cpus));
    }
    workers.sort();
    workers.into_iter().map(|(_, cpus)| cpus).collect()
}

/// `--socket-affinity`: one UDP worker pinned to each CPU, and a query sent from any CPU
/// is answered (the kernel steers it to the worker of the CPU that received it).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn socket_affinity_pins_one_worker_per_cpu_and_answers_from_every_cpu() {
    let demo = demo_manifests();
    let allowed = headless_dns::serve::affinity::allowed_cpus().expect("affinity mask");
    // Explicit, so that a CPU quota (which lowers the default) does not change the count.
    let threads = allowed.len().to_string();
    let binary = Binary::start(
        &[
            "--manifests",
            demo.to_str().unwrap(),
            "--socket-affinity",
            "--threads",
            &threads,
        ],
        &[],
    )
    .await;
    let mut expected: Vec<String> = allowed.iter().map(usize::to_string).collect();
    expected.sort();
    // Each worker pins itself as it starts, which may be just after the server says it
    // serves.
    let pid = binary.pid();
    let pinned = || {
        let mut pinned = udp_worker_cpus(pid);
        pinned.sort();
        pinned
    };
    let all_pinned =
        crate::support::eventually_blocking(Duration::from_secs(5), || pinned() == expected);
    assert!(
        all_pinned,
        "one worker on each CPU, alone: {:?} against {expected:?}",
        pinned()
    );

    let port = binary.addr.port().to_string();
    for cpu in &allowed {
        let cpu = cpu.to_string();
        let out = crate::support::run(
            "taskset",
            &[
                "-c",
                &cpu,
                "dig",
                "@127.0.0.1",
                "-p",
                &port,
                "+time=2",
                "+tries=1",
                "+short",
                "web-2.nginx.demo.svc.cluster.local",
            ],
        )
        .await;
        assert_eq!(out.trim(), "10.244.3.12", "asked from CPU {cpu}");
    }
    let (code, _log) = binary.terminate().await;
    assert_eq!(code, Some(0));
}
