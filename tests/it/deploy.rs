//! The deploy/ folder is what a cluster admin applies: every YAML document in it must be an
//! object `kubectl apply` accepts, with no misspelt field silently dropped, the
//! kustomization must list files that exist, and the security choices deploy/README.md
//! promises must hold in the typed objects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Pod, PodSpec, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The namespace every namespaced object of the installation lives in.
const NAMESPACE: &str = "headless-dns";

/// The one kustomization file, parsed as a generic value rather than a Kubernetes object.
const KUSTOMIZATION: &str = "kustomization.yaml";

/// One document of a file under deploy/, typed.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a dozen documents, read once per test"
)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(k8s_openapi::api::rbac::v1::Role),
    RoleBinding(k8s_openapi::api::rbac::v1::RoleBinding),
    Deployment(Deployment),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    ConfigMap(ConfigMap),
    Pod(Pod),
    Certificate(Certificate),
}

/// A cert-manager Certificate (cert-manager.io/v1), the fields the example uses: k8s-openapi
/// has no type for it.
#[derive(Debug, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Certificate {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: CertificateSpec,
}

#[derive(Debug, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertificateSpec {
    secret_name: String,
    dns_names: Vec<String>,
    ip_addresses: Vec<String>,
    duration: String,
    renew_before: String,
    private_key: Value,
    usages: Vec<String>,
    issuer_ref: Value,
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ClusterRole(_) => "ClusterRole",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Pod(_) => "Pod",
            Object::Certificate(_) => "Certificate",
        }
    }
}

/// A typed document and where it came from.
#[derive(Debug)]
struct Document {
    /// The file, relative to deploy/ (`examples/busybox.yaml`).
    file: PathBuf,
    /// 1-based index of the document in its file.
    index: usize,
    object: Object,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The .yaml and .yml files under `dir`, recursively, in path order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every typed document under deploy/; panics listing every file, document and field that
/// is wrong, and every problem of the kustomization.
fn documents() -> Vec<Document> {
    let root = deploy_dir();
    let files = yaml_files(&root);
    assert!(!files.is_empty(), "no YAML file under {}", root.display());
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let file = path.strip_prefix(&root).expect("under deploy/").to_owned();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if path.file_name().is_some_and(|n| n == KUSTOMIZATION) {
            errors.extend(
                check_kustomization(&path, &text)
                    .into_iter()
                    .map(|e| format!("{}: {e}", file.display())),
            );
            continue;
        }
        for (i, doc) in headless_dns::source::manifests::split_yaml(&text)
            .into_iter()
            .enumerate()
        {
            let index = i + 1;
            let parsed = serde_saphyr::from_str::<Value>(doc)
                .map_err(|e| format!("invalid YAML: {e}"))
                .and_then(|value| object_of(&value).map_err(|e| format!("{}: {e}", label(&value))));
            match parsed {
                Ok(object) => documents.push(Document {
                    file: file.clone(),
                    index,
                    object,
                }),
                Err(e) => errors.push(format!("{} document {index}: {e}", file.display())),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "deploy/ has invalid files:\n  {}",
        errors.join("\n  ")
    );
    documents
}

/// `Kind namespace/name` of a document, for messages.
fn label(value: &Value) -> String {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("?").to_owned();
    let meta = value.get("metadata");
    format!(
        "{} {}/{}",
        text(value.get("kind")),
        text(meta.and_then(|m| m.get("namespace"))),
        text(meta.and_then(|m| m.get("name")))
    )
}

/// The typed object of one document, chosen by apiVersion and kind.
fn object_of(value: &Value) -> Result<Object, String> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
    match (field("apiVersion"), field("kind")) {
        ("v1", "Namespace") => typed(value).map(Object::Namespace),
        ("v1", "ServiceAccount") => typed(value).map(Object::ServiceAccount),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => typed(value).map(Object::ClusterRole),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            typed(value).map(Object::ClusterRoleBinding)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => typed(value).map(Object::Role),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => typed(value).map(Object::RoleBinding),
        ("apps/v1", "Deployment") => typed(value).map(Object::Deployment),
        ("v1", "Service") => typed(value).map(Object::Service),
        ("policy/v1", "PodDisruptionBudget") => typed(value).map(Object::PodDisruptionBudget),
        ("v1", "ConfigMap") => typed(value).map(Object::ConfigMap),
        ("v1", "Pod") => typed(value).map(Object::Pod),
        ("cert-manager.io/v1", "Certificate") => typed(value).map(Object::Certificate),
        (api_version, kind) => Err(format!(
            "apiVersion {api_version:?} kind {kind:?} is not a kind this test knows (add it to object_of)"
        )),
    }
}

/// Deserialises into a k8s-openapi type, naming the path of a bad field. k8s-openapi
/// ignores unknown fields, so the object is serialised again and every key of the input
/// must still be there: a misspelt `readinesProbe` is reported, not dropped. Only key
/// paths are compared, since values may be written differently (`8080` vs `"8080"`).
fn typed<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let object: T = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    let again = serde_json::to_value(&object).map_err(|e| format!("cannot serialise: {e}"))?;
    let mut unknown = Vec::new();
    unknown_keys(value, &again, "", &mut unknown);
    if unknown.is_empty() {
        Ok(object)
    } else {
        Err(format!("unknown field (misspelt?): {}", unknown.join(", ")))
    }
}

