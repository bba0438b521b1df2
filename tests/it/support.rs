//! Starting servers and asking them questions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use headless_dns::{Config, ServerHandle, Source, start};
use hickory_net::client::{Client, ClientHandle};
use hickory_net::proto::op::{Edns, Message, Query};
use hickory_net::proto::rr::{DNSClass, Name, RecordType};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The demo cluster shipped in config/.
pub fn demo_manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// A Kubernetes object (k8s-openapi type) from its JSON.
pub fn object<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).expect("test object")
}

/// A configuration on a free loopback port.
pub fn loopback_config() -> Config {
    Config {
        listen: vec!["127.0.0.1:0".parse().expect("literal address")],
        ..Config::default()
    }
}

/// A running server and where to ask it.
pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
}

impl TestServer {
    pub async fn start(config: Config, source: Source) -> Self {
        let handle = start(config, source).await.expect("server starts");
        let addr = handle.local_addrs()[0];
        Self { handle, addr }
    }

    /// The demo cluster with the default configuration.
    pub async fn demo() -> Self {
        Self::demo_with(loopback_config()).await
    }

    /// The demo cluster with `config`.
    pub async fn demo_with(config: Config) -> Self {
        Self::start(config, Source::Manifests(demo_manifests())).await
    }

    /// Asks with hickory's client over UDP (with EDNS, as the client does by default).
    pub async fn ask(&self, name: &str, rtype: RecordType) -> Message {
        ask(self.addr, name, rtype).await
    }
}

pub async fn ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(3)))
        .build();
    let (mut client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    let name = Name::from_str(name).expect("test name parses");
    let response = client
        .query(name, DNSClass::IN, rtype)
        .await
        .expect("hickory client gets an answer");
    response.into_message()
}

/// A query message; `edns` is the advertised UDP payload size.
pub fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut message = Message::query();
    message.metadata.id = 0x4242;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_str(name).expect("test name"),
        rtype,
    ));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        message.set_edns(e);
    }
    message
}

pub fn encode(message: &Message) -> Vec<u8> {
    message.to_vec().expect("test query encodes")
}

/// Sends raw bytes over UDP; the response, or `None` when none came within a second.
pub async fn udp_exchange(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    socket.send_to(bytes, addr).await.expect("send");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

pub async fn udp_message(addr: SocketAddr, message: &Message) -> Message {
    let bytes = udp_exchange(addr, &encode(message))
        .await
        .expect("a UDP response");
    Message::from_vec(&bytes).expect("response parses")
}

/// Writes one framed message on a TCP stream.
pub async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("fits a frame");
    stream.write_all(&len.to_be_bytes()).await.expect("write");
    stream.write_all(bytes).await.expect("write");
}

/// Reads one framed message from a TCP stream.
pub async fn tcp_receive(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut len))
        .await
        .expect("response in time")
        .expect("read length");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await.expect("read body");
    body
}

pub async fn tcp_message(addr: SocketAddr, message: &Message) -> Message {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    tcp_send(&mut stream, &encode(message)).await;
    Message::from_vec(&tcp_receive(&mut stream).await).expect("response parses")
}

/// The answer section as text, one `name type data` line per record.
pub fn answers(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

/// Just the data of each answer.
pub fn data(message: &Message) -> Vec<String> {
    message.answers.iter().map(|r| r.data.to_string()).collect()
}

/// Runs an external client. Fails with an install hint when it is missing: .ci/run
/// installs them (dnsutils, busybox, unbound).
pub async fn run(program: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} timed out"))
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e}. Install it (`bash .ci/run` installs dnsutils, busybox, unbound)")
        });
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

