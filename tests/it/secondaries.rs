//! Zone transfers to real secondaries: Knot (knotd) and NSD follow headless-dns for
//! `cluster.local` and the pods' reverse zone, by AXFR first and by NOTIFY and IXFR after
//! each change, TSIG-signed; they answer each name as headless-dns does. And what
//! transfers refuse: an address outside `--transfer-allow`, a missing or wrong key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::RecordType;

use crate::support::{
    TestServer, ask, dig, eventually, free_port, loopback_config, query, tcp_message,
};

/// The key both ends know, as `--tsig-key` takes it (NAME:ALGORITHM:SECRET)...
const KEY: &str = "xfr-key:hmac-sha256:aGVhZGxlc3MtZG5zIHRlc3Qga2V5IDEyMzQ1Njc4OTA=";
/// ... and as `dig -y` takes it (ALGORITHM:NAME:SECRET).
const DIG_KEY: &str = "hmac-sha256:xfr-key:aGVhZGxlc3MtZG5zIHRlc3Qga2V5IDEyMzQ1Njc4OTA=";
const SECRET: &str = "aGVhZGxlc3MtZG5zIHRlc3Qga2V5IDEyMzQ1Njc4OTA=";
/// The zones the secondaries carry.
const ZONES: [&str; 2] = ["cluster.local", "244.10.in-addr.arpa"];

/// A change to the manifests, and what it is.
type Edit<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// A secondary server process, stopped when dropped.
struct Secondary {
    name: &'static str,
    addr: SocketAddr,
    _process: tokio::process::Child,
    log: PathBuf,
}

impl Secondary {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn spawn(program: &str, args: &[&str], log: &Path) -> tokio::process::Child {
    let stderr = std::fs::File::create(log).expect("log file");
    let stdout = stderr.try_clone().expect("log file");
    tokio::process::Command::new(program)
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (`bash .ci/run` installs knot and nsd): {e}"))
}

/// knotd as a secondary of `primary`, in `dir`.
fn knot(dir: &Path, primary: SocketAddr) -> Secondary {
    let port = free_port();
    let zones: String = ZONES
        .iter()
        .map(|z| format!("  - domain: {z}\n    master: primary\n"))
        .collect();
    let conf = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n    automatic-acl: on\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: {d}\n\
         key:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
         remote:\n  - id: primary\n    address: {ip}@{pport}\n    key: xfr-key\n\
         template:\n  - id: default\n    storage: {d}\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: none\n\
         zone:\n{zones}",
        d = dir.display(),
        ip = primary.ip(),
        pport = primary.port(),
    );
    let path = dir.join("knot.conf");
    std::fs::write(&path, conf).expect("knot.conf");
    let log = dir.join("knot.log");
    let process = spawn("knotd", &["-c", path.to_str().expect("UTF-8")], &log);
    Secondary {
        name: "knot",
        addr: ([127, 0, 0, 1], port).into(),
        _process: process,
        log,
    }
}

/// nsd as a secondary of `primary`, in `dir`.
fn nsd(dir: &Path, primary: SocketAddr) -> Secondary {
    let port = free_port();
    let zones: String = ZONES
        .iter()
        .map(|z| {
            format!(
                "zone:\n    name: {z}\n    request-xfr: {ip}@{pport} xfr-key\n    allow-notify: {ip} xfr-key\n",
                ip = primary.ip(),
                pport = primary.port()
            )
        })
        .collect();
    let conf = format!(
        "server:\n    ip-address: 127.0.0.1@{port}\n    do-ip6: no\n    username: \"\"\n    chroot: \"\"\n\
         \x20   zonesdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n    xfrdfile: \"\"\n    xfrdir: \"{d}\"\n\
         \x20   zonelistfile: \"{d}/zone.list\"\n    database: \"\"\n    zonefiles-write: 0\n\
         \x20   xfrd-reload-timeout: 0\n    verbosity: 2\n\
         remote-control:\n    control-enable: no\n\
         key:\n    name: xfr-key\n    algorithm: hmac-sha256\n    secret: \"{SECRET}\"\n{zones}",
        d = dir.display(),
    );
    let path = dir.join("nsd.conf");
    std::fs::write(&path, conf).expect("nsd.conf");
    let log = dir.join("nsd.log");
    let process = spawn("nsd", &["-d", "-c", path.to_str().expect("UTF-8")], &log);
    Secondary {
        name: "nsd",
        addr: ([127, 0, 0, 1], port).into(),
        _process: process,
        log,
    }
}

