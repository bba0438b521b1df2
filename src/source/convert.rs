//! Kubernetes API objects (k8s-openapi types) into the small model structs.
//!
//! Shared by every source, so that a manifest on disk and an object from the API server are
//! held to the same rules. Each error names the field that is wrong and what it should be.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet as K8sStatefulSet;
use k8s_openapi::api::core::v1::{
    EndpointPort as K8sEndpointPort, Endpoints as K8sEndpoints,
    ObjectReference as K8sObjectReference, Service as K8sService, ServicePort as K8sServicePort,
};
use k8s_openapi::api::discovery::v1::{
    EndpointPort as K8sSlicePort, EndpointSlice as K8sEndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::dns::name::is_dns1123_label;
use crate::model::intern::intern;
use crate::model::{
    Endpoint, EndpointSlice, Object, ObjectKey, Port, Protocol, Service, ServiceKind, SliceOf,
    StatefulSet,
};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The label that ties an imported EndpointSlice to its ServiceImport.
pub const MCS_SERVICE_NAME_LABEL: &str = "multicluster.kubernetes.io/service-name";
/// The label that names the cluster an imported EndpointSlice's endpoints are in.
pub const SOURCE_CLUSTER_LABEL: &str = "multicluster.kubernetes.io/source-cluster";

/// What an imported slice serves: its source cluster, a DNS label (a slice without the
/// label is this cluster's own).
fn source_cluster(labels: Option<&BTreeMap<String, String>>) -> Result<SliceOf, ConvertError> {
    let cluster = match labels.and_then(|l| l.get(SOURCE_CLUSTER_LABEL)) {
        None => None,
        Some(cluster) if is_dns1123_label(cluster) => Some(intern(cluster)),
        Some(cluster) => {
            return Err(invalid(format!(
                "metadata.labels[{SOURCE_CLUSTER_LABEL:?}] {cluster:?} is not a DNS label (lowercase a-z, 0-9, '-', at most 63): it names the cluster in <hostname>.<cluster>.<svc>.<ns>.svc"
            )));
        }
    };
    Ok(SliceOf::Import { cluster })
}

/// Why an object was not accepted: the message names the field and the accepted values;
/// the source, when there is one, is the parser's own error (an address, a domain name, a
/// document's structure).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConvertError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConvertError {
    /// An object that does not fit the model, with why.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// The same, caused by `source`.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

pub(super) fn invalid(msg: impl Into<String>) -> ConvertError {
    ConvertError::new(msg)
}

/// `metadata`'s namespace and name, checked.
pub(super) fn key_parts(meta: &ObjectMeta) -> Result<(&str, &str), ConvertError> {
    let name = meta
        .name
        .as_deref()
        .ok_or_else(|| invalid("metadata.name is missing"))?;
    let namespace = meta.namespace.as_deref().unwrap_or("default");
    if !is_dns1123_label(namespace) {
        return Err(invalid(format!(
            "metadata.namespace {namespace:?} is not a DNS-1123 label (lowercase a-z, 0-9, '-', at most 63)"
        )));
    }
    Ok((namespace, name))
}

/// The key of an object whose name nothing else repeats (an EndpointSlice, a StatefulSet).
/// The namespace, which every object in it repeats, is shared.
pub(super) fn object_key(meta: &ObjectMeta) -> Result<ObjectKey, ConvertError> {
    let (namespace, name) = key_parts(meta)?;
    Ok(ObjectKey {
        namespace: intern(namespace),
        name: name.into(),
    })
}

/// The key of a Service (or of its legacy Endpoints): its slices and StatefulSets repeat
/// its name, so the name is shared too.
pub(super) fn service_key(meta: &ObjectMeta) -> Result<ObjectKey, ConvertError> {
    let (namespace, name) = key_parts(meta)?;
    Ok(ObjectKey {
        namespace: intern(namespace),
        name: intern(name),
    })
}

pub(super) fn protocol(value: Option<&str>, field: &str) -> Result<Protocol, ConvertError> {
    match value.unwrap_or("TCP") {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        other => Err(invalid(format!(
            "{field} {other:?} is not one of TCP, UDP, SCTP"
        ))),
    }
}

pub(super) fn port_number(value: i32, field: &str) -> Result<u16, ConvertError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(format!("{field} {value} is not a port number (1-65535)")))
}