/// Pushes the path of every key of `original` that `typed` (the same object deserialised
/// and serialised again) lacks. A key whose value is `null` may be dropped: it means unset.
fn unknown_keys(original: &Value, typed: &Value, path: &str, unknown: &mut Vec<String>) {
    match original {
        Value::Object(map) => {
            for (key, value) in map {
                let here = format!("{path}.{key}");
                match typed.get(key) {
                    Some(typed) => unknown_keys(value, typed, &here, unknown),
                    None if value.is_null() => {}
                    None => unknown.push(here),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let here = format!("{path}[{i}]");
                match typed.get(i) {
                    Some(typed) => unknown_keys(item, typed, &here, unknown),
                    None => unknown.push(here),
                }
            }
        }
        _ => {}
    }
}

/// Problems of a kustomization: its `resources` must be files next to it, and must be
/// exactly the manifests in its folder (examples/ below it is not applied).
fn check_kustomization(path: &Path, text: &str) -> Vec<String> {
    let value: Value = match serde_saphyr::from_str(text) {
        Ok(value) => value,
        Err(e) => return vec![format!("invalid YAML: {e}")],
    };
    let mut errors = Vec::new();
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
    // The base is a Kustomization of resources; a component (an opt-in change an overlay
    // adds) is a Component of patches and resources.
    let component = match (field("apiVersion"), field("kind")) {
        ("kustomize.config.k8s.io/v1beta1", "Kustomization") => false,
        ("kustomize.config.k8s.io/v1alpha1", "Component") => true,
        _ => {
            errors.push("apiVersion/kind is neither kustomize.config.k8s.io/v1beta1 Kustomization nor v1alpha1 Component".into());
            return errors;
        }
    };
    let resources = value.get("resources").and_then(Value::as_array);
    let patches = value.get("patches").and_then(Value::as_array);
    if resources.is_none() && !(component && patches.is_some()) {
        errors.push("resources is missing or not a list".into());
        return errors;
    }
    let mut names: Vec<(String, Option<&str>)> = Vec::new();
    for (i, resource) in resources.into_iter().flatten().enumerate() {
        names.push((format!("resources[{i}]"), resource.as_str()));
    }
    for (i, patch) in patches.into_iter().flatten().enumerate() {
        names.push((
            format!("patches[{i}].path"),
            patch.get("path").and_then(Value::as_str),
        ));
    }
    let dir = path.parent().expect("a file has a folder");
    let mut listed = BTreeSet::new();
    for (field, name) in names {
        let Some(name) = name else {
            errors.push(format!("{field} is not a string"));
            continue;
        };
        if !dir.join(name).is_file() {
            errors.push(format!("{field}: {name} is not a file in deploy/"));
        }
        if !listed.insert(name.to_owned()) {
            errors.push(format!("{field}: {name} is listed twice"));
        }
    }
    let manifests: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("the kustomization's folder")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .filter(|name| name != KUSTOMIZATION)
        .collect();
    for name in manifests.difference(&listed) {
        errors.push(format!("{name} is not listed in resources or patches"));
    }
    errors
}

/// Whether a document is a component's patch (a partial object an overlay may add), not
/// one of the objects the base applies.
fn is_patch(document: &Document) -> bool {
    document.file.starts_with("components")
}

/// The one object that `pick` selects; panics unless there is exactly one.
fn only<'a, T>(
    documents: &'a [Document],
    what: &str,
    pick: impl Fn(&'a Object) -> Option<&'a T>,
) -> &'a T {
    let found: Vec<(&Document, &T)> = documents
        .iter()
        .filter(|d| !is_patch(d))
        .filter_map(|d| pick(&d.object).map(|t| (d, t)))
        .collect();
    match found.as_slice() {
        [(_, one)] => one,
        _ => panic!(
            "expected exactly one {what} in deploy/, found {}: {:?}",
            found.len(),
            found
                .iter()
                .map(|(d, _)| format!("{} document {}", d.file.display(), d.index))
                .collect::<Vec<_>>()
        ),
    }
}

