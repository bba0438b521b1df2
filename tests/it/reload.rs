//! The manifests folder is followed while serving: edits show up, broken edits do not take
//! records away.

use std::path::Path;
use std::time::Duration;

use hickory_net::proto::op::ResponseCode;
use hickory_net::proto::rr::RecordType;

use crate::support::{Binary, TestServer, ask, data, eventually, loopback_config};

fn copy_demo_file(dir: &Path, name: &str) {
    let from = crate::support::demo_manifests().join(name);
    std::fs::copy(&from, dir.join(name)).expect("copy demo manifest");
}

/// Writes a file the way editors and `kubectl` tooling do: a new file renamed into place.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test]
async fn an_edit_changes_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo_file(dir.path(), "web.yaml");
    let mut config = loopback_config();
    // Long enough that only the file event can explain a quick reload.
    config.reload_interval = Duration::from_secs(600);
    let server = TestServer::start(
        config,
        headless_dns::Source::Manifests(dir.path().to_owned()),
    )
    .await;
    let name = "web-0.nginx.demo.svc.cluster.local.";
    assert_eq!(
        data(&server.ask(name, RecordType::A).await),
        ["10.244.1.10"]
    );

    let path = dir.path().join("web.yaml");
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("10.244.1.10", "10.244.1.99");
    replace_file(&path, &edited);
    let addr = server.addr;
    let changed = eventually(Duration::from_secs(10), || async move {
        data(&ask(addr, name, RecordType::A).await) == ["10.244.1.99"]
    })
    .await;
    assert!(
        changed,
        "the edit was not served within 10 s: {:?}\n{}",
        data(&ask(addr, name, RecordType::A).await),
        server.handle.metrics_text()
    );

    // A new file adds a Service; removing it takes the Service away.
    let extra = dir.path().join("extra.yaml");
    std::fs::write(&extra, "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: demo}\nspec: {clusterIP: 10.96.0.99}\n").unwrap();
    let added = eventually(Duration::from_secs(10), || async move {
        data(&ask(addr, "extra.demo.svc.cluster.local.", RecordType::A).await) == ["10.96.0.99"]
    })
    .await;
    assert!(added);
    std::fs::remove_file(&extra).unwrap();
    let removed = eventually(Duration::from_secs(10), || async move {
        ask(addr, "extra.demo.svc.cluster.local.", RecordType::A)
            .await
            .metadata
            .response_code
            == ResponseCode::NXDomain
    })
    .await;
    assert!(removed);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn periodic_check_catches_changes_without_events() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::copy(crate::support::demo_manifests().join("web.yaml"), &file).unwrap();
    let mut config = loopback_config();
    config.reload_interval = Duration::from_millis(200);
    // Point at the file itself; the watcher watches its folder.
    let server = TestServer::start(config, headless_dns::Source::Manifests(file.clone())).await;
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace("10.244.2.11", "10.244.2.77");
    std::fs::write(&file, edited).unwrap();
    let addr = server.addr;
    let changed = eventually(Duration::from_secs(10), || async move {
        data(&ask(addr, "web-1.nginx.demo.svc.cluster.local.", RecordType::A).await)
            == ["10.244.2.77"]
    })
    .await;
    assert!(changed);
    server.handle.shutdown().await;
}

#[tokio::test]
async fn a_broken_file_keeps_its_last_good_records_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo_file(dir.path(), "web.yaml");
    let binary = Binary::start(
        &[
            "--manifests",
            dir.path().to_str().unwrap(),
            "--reload-interval",
            "200ms",
        ],
        &[],
    )
    .await;
    let addr = binary.addr;
    let name = "web-0.nginx.demo.svc.cluster.local.";
    assert_eq!(data(&ask(addr, name, RecordType::A).await), ["10.244.1.10"]);

    // Half-written: the second document is cut mid-way and its IP is bad.
    let path = dir.path().join("web.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    let broken = good.replace("10.244.1.10", "10.244.1.300");
    replace_file(&path, &broken);
    // A second file proves a reload happened after the broken write.
    std::fs::write(dir.path().join("marker.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: marker, namespace: demo}\nspec: {clusterIP: 10.96.0.98}\n").unwrap();
    let reloaded = eventually(Duration::from_secs(10), || async move {
        data(&ask(addr, "marker.demo.svc.cluster.local.", RecordType::A).await) == ["10.96.0.98"]
    })
    .await;
    assert!(reloaded);
    assert_eq!(
        data(&ask(addr, name, RecordType::A).await),
        ["10.244.1.10"],
        "last good records stay"
    );
    let log = binary.stop().await;
    assert!(log.contains("web.yaml"), "{log}");
    assert!(
        log.contains("document=3"),
        "the bad document is named: {log}"
    );
    assert!(log.contains("EndpointSlice demo/nginx-7x2kq"), "{log}");
    assert!(log.contains("keeping its last good objects"), "{log}");
}

#[tokio::test]
async fn an_unreadable_file_or_a_deleted_folder_keeps_the_records() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    copy_demo_file(&dir, "web.yaml");
    let binary = Binary::start(
        &[
            "--manifests",
            dir.to_str().unwrap(),
            "--reload-interval",
            "200ms",
        ],
        &[],
    )
    .await;
    let addr = binary.addr;
    let name = "web-0.nginx.demo.svc.cluster.local.";
    assert_eq!(data(&ask(addr, name, RecordType::A).await), ["10.244.1.10"]);

    // The file becomes unreadable (a dangling symlink: root reads through permissions).
    let good = std::fs::read_to_string(dir.join("web.yaml")).unwrap();
    std::fs::remove_file(dir.join("web.yaml")).unwrap();
    std::os::unix::fs::symlink(dir.join("gone.yaml.target"), dir.join("web.yaml")).unwrap();
    std::fs::write(dir.join("marker.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: marker, namespace: demo}\nspec: {clusterIP: 10.96.0.98}\n").unwrap();
    let reloaded = eventually(Duration::from_secs(10), || async move {
        data(&ask(addr, "marker.demo.svc.cluster.local.", RecordType::A).await) == ["10.96.0.98"]
    })
    .await;
    assert!(reloaded, "{}", binary.log());
    assert_eq!(data(&ask(addr, name, RecordType::A).await), ["10.244.1.10"]);

    // The whole folder disappears (a ConfigMap volume remounted, a checkout switched).
    std::fs::remove_dir_all(&dir).unwrap();
    let noticed = eventually(Duration::from_secs(10), || async {
        binary
            .log()
            .contains("manifests unreadable; serving the last good records")
    })
    .await;
    assert!(noticed, "{}", binary.log());
    assert_eq!(data(&ask(addr, name, RecordType::A).await), ["10.244.1.10"]);
    assert_eq!(
        data(&ask(addr, "marker.demo.svc.cluster.local.", RecordType::A).await),
        ["10.96.0.98"]
    );

    // It comes back with an edit: followed again.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("web.yaml"),
        good.replace("10.244.1.10", "10.244.1.77"),
    )
    .unwrap();
    let followed = eventually(Duration::from_secs(10), || async move {
        data(&ask(addr, name, RecordType::A).await) == ["10.244.1.77"]
    })
    .await;
    assert!(followed, "{}", binary.log());
    let log = binary.stop().await;
    assert!(log.contains("cannot read manifest file"), "{log}");
}