/// A port's name, shared: most Services name their ports alike (`web`, `http`, `grpc`).
pub(super) fn port_name(value: Option<&str>, field: &str) -> Result<Arc<str>, ConvertError> {
    let name = value.unwrap_or("");
    if !name.is_empty() && !is_dns1123_label(name) {
        return Err(invalid(format!(
            "{field} {name:?} is not a DNS-1123 label (lowercase a-z, 0-9, '-')"
        )));
    }
    Ok(intern(name))
}

pub(super) fn ip(value: &str, field: &str) -> Result<IpAddr, ConvertError> {
    value.parse().map_err(|error| {
        ConvertError::caused_by(format!("{field} {value:?} is not an IP address"), error)
    })
}

/// A v1 Service.
pub fn service(svc: &K8sService) -> Result<Service, ConvertError> {
    let key = service_key(&svc.metadata)?;
    if !is_dns1123_label(&key.name) {
        return Err(invalid(format!(
            "metadata.name {:?} is not a DNS-1123 label",
            key.name
        )));
    }
    let spec = svc
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec is missing"))?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec
            .external_name
            .as_deref()
            .ok_or_else(|| invalid("spec.externalName is missing (type: ExternalName)"))?;
        ServiceKind::ExternalName(external_name(target)?)
    } else {
        match spec.cluster_ip.as_deref() {
            Some("None") => ServiceKind::Headless,
            None | Some("") => {
                return Err(invalid(
                    "spec.clusterIP is missing: set the Service's IP, or None for a headless Service",
                ));
            }
            Some(first) => {
                let mut ips = vec![ip(first, "spec.clusterIP")?];
                for extra in spec.cluster_ips.iter().flatten() {
                    let parsed = ip(extra, "spec.clusterIPs[]")?;
                    if !ips.contains(&parsed) {
                        ips.push(parsed);
                    }
                }
                // A dual-stack pair grew the list to four.
                ips.shrink_to_fit();
                ServiceKind::ClusterIp(ips)
            }
        }
    };
    let mut ports = spec
        .ports
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| service_port(p, i))
        .collect::<Result<Vec<_>, _>>()?;
    // Collecting through `Result` starts at four ports; a Service usually has one, kept
    // for the life of the process.
    ports.shrink_to_fit();
    Ok(Service {
        key,
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    })
}

fn service_port(p: &K8sServicePort, i: usize) -> Result<Port, ConvertError> {
    Ok(Port {
        name: port_name(p.name.as_deref(), &format!("spec.ports[{i}].name"))?,
        protocol: protocol(p.protocol.as_deref(), &format!("spec.ports[{i}].protocol"))?,
        port: port_number(p.port, &format!("spec.ports[{i}].port"))?,
    })
}

/// An ExternalName target: a valid domain name, lowercase, dot-terminated. An IP address is
/// rejected as CoreDNS does (a CNAME to an address is not a name).
fn external_name(target: &str) -> Result<String, ConvertError> {
    let bad = || {
        invalid(format!(
            "spec.externalName {target:?} is not a domain name (e.g. db.example.com)"
        ))
    };
    if target.parse::<IpAddr>().is_ok() {
        return Err(bad());
    }
    let name = hickory_proto::rr::Name::from_ascii(target).map_err(|error| {
        ConvertError::caused_by(
            format!("spec.externalName {target:?} is not a domain name (e.g. db.example.com)"),
            error,
        )
    })?;
    if name.num_labels() == 0 {
        return Err(bad());
    }
    let mut text = name.to_lowercase().to_ascii();
    if !text.ends_with('.') {
        text.push('.');
    }
    Ok(text)
}

/// A discovery.k8s.io/v1 EndpointSlice. `Ok(None)` for FQDN slices, which DNS ignores.
/// Choices a conversion makes for the operator (flags), the same for every source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Name an endpoint without a hostname after its pod (`targetRef.name`, when it targets
    /// a Pod whose name is a DNS label), as CoreDNS's `endpoint_pod_names` does, instead of
    /// by its dashed address (`--endpoint-pod-names`).
    pub endpoint_pod_names: bool,
    /// Read the Multi-Cluster Services objects: ServiceImports, the ClusterProperty of this
    /// cluster's id and imported EndpointSlices (`--clusterset-zone`). Without it they are
    /// skipped, quietly: an MCS cluster has them whether DNS serves them or not.
    pub multicluster: bool,
}