fn deployment(documents: &[Document]) -> &Deployment {
    only(documents, "Deployment", |o| match o {
        Object::Deployment(d) => Some(d),
        _ => None,
    })
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod template spec")
}

fn container(deployment: &Deployment) -> &Container {
    match pod_spec(deployment).containers.as_slice() {
        [one] => one,
        other => panic!("expected one container, found {}", other.len()),
    }
}

fn config_map<'a>(documents: &'a [Document], namespace: &str, name: &str) -> &'a ConfigMap {
    only(
        documents,
        &format!("ConfigMap {namespace}/{name}"),
        |o| match o {
            Object::ConfigMap(c)
                if c.metadata.namespace.as_deref() == Some(namespace)
                    && c.metadata.name.as_deref() == Some(name) =>
            {
                Some(c)
            }
            _ => None,
        },
    )
}

/// The port number a Service `targetPort` or probe `port` means in `container`.
fn container_port(container: &Container, port: &IntOrString, protocol: &str) -> Option<i32> {
    container
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|p| {
            let same_protocol = p.protocol.as_deref().unwrap_or("TCP") == protocol;
            let matches = match port {
                IntOrString::Int(n) => p.container_port == *n,
                IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
            };
            (same_protocol && matches).then_some(p.container_port)
        })
}

fn http_get_path(probe: Option<&Probe>) -> Option<&str> {
    probe?.http_get.as_ref()?.path.as_deref()
}

/// The port of a `--flag=ADDR:PORT` argument.
fn flag_port(container: &Container, flag: &str) -> Option<i32> {
    let prefix = format!("{flag}=");
    container
        .args
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|a| a.strip_prefix(&prefix))
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
}

/// The lines inside the Corefile server block whose key starts with `zone`, plugin blocks
/// such as `health { ... }` included, comment lines left out. `None` when there is no such
/// block or it is never closed.
fn server_block<'a>(corefile: &'a str, zone: &str) -> Option<Vec<&'a str>> {
    let mut lines = corefile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'));
    lines.find(|l| l.starts_with(zone) && l.ends_with('{'))?;
    let mut depth = 1;
    let mut block = Vec::new();
    for line in lines {
        depth += line.matches('{').count() as isize;
        depth -= line.matches('}').count() as isize;
        if depth <= 0 {
            return Some(block);
        }
        block.push(line);
    }
    None
}