/// `dig` against `addr` with `args`.
pub async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let server = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let mut all = vec![server.as_str(), "-p", port.as_str(), "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    run("dig", &all).await
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary, started on a free loopback port.
pub struct Binary {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    /// Where /healthz, /readyz and /metrics are served (unless the test said `--http off`).
    pub http: Option<SocketAddr>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Binary {
    /// Starts `headless-dns` with `args` (plus `--listen 127.0.0.1:0`, and `--http
    /// 127.0.0.1:0` unless `args` has `--http`) and waits until it says where it serves.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"));
        command
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--log", "info"])
            .args(
                if args
                    .iter()
                    .any(|a| *a == "--http" || a.starts_with("--http="))
                {
                    &[][..]
                } else {
                    &["--http", "127.0.0.1:0"][..]
                },
            )
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(tx) = addr_tx.take_if(|_| line.contains("serving DNS over UDP")) {
                    let addr = line
                        .split("addrs=[")
                        .nth(1)
                        .and_then(|rest| rest.split(']').next())
                        .and_then(|a| a.split(',').next())
                        .and_then(|a| a.trim().parse::<SocketAddr>().ok());
                    let _ = tx.send(addr);
                }
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(20), addr_rx)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let Some(addr) = addr else {
            let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
            panic!("the binary did not start serving: {log}");
        };
        // The HTTP line is logged before the DNS one.
        let http = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines()
            .find(|l| l.contains("serving /healthz"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse::<SocketAddr>().ok());
        Self {
            child,
            addr,
            http,
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGTERM, then the exit code (within 5 s) and the log.
    pub async fn terminate(self) -> (Option<i32>, String) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.wait_exit(Duration::from_secs(5)).await
    }

    /// The exit code and the log once the binary exits (within `limit`).
    pub async fn wait_exit(mut self, limit: Duration) -> (Option<i32>, String) {
        let exit = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("exits within {limit:?}"))
            .expect("wait");
        // Let the log reader drain.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (exit.code(), self.log())
    }

    /// Stops the binary and returns its log.
    pub async fn stop(self) -> String {
        self.terminate().await.1
    }
}

/// A query built byte by byte (RD set, no EDNS), the name's case kept exactly.
pub fn raw_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    msg
}

/// Polls `check` every 20 ms until it holds or `limit` passes, without a runtime.
pub fn eventually_blocking(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// `GET path` over HTTP/1.1 on loopback: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("HTTP connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("HTTP write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("HTTP read");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("HTTP response in time");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// unbound, the resolver, on a free loopback port: a forwarding or stub resolver the way a
/// CoreDNS stub domain forwards a zone. Stopped when dropped.
pub struct Unbound {
    pub addr: SocketAddr,
    /// Its configuration and working folder, removed when it stops.
    _dir: tempfile::TempDir,
    _process: tokio::process::Child,
}

impl Unbound {
    /// Starts unbound with `server` lines added to its `server:` section (indented) and
    /// `zones` (stub-zone and forward-zone sections) after it.
    pub fn start(server: &str, zones: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = format!(
            r#"server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    rrset-roundrobin: no
    do-not-query-localhost: no
{server}
{zones}
remote-control:
    control-enable: no
"#,
            dir = dir.path().display()
        );
        let conf_path = dir.path().join("unbound.conf");
        std::fs::write(&conf_path, conf).expect("write unbound.conf");
        let process = tokio::process::Command::new("unbound")
            .args(["-d", "-c", conf_path.to_str().expect("UTF-8 path")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("unbound runs (`bash .ci/run` installs it)");
        Self {
            addr: ([127, 0, 0, 1], port).into(),
            _dir: dir,
            _process: process,
        }
    }
}

/// Sends `query` over a new TCP connection and returns the response's bytes.
pub async fn tcp_exchange(addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    tcp_send(&mut stream, query).await;
    tcp_receive(&mut stream).await
}

/// knotd following `masters` for `zones`, without keys, listening on `port`, in `dir`
/// (its log is `knot.log` there). Stopped when dropped.
pub fn knot(
    dir: &Path,
    port: u16,
    masters: &[SocketAddr],
    zones: &[&str],
) -> tokio::process::Child {
    let remotes: String = masters
        .iter()
        .enumerate()
        .map(|(i, m)| format!("  - id: r{i}\n    address: {}@{}\n", m.ip(), m.port()))
        .collect();
    let ids: Vec<String> = (0..masters.len()).map(|i| format!("r{i}")).collect();
    let conf = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n    automatic-acl: on\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: {d}\n\
         remote:\n{remotes}\
         template:\n  - id: default\n    storage: {d}\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: none\n\
         zone:\n{zones}",
        d = dir.display(),
        zones = zones
            .iter()
            .map(|z| format!("  - domain: {z}\n    master: [{}]\n", ids.join(", ")))
            .collect::<String>(),
    );
    let path = dir.join("knot.conf");
    std::fs::write(&path, conf).expect("knot.conf");
    let log = std::fs::File::create(dir.join("knot.log")).expect("log");
    tokio::process::Command::new("knotd")
        .args(["-c", path.to_str().expect("UTF-8")])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("knotd runs (`bash .ci/run` installs knot)")
}