impl ConvertOptions {
    /// The name of an endpoint: its hostname, else with `endpoint_pod_names` its pod's name
    /// when that is a DNS label (a pod name may be a longer DNS subdomain: then none).
    fn endpoint_name(
        &self,
        hostname: Option<String>,
        target: Option<&K8sObjectReference>,
    ) -> Option<String> {
        if hostname.is_some() || !self.endpoint_pod_names {
            return hostname;
        }
        let target = target?;
        if target.kind.as_deref().is_some_and(|kind| kind != "Pod") {
            return None;
        }
        target
            .name
            .as_deref()
            .filter(|name| is_dns1123_label(name))
            .map(str::to_owned)
    }
}

pub fn endpoint_slice(
    slice: &K8sEndpointSlice,
    options: &ConvertOptions,
) -> Result<Option<EndpointSlice>, ConvertError> {
    let key = object_key(&slice.metadata)?;
    let labels = slice.metadata.labels.as_ref();
    let label = |name: &str| labels.and_then(|l| l.get(name));
    // An imported slice (Multi-Cluster Services) names its ServiceImport; it counts as one
    // only when imports are served, and is skipped quietly otherwise.
    let (service_name, of) = match (label(MCS_SERVICE_NAME_LABEL), label(SERVICE_NAME_LABEL)) {
        (Some(import), _) if options.multicluster => (import, source_cluster(labels)?),
        (_, Some(service)) => (service, SliceOf::Service),
        (Some(_), None) => return Ok(None),
        (None, None) => {
            return Err(invalid(format!(
                "metadata.labels[{SERVICE_NAME_LABEL:?}] is missing: the slice names no Service"
            )));
        }
    };
    let want_v6 = match slice.address_type.as_str() {
        "IPv4" => false,
        "IPv6" => true,
        "FQDN" => return Ok(None),
        other => {
            return Err(invalid(format!(
                "addressType {other:?} is not one of IPv4, IPv6, FQDN"
            )));
        }
    };
    let mut endpoints = Vec::new();
    for (i, ep) in slice.endpoints.iter().enumerate() {
        let hostname = hostname(ep.hostname.as_deref(), &format!("endpoints[{i}].hostname"))?;
        let hostname = options.endpoint_name(hostname, ep.target_ref.as_ref());
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        let terminating = ep
            .conditions
            .as_ref()
            .and_then(|c| c.terminating)
            .unwrap_or(false);
        for (j, address) in ep.addresses.iter().enumerate() {
            let field = format!("endpoints[{i}].addresses[{j}]");
            let parsed = ip(address, &field)?;
            if parsed.is_ipv6() != want_v6 {
                return Err(invalid(format!(
                    "{field} {address:?} does not match addressType {}",
                    slice.address_type
                )));
            }
            endpoints.push(Endpoint {
                ip: parsed,
                hostname: hostname.clone(),
                ready,
                terminating,
            });
        }
    }
    let mut ports = slice
        .ports
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, p)| slice_port(p, i).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    ports.shrink_to_fit();
    Ok(Some(EndpointSlice {
        // The namespace string is shared with the slice's own key.
        service: ObjectKey {
            namespace: key.namespace.clone(),
            name: intern(service_name),
        },
        of,
        key,
        // Exact size (pushing grew the `Vec` by doubling), and shared by clones.
        endpoints: endpoints.into(),
        ports,
    }))
}

fn hostname(value: Option<&str>, field: &str) -> Result<Option<String>, ConvertError> {
    match value {
        None | Some("") => Ok(None),
        Some(h) if is_dns1123_label(h) => Ok(Some(h.to_owned())),
        Some(h) => Err(invalid(format!(
            "{field} {h:?} is not a DNS-1123 label (lowercase a-z, 0-9, '-', at most 63)"
        ))),
    }
}

/// A slice port without a number means "all ports" and gets no SRV record.
fn slice_port(p: &K8sSlicePort, i: usize) -> Result<Option<Port>, ConvertError> {
    let Some(number) = p.port else {
        return Ok(None);
    };
    Ok(Some(Port {
        name: port_name(p.name.as_deref(), &format!("ports[{i}].name"))?,
        protocol: protocol(p.protocol.as_deref(), &format!("ports[{i}].protocol"))?,
        port: port_number(number, &format!("ports[{i}].port"))?,
    }))
}