#[test]
fn every_deploy_file_parses_into_its_kubernetes_type() {
    let documents = documents();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        let count = documents
            .iter()
            .filter(|d| !d.file.starts_with("examples") && !is_patch(d))
            .filter(|d| d.object.kind() == kind)
            .count();
        assert_eq!(count, 1, "deploy/ should hold one {kind}");
    }
}

#[test]
fn misspelt_fields_are_reported_with_their_path() {
    let value = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"spec": {"containers": [{
                "name": "x",
                "readinesProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
                "resources": {"limits": {"memory": "256Mi"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}}
            }]}}
        }
    });
    let error = typed::<Deployment>(&value).expect_err("a misspelt field");
    assert_eq!(
        error,
        "unknown field (misspelt?): .spec.template.spec.containers[0].readinesProbe"
    );
    let error = object_of(&serde_json::json!({"apiVersion": "v1", "kind": "Secret"}))
        .expect_err("an unknown kind");
    assert!(error.contains("\"Secret\""), "{error}");
    let error = typed::<Service>(&serde_json::json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {},
        "spec": {"ports": [{"port": "fifty-three"}]}
    }))
    .expect_err("a bad value");
    assert!(error.starts_with("spec.ports[0].port: "), "{error}");
}

#[test]
fn cluster_role_only_reads_the_watched_kinds() {
    let documents = documents();
    let role = only(&documents, "ClusterRole", |o| match o {
        Object::ClusterRole(r) => Some(r),
        _ => None,
    });
    assert!(role.aggregation_rule.is_none(), "no aggregated permissions");
    let mut granted = BTreeSet::new();
    for rule in role.rules.as_deref().unwrap_or_default() {
        assert!(
            rule.non_resource_urls.is_none(),
            "no non-resource URLs: {rule:?}"
        );
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.as_str(), resource.as_str(), verb.as_str()));
                }
            }
        }
    }
    let watched = [
        ("", "services"),
        ("", "endpoints"),
        ("discovery.k8s.io", "endpointslices"),
        ("apps", "statefulsets"),
    ];
    let expected: BTreeSet<(&str, &str, &str)> = watched
        .iter()
        .flat_map(|&(group, resource)| ["get", "list", "watch"].map(|verb| (group, resource, verb)))
        .collect();
    assert_eq!(
        granted, expected,
        "get/list/watch on the watched kinds, nothing else"
    );
}

#[test]
fn the_service_account_is_bound_and_used() {
    let documents = documents();
    let account = only(&documents, "ServiceAccount", |o| match o {
        Object::ServiceAccount(a) => Some(a),
        _ => None,
    });
    let role = only(&documents, "ClusterRole", |o| match o {
        Object::ClusterRole(r) => Some(r),
        _ => None,
    });
    let binding = only(&documents, "ClusterRoleBinding", |o| match o {
        Object::ClusterRoleBinding(b) => Some(b),
        _ => None,
    });
    assert_eq!(account.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects: Vec<(&str, &str, Option<&str>)> = binding
        .subjects
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()))
        .collect();
    let name = account
        .metadata
        .name
        .as_deref()
        .expect("ServiceAccount name");
    assert_eq!(subjects, [("ServiceAccount", name, Some(NAMESPACE))]);
    let pod = pod_spec(deployment(&documents));
    assert_eq!(pod.service_account_name.as_deref(), Some(name));
    assert_eq!(pod.automount_service_account_token, Some(true));
}