/// The answer section of `message`, sorted, as comparable text (secondaries keep a record
/// set's order their own way; the RCODE first).
fn answer_text(message: &Message) -> Vec<String> {
    let mut lines: Vec<String> = message
        .answers
        .iter()
        .map(|r| {
            format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data).to_ascii_lowercase()
        })
        .collect();
    lines.sort();
    lines.insert(0, format!("{:?}", message.metadata.response_code));
    lines
}

/// The zone's SOA serial as `addr` answers it.
async fn serial_at(addr: SocketAddr, zone: &str) -> Option<u32> {
    let response = ask(addr, &format!("{zone}."), RecordType::SOA).await;
    response.answers.iter().find_map(|r| match &r.data {
        hickory_net::proto::rr::RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// Every (name, type) the primary's AXFR of each zone lists, plus names that do not exist.
async fn zone_questions(primary: SocketAddr) -> Vec<(String, RecordType)> {
    let mut out = std::collections::BTreeSet::new();
    for zone in ZONES {
        let listing = dig(primary, &["-y", DIG_KEY, "+noall", "+answer", "AXFR", zone]).await;
        for line in listing.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [name, _ttl, _class, rtype, ..] = fields[..]
                && let Ok(rtype) = rtype.parse::<RecordType>()
            {
                out.insert((name.to_ascii_lowercase(), rtype));
            }
        }
    }
    assert!(out.len() > 100, "the AXFR lists the demo: {out:?}");
    // Names that do not exist, and web-1, which the edits turn into an ordinal slot.
    for missing in [
        "web-1.nginx.demo.svc.cluster.local.",
        "web-9.nginx.demo.svc.cluster.local.",
        "nothing.demo.svc.cluster.local.",
        "99.99.244.10.in-addr.arpa.",
    ] {
        out.insert((missing.to_owned(), RecordType::A));
    }
    out.into_iter().collect()
}

/// Whether `secondary` answers every question as `primary` does; the first difference.
async fn differs(
    primary: SocketAddr,
    secondary: SocketAddr,
    questions: &[(String, RecordType)],
) -> Option<String> {
    for (name, rtype) in questions {
        // Over TCP: a UDP answer too large for 512 bytes is truncated differently by each
        // server (the records that fit here, none in Knot and NSD).
        let question = query(name, *rtype, None);
        let (ours, theirs) = (
            tcp_message(primary, &question).await,
            tcp_message(secondary, &question).await,
        );
        if answer_text(&ours) != answer_text(&theirs) {
            return Some(format!(
                "{name} {rtype}: {:?} vs {:?}",
                answer_text(&ours),
                answer_text(&theirs)
            ));
        }
    }
    None
}

/// Waits until both secondaries carry the server's serial in every zone, then checks that
/// they answer every name as the server does.
async fn followed(
    server: &TestServer,
    primary: SocketAddr,
    secondaries: [&Secondary; 2],
    what: &str,
) {
    let serial = server.handle.serial();
    let addrs = secondaries.map(|s| s.addr);
    let caught_up = eventually(Duration::from_secs(20), || async move {
        for addr in addrs {
            for zone in ZONES {
                if serial_at(addr, zone).await != Some(serial) {
                    return false;
                }
            }
        }
        true
    })
    .await;
    assert!(
        caught_up,
        "{what}: both follow serial {serial}:\n{:#?}",
        secondaries.map(|s| s.log())
    );
    let questions = zone_questions(primary).await;
    for secondary in secondaries {
        let difference = differs(primary, secondary.addr, &questions).await;
        assert_eq!(
            difference, None,
            "{what}: {} answers as headless-dns does",
            secondary.name
        );
    }
}

/// Zone transfers served so far: (incremental, whole zone, AXFR-style IXFR included).
fn transfer_counts(server: &TestServer) -> (u64, u64) {
    let ok = |kind: &str| {
        metric(
            server,
            &format!("headless_dns_transfers_total{{type=\"{kind}\",result=\"ok\"}}"),
        )
    };
    (ok("ixfr"), ok("axfr") + ok("ixfr_axfr"))
}

/// A metric's value in the server's exposition.
fn metric(server: &TestServer, line_start: &str) -> u64 {
    server
        .handle
        .metrics_text()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn knot_and_nsd_follow_every_change_by_notify_and_ixfr() {
    let work = tempfile::tempdir().expect("temp dir");
    let manifests = work.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    for entry in std::fs::read_dir(crate::support::demo_manifests()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, manifests.join(path.file_name().unwrap())).unwrap();
    }
    let (knot_dir, nsd_dir) = (work.path().join("knot"), work.path().join("nsd"));
    std::fs::create_dir(&knot_dir).unwrap();
    std::fs::create_dir(&nsd_dir).unwrap();
    // The secondaries' ports first: the server notifies them from its first load.
    let primary_port = free_port();
    let primary: SocketAddr = ([127, 0, 0, 1], primary_port).into();
    let knot = knot(&knot_dir, primary);
    let nsd = nsd(&nsd_dir, primary);
    let mut config = loopback_config();
    config.listen = vec![primary];
    config.reverse_zones = vec!["10.244.0.0/16".parse().unwrap()];
    config.transfer_allow = vec!["127.0.0.1/32".parse().unwrap()];
    config.tsig_keys = vec![KEY.parse().unwrap()];
    config.notify = vec![knot.addr, nsd.addr];
    config.reload_interval = Duration::from_secs(600);
    let server =
        TestServer::start(config, headless_dns::Source::Manifests(manifests.clone())).await;

    followed(&server, primary, [&knot, &nsd], "the first load").await;

    // Four edits, each carried to both secondaries by NOTIFY and IXFR, not AXFR.
    let (ixfr_before, axfr_before) = transfer_counts(&server);
    let web = manifests.join("web.yaml");
    let edits: [Edit; 4] = [
        (
            "a pod's address",
            Box::new(|| {
                let text = std::fs::read_to_string(&web)
                    .unwrap()
                    .replace("10.244.1.10", "10.244.1.99");
                std::fs::write(&web, text).unwrap();
            }),
        ),
        (
            "a scale-up",
            Box::new(|| {
                let extra = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: nginx-extra, namespace: demo, labels: {kubernetes.io/service-name: nginx}}\naddressType: IPv4\nendpoints:\n- addresses: [10.244.5.13]\n  hostname: web-3\nports: [{name: web, port: 80}]\n";
                std::fs::write(manifests.join("extra.yaml"), extra).unwrap();
            }),
        ),
        (
            "a deleted Service",
            Box::new(|| {
                std::fs::remove_file(manifests.join("extra.yaml")).unwrap();
                std::fs::remove_file(manifests.join("legacy.yaml")).unwrap();
            }),
        ),
        (
            "a pod being replaced (web-1 not ready: its ordinal slot)",
            Box::new(|| {
                let text = std::fs::read_to_string(&web).unwrap().replacen(
                    "\"10.244.2.11\"\n  conditions:\n    ready: true",
                    "\"10.244.2.11\"\n  conditions:\n    ready: false",
                    1,
                );
                std::fs::write(&web, text).unwrap();
            }),
        ),
    ];
    let edits_made = edits.len();
    for (what, edit) in edits {
        let before = server.handle.serial();
        edit();
        let moved = eventually(Duration::from_secs(10), || async {
            server.handle.serial() != before
        })
        .await;
        assert!(moved, "{what}: the server took the edit");
        followed(&server, primary, [&knot, &nsd], what).await;
    }
    // The slot: NODATA from the secondaries too (its `_slot` TXT child keeps the name),
    // never NXDOMAIN.
    for secondary in [&knot, &nsd] {
        let slot = ask(
            secondary.addr,
            "web-1.nginx.demo.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(
            slot.metadata.response_code,
            ResponseCode::NoError,
            "{}",
            secondary.name
        );
        assert!(
            slot.answers.is_empty(),
            "{}: {:?}",
            secondary.name,
            slot.answers
        );
    }
    let moved_address = ask(
        knot.addr,
        "web-0.nginx.demo.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(crate::support::data(&moved_address), ["10.244.1.99"]);
    let gone = ask(nsd.addr, "legacy.demo.svc.cluster.local.", RecordType::A).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
    let (ixfr_after, axfr_after) = transfer_counts(&server);
    // Every edit moves the serial of both zones: two secondaries x two zones per edit.
    assert!(
        ixfr_after - ixfr_before >= (4 * edits_made) as u64,
        "IXFRs: {ixfr_before} -> {ixfr_after}"
    );
    // The only whole-zone transfers after the first load are this test's own `dig AXFR`
    // listings, one per zone after each edit: the secondaries took none.
    assert_eq!(
        axfr_after - axfr_before,
        (ZONES.len() * edits_made) as u64,
        "no whole-zone transfer to a secondary after the first"
    );
    assert!(metric(&server, "headless_dns_notify_acknowledged_total") >= (4 * edits_made) as u64);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn transfers_are_refused_outside_the_allowed_addresses_and_without_the_key() {
    let mut config = loopback_config();
    config.transfer_allow = vec!["127.0.0.1/32".parse().unwrap()];
    config.tsig_keys = vec![KEY.parse().unwrap()];
    let server = TestServer::demo_with(config).await;
    let (wrong_secret, unknown_key) = (
        "hmac-sha256:xfr-key:d3Jvbmcgc2VjcmV0",
        "hmac-sha256:other-key:d3Jvbmcgc2VjcmV0",
    );
    let pod = "web-0.nginx.demo.svc.cluster.local";
    // (what, dig's arguments, what its output must contain, what it must not)
    let cases: [(&str, &[&str], &[&str], &str); 9] = [
        (
            "signed, from an allowed address: the zone",
            &["-y", DIG_KEY, "AXFR", "cluster.local"],
            &[";; XFR size:"],
            "WARNING",
        ),
        (
            "unsigned: refused",
            &["+comments", "AXFR", "cluster.local"],
            &["Transfer failed", "REFUSED"],
            "XFR size",
        ),
        (
            "a wrong secret: BADSIG",
            &["-y", wrong_secret, "AXFR", "cluster.local"],
            &["Transfer failed", "BADSIG"],
            "XFR size",
        ),
        (
            "an unknown key: BADKEY",
            &["-y", unknown_key, "AXFR", "cluster.local"],
            &["Transfer failed", "BADKEY"],
            "XFR size",
        ),
        (
            "signed, from outside --transfer-allow (127.0.0.2): refused",
            &[
                "-b",
                "127.0.0.2",
                "-y",
                DIG_KEY,
                "+comments",
                "AXFR",
                "cluster.local",
            ],
            &["Transfer failed", "REFUSED"],
            "XFR size",
        ),
        // RFC 8945 5.2: any signed query with a key the server does not have.
        (
            "a query signed with an unknown key: NOTAUTH, BADKEY",
            &["-y", unknown_key, pod],
            &["NOTAUTH", "BADKEY"],
            "10.244.1.10",
        ),
        // dig checks the response's signature and says "Couldn't verify" when it fails.
        (
            "a query signed with the key: answered, signed",
            &["-y", DIG_KEY, pod],
            &["10.244.1.10", "TSIG"],
            "Couldn't verify",
        ),
        // IXFR with an old serial over UDP: the SOA alone, with which the client retries
        // over TCP.
        (
            "IXFR over UDP: the SOA alone",
            &[
                "-y",
                DIG_KEY,
                "+notcp",
                "+noall",
                "+answer",
                "IXFR=1",
                "cluster.local",
            ],
            &["\tSOA\t"],
            "web-0",
        ),
        // Over TCP: the whole zone (the journal holds nothing that old).
        (
            "IXFR over TCP from an old serial: the whole zone",
            &["-y", DIG_KEY, "IXFR=1", "cluster.local"],
            &[";; XFR size:", "web-0.nginx"],
            "Transfer failed",
        ),
    ];
    for (what, args, wanted, unwanted) in cases {
        let output = dig(server.addr, args).await;
        for text in wanted {
            assert!(output.contains(text), "{what}: {text:?} in\n{output}");
        }
        assert!(
            !output.contains(unwanted),
            "{what}: no {unwanted:?} in\n{output}"
        );
    }
    // Still answering.
    let after = ask(
        server.addr,
        "web-1.nginx.demo.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(crate::support::data(&after), ["10.244.2.11"]);
    server.handle.shutdown().await;
}