/// A legacy v1 Endpoints object: one model slice per subset.
pub fn endpoints(eps: &K8sEndpoints, options: &ConvertOptions) -> Result<Object, ConvertError> {
    let service = service_key(&eps.metadata)?;
    let mut subsets = Vec::new();
    for (i, subset) in eps.subsets.iter().flatten().enumerate() {
        let mut endpoints = Vec::new();
        let groups = [
            (true, subset.addresses.as_ref(), "addresses"),
            (
                false,
                subset.not_ready_addresses.as_ref(),
                "notReadyAddresses",
            ),
        ];
        for (ready, addresses, field) in groups {
            for (j, address) in addresses.into_iter().flatten().enumerate() {
                let field = format!("subsets[{i}].{field}[{j}]");
                let named = hostname(address.hostname.as_deref(), &format!("{field}.hostname"))?;
                endpoints.push(Endpoint {
                    ip: ip(&address.ip, &format!("{field}.ip"))?,
                    hostname: options.endpoint_name(named, address.target_ref.as_ref()),
                    ready,
                    // Legacy Endpoints do not say; a not-ready address may be starting.
                    terminating: false,
                });
            }
        }
        let mut ports = subset
            .ports
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, p)| endpoints_port(p, i, j))
            .collect::<Result<Vec<_>, _>>()?;
        ports.shrink_to_fit();
        subsets.push(EndpointSlice {
            // The namespace string is shared, not copied (`ObjectKey::new` would copy it).
            key: ObjectKey {
                namespace: service.namespace.clone(),
                name: format!("{}#{i}", service.name).into(),
            },
            service: service.clone(),
            of: SliceOf::Service,
            endpoints: endpoints.into(),
            ports,
        });
    }
    subsets.shrink_to_fit();
    Ok(Object::Endpoints { service, subsets })
}

fn endpoints_port(p: &K8sEndpointPort, i: usize, j: usize) -> Result<Port, ConvertError> {
    Ok(Port {
        name: port_name(p.name.as_deref(), &format!("subsets[{i}].ports[{j}].name"))?,
        protocol: protocol(
            p.protocol.as_deref(),
            &format!("subsets[{i}].ports[{j}].protocol"),
        )?,
        port: port_number(p.port, &format!("subsets[{i}].ports[{j}].port"))?,
    })
}