#[test]
fn the_deployment_runs_locked_down() {
    let documents = documents();
    let deployment = deployment(&documents);
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let pod = pod_spec(deployment);
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(pod.host_pid, Some(true));
    // One volume: the emptyDir --snapshot writes to (the root filesystem is read-only),
    // mounted where the flag points.
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert!(volumes[0].empty_dir.is_some(), "an emptyDir: {volumes:?}");
    let mounts = container(deployment)
        .volume_mounts
        .as_deref()
        .unwrap_or_default();
    let mount = mounts
        .iter()
        .find(|m| m.name == volumes[0].name)
        .expect("the volume is mounted");
    let args = container(deployment).args.as_deref().unwrap_or_default();
    let snapshot = args
        .iter()
        .find_map(|a| a.strip_prefix("--snapshot="))
        .expect("--snapshot is set");
    assert!(
        snapshot.starts_with(&format!("{}/", mount.mount_path)),
        "{snapshot} in {}",
        mount.mount_path
    );
    // The Service of the same name would otherwise put HEADLESS_DNS_* variables in the pod.
    assert_eq!(pod.enable_service_links, Some(false));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));

    let container = container(deployment);
    let security = container
        .security_context
        .as_ref()
        .expect("securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(65532));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_ne!(security.privileged, Some(true));
    let capabilities = security.capabilities.as_ref().expect("capabilities");
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(
        capabilities.add.as_deref().unwrap_or_default().is_empty(),
        "no capability added"
    );
    assert_eq!(
        security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );

    let resources = container.resources.as_ref().expect("resources");
    let requests = resources.requests.as_ref().expect("requests");
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    assert!(
        resources
            .limits
            .as_ref()
            .is_some_and(|l| l.contains_key("memory"))
    );

    assert_eq!(
        http_get_path(container.readiness_probe.as_ref()),
        Some("/readyz")
    );
    assert_eq!(
        http_get_path(container.liveness_probe.as_ref()),
        Some("/healthz")
    );
    // The probes reach the port --http serves, and the DNS ports are the --listen port.
    let http = flag_port(container, "--http").expect("--http=ADDR:PORT in args");
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let port = &probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("httpGet")
            .port;
        assert_eq!(
            container_port(container, port, "TCP"),
            Some(http),
            "{port:?}"
        );
    }
    let dns = flag_port(container, "--listen").expect("--listen=ADDR:PORT in args");
    for protocol in ["UDP", "TCP"] {
        assert_eq!(
            container_port(container, &IntOrString::Int(dns), protocol),
            Some(dns),
            "container port {dns}/{protocol}"
        );
    }
}

#[test]
fn service_and_budget_select_the_deployment_pods() {
    let documents = documents();
    let deployment = deployment(&documents);
    let container = container(deployment);
    let pod_labels = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selects = |selector: &BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
    };

    let service = only(&documents, "Service", |o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    assert_eq!(service.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = service.spec.as_ref().expect("Service spec");
    assert!(selects(spec.selector.as_ref().expect("selector")));
    let mut served = BTreeSet::new();
    for port in spec.ports.as_deref().unwrap_or_default() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        assert!(
            container_port(container, &target, protocol).is_some(),
            "Service port {:?} -> {target:?}/{protocol} is no container port",
            port.name
        );
        served.insert((port.name.as_deref().unwrap_or(""), port.port, protocol));
    }
    for expected in [
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 8080, "TCP"),
    ] {
        assert!(served.contains(&expected), "Service port {expected:?}");
    }

    let budget = only(&documents, "PodDisruptionBudget", |o| match o {
        Object::PodDisruptionBudget(b) => Some(b),
        _ => None,
    });
    assert_eq!(budget.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = budget.spec.as_ref().expect("PodDisruptionBudget spec");
    assert_eq!(spec.min_available, Some(IntOrString::Int(1)));
    let selector = spec.selector.as_ref().and_then(|s| s.match_labels.as_ref());
    assert!(selects(selector.expect("matchLabels")));

    let namespace = only(&documents, "Namespace", |o| match o {
        Object::Namespace(n) => Some(n),
        _ => None,
    });
    assert_eq!(namespace.metadata.name.as_deref(), Some(NAMESPACE));
}

#[test]
fn stub_domain_examples_forward_to_headless_dns() {
    let documents = documents();
    let coredns = config_map(&documents, "kube-system", "coredns");
    let corefile = coredns
        .data
        .as_ref()
        .and_then(|d| d.get("Corefile"))
        .expect("coredns ConfigMap has a Corefile");

    let stub = server_block(corefile, "sts.example.internal").expect("sts.example.internal block");
    let forward: Vec<&str> = stub
        .iter()
        .filter_map(|l| l.strip_prefix("forward . "))
        .collect();
    let [upstream] = forward.as_slice() else {
        panic!("one `forward . <ip>` in the stub block: {stub:?}");
    };
    assert!(upstream.parse::<std::net::IpAddr>().is_ok(), "{upstream}");
    for cache in stub.iter().filter_map(|l| l.strip_prefix("cache ")) {
        let seconds: u32 = cache.parse().expect("cache <seconds>");
        assert!(
            seconds <= 5,
            "cache {seconds}s outlives headless-dns's 5s TTL"
        );
    }

    // The default block stays, so the ConfigMap is a complete drop-in.
    let default = server_block(corefile, ".:53").expect("the default .:53 block");
    for plugin in [
        "kubernetes cluster.local in-addr.arpa ip6.arpa",
        "forward . /etc/resolv.conf",
        "prometheus :9153",
        "loop",
        "reload",
    ] {
        assert!(
            default.iter().any(|l| l.starts_with(plugin)),
            "{plugin} in .:53"
        );
    }

    // kube-dns: the same zone to the same address.
    let kube_dns = config_map(&documents, "kube-system", "kube-dns");
    let stub_domains = kube_dns
        .data
        .as_ref()
        .and_then(|d| d.get("stubDomains"))
        .expect("kube-dns ConfigMap has stubDomains");
    let stub_domains: BTreeMap<String, Vec<String>> =
        serde_json::from_str(stub_domains).expect("stubDomains is a JSON map of zone to addresses");
    assert_eq!(
        stub_domains.get("sts.example.internal").map(Vec::as_slice),
        Some(&[upstream.to_string()][..])
    );
}

#[test]
fn busybox_example_stays_up_to_exec_into() {
    let documents = documents();
    let pod = only(&documents, "Pod", |o| match o {
        Object::Pod(p) => Some(p),
        _ => None,
    });
    let spec = pod.spec.as_ref().expect("Pod spec");
    let [container] = spec.containers.as_slice() else {
        panic!("one container in the busybox pod");
    };
    assert_eq!(container.image.as_deref(), Some("busybox:1.28"));
    assert_eq!(
        container.command.as_deref(),
        Some(&["sleep".to_owned(), "3600".to_owned()][..])
    );
}

#[test]
fn the_base_needs_no_recent_api_server_and_the_eviction_policy_is_opt_in() {
    let documents = documents();
    let budget = only(&documents, "PodDisruptionBudget", |o| match o {
        Object::PodDisruptionBudget(b) => Some(b),
        _ => None,
    });
    let spec = budget.spec.as_ref().expect("PodDisruptionBudget spec");
    // An API server before 1.26 rejects the field: `kubectl apply -k deploy/` must not
    // carry it.
    assert_eq!(spec.unhealthy_pod_eviction_policy, None);
    let patch = documents
        .iter()
        .filter(|d| is_patch(d))
        .find_map(|d| match &d.object {
            Object::PodDisruptionBudget(p) => Some(p),
            _ => None,
        })
        .expect("a component patches the PodDisruptionBudget");
    assert_eq!(
        (
            patch.metadata.name.as_deref(),
            patch.metadata.namespace.as_deref()
        ),
        (
            budget.metadata.name.as_deref(),
            budget.metadata.namespace.as_deref()
        ),
        "the patch names the base's budget"
    );
    let policy = patch
        .spec
        .as_ref()
        .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
    assert_eq!(policy, Some("AlwaysAllow"));
}

/// The patch of `kind` (`Deployment`, `Service`) in components/`component`.
fn patch_of<'a>(documents: &'a [Document], component: &str, kind: &str) -> &'a Object {
    let folder = Path::new("components").join(component);
    documents
        .iter()
        .find(|d| d.file.starts_with(&folder) && d.object.kind() == kind)
        .map(|d| &d.object)
        .unwrap_or_else(|| panic!("components/{component} patches a {kind}"))
}