/// An apps/v1 StatefulSet.
pub fn stateful_set(sts: &K8sStatefulSet) -> Result<StatefulSet, ConvertError> {
    let key = object_key(&sts.metadata)?;
    let spec = sts
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec is missing"))?;
    let non_negative = |value: i32, field: &str| {
        u32::try_from(value).map_err(|_| invalid(format!("{field} {value} is negative")))
    };
    Ok(StatefulSet {
        key,
        service_name: intern(spec.service_name.as_deref().unwrap_or_default()),
        replicas: non_negative(spec.replicas.unwrap_or(1), "spec.replicas")?,
        ordinal_start: non_negative(
            spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
            "spec.ordinals.start",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Result<Service, ConvertError> {
        let obj: K8sService = serde_saphyr::from_str(yaml).expect("test YAML parses");
        service(&obj)
    }

    #[test]
    fn services() {
        let headless = svc("metadata: {name: nginx, namespace: demo}\nspec: {clusterIP: None, ports: [{name: web, port: 80}]}").unwrap();
        assert_eq!(headless.kind, ServiceKind::Headless);
        assert_eq!(headless.ports[0].protocol, Protocol::Tcp);

        let dual = svc("metadata: {name: api}\nspec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10, 'fd00::10']}").unwrap();
        assert_eq!(&*dual.key.namespace, "default");
        assert_eq!(
            dual.kind,
            ServiceKind::ClusterIp(vec![
                "10.96.0.10".parse().unwrap(),
                "fd00::10".parse().unwrap()
            ])
        );

        let ext =
            svc("metadata: {name: ext}\nspec: {type: ExternalName, externalName: DB.Example.com}")
                .unwrap();
        assert_eq!(
            ext.kind,
            ServiceKind::ExternalName("db.example.com.".into())
        );

        fn check_err(yaml: &str, needle: &str) {
            let err = svc(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
        check_err(
            "metadata: {name: x}\nspec: {clusterIP: banana}",
            "spec.clusterIP \"banana\"",
        );
        check_err("metadata: {name: x}\nspec: {}", "spec.clusterIP is missing");
        check_err("metadata: {name: x}", "spec is missing");
        check_err(
            "metadata: {name: Bad_Name}\nspec: {clusterIP: None}",
            "metadata.name",
        );
        check_err(
            "metadata: {name: x}\nspec: {type: ExternalName, externalName: 1.2.3.4}",
            "not a domain name",
        );
        check_err(
            "metadata: {name: x}\nspec: {clusterIP: None, ports: [{port: 70000}]}",
            "spec.ports[0].port",
        );
    }

    #[test]
    fn slices() {
        let yaml = "metadata: {name: nginx-abc, namespace: demo, labels: {kubernetes.io/service-name: nginx}}\naddressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n  hostname: web-0\n- addresses: [10.0.0.2]\n  conditions: {ready: false}\nports: [{name: web, port: 8080}]\n";
        let obj: K8sEndpointSlice = serde_saphyr::from_str(yaml).unwrap();
        let slice = endpoint_slice(&obj, &ConvertOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(slice.service, ObjectKey::new("demo", "nginx"));
        let endpoints: Vec<_> = slice.endpoints.iter().collect();
        assert_eq!(slice.endpoints.len(), 2);
        assert_eq!(endpoints.len(), 2);
        assert!(endpoints[0].ready);
        assert_eq!(endpoints[0].hostname, Some("web-0"));
        assert!(!endpoints[1].ready);
        assert_eq!(slice.ports[0].port, 8080);

        let mismatched = yaml.replace("IPv4", "IPv6");
        let obj: K8sEndpointSlice = serde_saphyr::from_str(&mismatched).unwrap();
        let err = endpoint_slice(&obj, &ConvertOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("endpoints[0].addresses[0]"), "{err}");

        let fqdn = yaml.replace("IPv4", "FQDN");
        let obj: K8sEndpointSlice = serde_saphyr::from_str(&fqdn).unwrap();
        assert_eq!(
            endpoint_slice(&obj, &ConvertOptions::default()).unwrap(),
            None
        );
    }

    #[test]
    fn endpoint_pod_names_name_endpoints_without_a_hostname_after_their_pod() {
        let yaml = "metadata: {name: api-abc, namespace: demo, labels: {kubernetes.io/service-name: api}}\naddressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n  hostname: web-0\n  targetRef: {kind: Pod, name: other}\n- addresses: [10.0.0.2]\n  targetRef: {kind: Pod, name: api-7d9f-x2k4p}\n- addresses: [10.0.0.3]\n  targetRef: {kind: Pod, name: dotted.pod.name}\n- addresses: [10.0.0.4]\n  targetRef: {kind: Node, name: node-1}\n- addresses: [10.0.0.5]\n";
        let obj: K8sEndpointSlice = serde_saphyr::from_str(yaml).unwrap();
        let names = |options: ConvertOptions| -> Vec<Option<String>> {
            let slice = endpoint_slice(&obj, &options).unwrap().unwrap();
            slice
                .endpoints
                .iter()
                .map(|e| e.hostname.map(str::to_owned))
                .collect()
        };
        // Off (the default): only hostnames.
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            names(ConvertOptions::default()),
            vec![some("web-0"), None, None, None, None]
        );
        // On: a hostname still wins; a pod's name when it is a label; not a dotted name, not
        // another kind of target, nothing without a target.
        let on = ConvertOptions {
            endpoint_pod_names: true,
            ..ConvertOptions::default()
        };
        assert_eq!(
            names(on),
            vec![some("web-0"), some("api-7d9f-x2k4p"), None, None, None]
        );
        // Legacy Endpoints alike.
        let legacy: K8sEndpoints = serde_saphyr::from_str(
            "metadata: {name: api, namespace: demo}\nsubsets:\n- addresses:\n  - {ip: 10.0.0.2, targetRef: {kind: Pod, name: api-7d9f-x2k4p}}\n  ports: [{port: 80}]\n",
        )
        .unwrap();
        let Object::Endpoints { subsets, .. } = endpoints(&legacy, &on).unwrap() else {
            panic!("legacy Endpoints convert to subsets");
        };
        let hostname = subsets[0].endpoints.iter().next().unwrap().hostname;
        assert_eq!(hostname, Some("api-7d9f-x2k4p"));
    }

    #[test]
    fn stateful_sets() {
        let obj: K8sStatefulSet = serde_saphyr::from_str(
            "metadata: {name: web, namespace: demo}\nspec: {serviceName: nginx, replicas: 3, ordinals: {start: 2}, selector: {}, template: {}}",
        )
        .unwrap();
        let sts = stateful_set(&obj).unwrap();
        assert_eq!((sts.replicas, sts.ordinal_start), (3, 2));
        assert_eq!(&*sts.service_name, "nginx");
    }

    #[test]
    fn repeated_strings_are_shared_and_lists_are_exact() {
        let service = svc("metadata: {name: nginx, namespace: demo}\nspec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10, 'fd00::10'], ports: [{name: web, port: 80}]}").unwrap();
        let slice: K8sEndpointSlice = serde_saphyr::from_str("metadata: {name: nginx-abc, namespace: demo, labels: {kubernetes.io/service-name: nginx}}\naddressType: IPv4\nendpoints: []\nports: [{name: web, port: 8080}]\n").unwrap();
        let slice = endpoint_slice(&slice, &ConvertOptions::default())
            .unwrap()
            .unwrap();
        let sts: K8sStatefulSet = serde_saphyr::from_str("metadata: {name: web, namespace: demo}\nspec: {serviceName: nginx, selector: {}, template: {}}").unwrap();
        let sts = stateful_set(&sts).unwrap();
        // One copy of the namespace, of the Service's name and of the port's name.
        for namespace in [
            &slice.key.namespace,
            &slice.service.namespace,
            &sts.key.namespace,
        ] {
            assert!(Arc::ptr_eq(namespace, &service.key.namespace));
        }
        assert!(Arc::ptr_eq(&slice.service.name, &service.key.name));
        assert!(Arc::ptr_eq(&sts.service_name, &service.key.name));
        assert!(Arc::ptr_eq(&slice.ports[0].name, &service.ports[0].name));
        let legacy: K8sEndpoints = serde_saphyr::from_str("metadata: {name: nginx, namespace: demo}\nsubsets: [{addresses: [{ip: 10.0.0.1}], ports: [{name: web, port: 80}]}]").unwrap();
        let Object::Endpoints {
            service: key,
            subsets,
        } = endpoints(&legacy, &ConvertOptions::default()).unwrap()
        else {
            panic!("legacy Endpoints convert to Object::Endpoints");
        };
        assert!(Arc::ptr_eq(&key.name, &service.key.name));
        assert!(Arc::ptr_eq(
            &subsets[0].key.namespace,
            &service.key.namespace
        ));
        assert_eq!(&*subsets[0].key.name, "nginx#0");
        // Lists kept for the life of the process hold what they have and no more.
        assert_eq!(service.ports.capacity(), 1);
        assert_eq!(slice.ports.capacity(), 1);
        let ServiceKind::ClusterIp(ips) = &service.kind else {
            panic!("a ClusterIP Service: {:?}", service.kind);
        };
        assert_eq!(ips.capacity(), 2);
    }

    #[test]
    fn imported_slices_name_their_import_and_cluster_only_when_imports_are_served() {
        let yaml = |labels: &str| {
            format!(
                "metadata: {{name: db-west, namespace: demo, labels: {{{labels}}}}}\naddressType: IPv4\nendpoints:\n- addresses: [10.1.0.1]\n  hostname: db-0\n"
            )
        };
        let convert = |labels: &str, multicluster: bool| {
            let slice: K8sEndpointSlice = serde_saphyr::from_str(&yaml(labels)).unwrap();
            let options = ConvertOptions {
                multicluster,
                ..ConvertOptions::default()
            };
            endpoint_slice(&slice, &options).map(|s| s.map(|s| (s.service.name, s.of)))
        };
        let imported = "multicluster.kubernetes.io/service-name: db, multicluster.kubernetes.io/source-cluster: west";
        let (name, of) = convert(imported, true).unwrap().unwrap();
        assert_eq!(&*name, "db");
        assert_eq!(
            of,
            SliceOf::Import {
                cluster: Some("west".into())
            }
        );
        assert!(
            convert(imported, false).unwrap().is_none(),
            "skipped quietly"
        );
        let local = "multicluster.kubernetes.io/service-name: db";
        assert_eq!(
            convert(local, true).unwrap().unwrap().1,
            SliceOf::Import { cluster: None }
        );
        let bad = "multicluster.kubernetes.io/service-name: db, multicluster.kubernetes.io/source-cluster: We_st";
        let error = convert(bad, true).unwrap_err().to_string();
        assert!(
            error.contains("source-cluster") && error.contains("not a DNS label"),
            "{error}"
        );
        // Both labels: with imports served the slice is the import's, else the Service's.
        let both =
            "kubernetes.io/service-name: db-local, multicluster.kubernetes.io/service-name: db";
        assert_eq!(convert(both, false).unwrap().unwrap().1, SliceOf::Service);
        assert!(matches!(
            convert(both, true).unwrap().unwrap().1,
            SliceOf::Import { .. }
        ));
    }
}