#[test]
fn the_tls_component_serves_what_the_service_exposes_from_the_certificates_secret() {
    let documents = documents();
    let Object::Deployment(patch) = patch_of(&documents, "tls", "Deployment") else {
        unreachable!("patch_of picks by kind");
    };
    let Object::Service(service_patch) = patch_of(&documents, "tls", "Service") else {
        unreachable!("patch_of picks by kind");
    };
    let base = deployment(&documents);
    assert_eq!(
        patch.metadata.name, base.metadata.name,
        "the patch names the base's Deployment"
    );
    let pod = patch
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let container = &pod.containers[0];
    assert_eq!(container.name, self::container(base).name, "same container");
    // Every variable is a flag of the binary.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
        .arg("--help")
        .output()
        .expect("binary runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let env: BTreeMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
        .collect();
    for name in env.keys() {
        assert!(
            help.contains(&format!("env: {name}=")),
            "{name} is no flag's variable"
        );
    }
    // The listeners are container ports the Service's new ports target.
    for port in service_patch
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
    {
        let Some(IntOrString::Int(target)) = &port.target_port else {
            panic!("{:?}: a numeric targetPort", port.name);
        };
        assert!(
            container
                .ports
                .iter()
                .flatten()
                .any(|p| p.container_port == *target),
            "{target} is a container port of the patch"
        );
        assert!(
            env.values().any(|v| v.ends_with(&format!(":{target}"))),
            "{target} is a listen address"
        );
    }
    let served: BTreeSet<i32> = service_patch
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| p.port)
        .collect();
    assert_eq!(served, BTreeSet::from([443, 853]));
    // The certificate files are in the mounted Secret the example Certificate fills.
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .next()
        .expect("a mount");
    for file in ["HEADLESS_DNS_TLS_CERT", "HEADLESS_DNS_TLS_KEY"] {
        assert!(
            env[file].starts_with(&mount.mount_path),
            "{file} in {}",
            mount.mount_path
        );
    }
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the mount's volume");
    let secret = volume
        .secret
        .as_ref()
        .and_then(|s| s.secret_name.as_deref())
        .expect("a Secret volume");
    let certificate = documents
        .iter()
        .find_map(|d| match &d.object {
            Object::Certificate(c) => Some(c),
            _ => None,
        })
        .expect("examples/ has a cert-manager Certificate");
    assert_eq!(certificate.spec.secret_name, secret);
    assert_eq!(certificate.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert!(
        certificate
            .spec
            .dns_names
            .iter()
            .any(|n| n == "headless-dns.headless-dns.svc"),
        "the Service's name, which CoreDNS's tls_servername checks"
    );
}

#[test]
fn the_transfer_lease_component_may_renew_the_lease_and_label_the_primary_it_selects() {
    let documents = documents();
    let in_component = |d: &&Document| d.file.starts_with("components/transfer-lease");
    let role = documents
        .iter()
        .filter(in_component)
        .find_map(|d| match &d.object {
            Object::Role(r) => Some(r),
            _ => None,
        })
        .expect("a Role");
    let granted = granted(role.rules.as_deref().unwrap_or_default());
    let expected: BTreeSet<String> = [
        "coordination.k8s.io/leases/get",
        "coordination.k8s.io/leases/create",
        "coordination.k8s.io/leases/update",
        "/pods/get",
        "/pods/patch",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        granted, expected,
        "the Lease and the pod label, nothing else"
    );
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    let binding = documents
        .iter()
        .filter(in_component)
        .find_map(|d| match &d.object {
            Object::RoleBinding(b) => Some(b),
            _ => None,
        })
        .expect("a RoleBinding");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects = binding.subjects.as_deref().unwrap_or_default();
    assert!(
        subjects
            .iter()
            .any(|s| s.kind == "ServiceAccount" && s.name == "headless-dns")
    );
    // The Service selects the replicas' pods that carry the primary label.
    let service = documents
        .iter()
        .filter(in_component)
        .find_map(|d| match &d.object {
            Object::Service(s) => Some(s),
            _ => None,
        })
        .expect("the holder Service");
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    assert_eq!(
        selector
            .get(headless_dns::source::lease::PRIMARY_LABEL)
            .map(String::as_str),
        Some("true")
    );
    let pod_labels = pod_spec_labels(&documents);
    for (key, value) in &selector {
        if key.as_str() != headless_dns::source::lease::PRIMARY_LABEL {
            assert_eq!(pod_labels.get(key), Some(value), "{key} selects the pods");
        }
    }
    // The Deployment patch: flags the binary knows, the pod's name and namespace.
    let Object::Deployment(patch) = patch_of(&documents, "transfer-lease", "Deployment") else {
        unreachable!("patch_of picks by kind");
    };
    let container = &patch
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
        .containers[0];
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_headless-dns"))
        .arg("--help")
        .output()
        .expect("binary runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let mut fields = BTreeMap::new();
    for var in container.env.iter().flatten() {
        match var.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            Some(field) => {
                fields.insert(var.name.as_str(), field.field_path.as_str());
            }
            None => assert!(
                help.contains(&format!("env: {}=", var.name)),
                "{} is no flag's variable",
                var.name
            ),
        }
    }
    assert_eq!(fields.get("POD_NAME"), Some(&"metadata.name"));
    assert_eq!(fields.get("POD_NAMESPACE"), Some(&"metadata.namespace"));
}

#[test]
fn the_multicluster_component_reads_imports_and_serves_the_clusterset_zone() {
    let documents = documents();
    let in_component = |d: &&Document| d.file.starts_with("components/multicluster");
    let role = documents
        .iter()
        .filter(in_component)
        .find_map(|d| match &d.object {
            Object::ClusterRole(r) => Some(r),
            _ => None,
        })
        .expect("a ClusterRole");
    let granted = granted(role.rules.as_deref().unwrap_or_default());
    let expected: BTreeSet<String> = [
        "multicluster.x-k8s.io/serviceimports",
        "about.k8s.io/clusterproperties",
    ]
    .iter()
    .flat_map(|r| ["get", "list", "watch"].map(|verb| format!("{r}/{verb}")))
    .collect();
    assert_eq!(granted, expected, "read-only, the two MCS resources");
    let binding = documents
        .iter()
        .filter(in_component)
        .find_map(|d| match &d.object {
            Object::ClusterRoleBinding(b) => Some(b),
            _ => None,
        })
        .expect("a ClusterRoleBinding");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    assert!(
        binding
            .subjects
            .iter()
            .flatten()
            .any(|s| s.kind == "ServiceAccount" && s.name == "headless-dns")
    );
    let Object::Deployment(patch) = patch_of(&documents, "multicluster", "Deployment") else {
        unreachable!("patch_of picks by kind");
    };
    let env = &patch
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
        .containers[0]
        .env;
    let zone = env
        .iter()
        .flatten()
        .find(|v| v.name == "HEADLESS_DNS_CLUSTERSET_ZONE")
        .and_then(|v| v.value.as_deref());
    assert_eq!(zone, Some("clusterset.local"));
    // CoreDNS forwards the zone to headless-dns.
    let coredns = config_map(&documents, "kube-system", "coredns");
    let corefile = coredns
        .data
        .as_ref()
        .and_then(|d| d.get("Corefile"))
        .expect("a Corefile");
    let block = server_block(corefile, "clusterset.local").expect("a clusterset.local block");
    assert!(
        block.iter().any(|l| l.starts_with("forward . ")),
        "{block:?}"
    );
}

/// What `rules` allow, as `group/resource/verb`.
fn granted(rules: &[k8s_openapi::api::rbac::v1::PolicyRule]) -> BTreeSet<String> {
    let mut granted = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert(format!("{group}/{resource}/{verb}"));
                }
            }
        }
    }
    granted
}

/// The labels of the base Deployment's pods.
fn pod_spec_labels(documents: &[Document]) -> BTreeMap<String, String> {
    deployment(documents)
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}
