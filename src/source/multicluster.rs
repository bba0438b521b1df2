//! The Multi-Cluster Services objects (KEP-1645, kubernetes-sigs/mcs-api) into the model:
//! `ServiceImport` in each version the project defines, the `cluster.clusterset.k8s.io`
//! ClusterProperty (KEP-2149), and the labels of an imported EndpointSlice. They are custom
//! resources, so they arrive as `DynamicObject`s and are read field by field, each error
//! naming the field, as `convert` does for the built-in kinds.
//!
//! What moved between ServiceImport versions: `v1alpha1` (what CoreDNS's `multicluster`
//! plugin reads) and `v1beta1` keep `type`, `ips` and `ports` under `spec`; `v1alpha2` (what
//! Cilium ClusterMesh installs) has them at the top level, `ports` as core ServicePorts.

use kube::core::DynamicObject;
use serde::Deserialize;
use serde_json::Value;

use crate::dns::name::is_dns1123_label;
use crate::model::intern::intern;
use crate::model::{
    CLUSTER_ID_PROPERTY, ClusterProperty, ImportKind, ObjectKey, Port, ServiceImport,
};
use crate::source::convert::{
    ConvertError, invalid, ip, object_key, port_name, port_number, protocol, service_key,
};

/// The API group of ServiceImport.
pub const GROUP: &str = "multicluster.x-k8s.io";
/// The versions of it this server reads.
pub const VERSIONS: [&str; 3] = ["v1alpha1", "v1beta1", "v1alpha2"];
/// The API group of ClusterProperty, and the version this server reads.
pub const ABOUT_GROUP: &str = "about.k8s.io";
pub const ABOUT_VERSIONS: [&str; 1] = ["v1alpha1"];

/// The version of `object`'s `apiVersion` (`multicluster.x-k8s.io/v1beta1`: `v1beta1`).
fn version_of<'a>(object: &'a DynamicObject, group: &str) -> Result<&'a str, ConvertError> {
    let api_version = object
        .types
        .as_ref()
        .map(|t| t.api_version.as_str())
        .unwrap_or("");
    api_version
        .strip_prefix(group)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| invalid(format!("apiVersion {api_version:?} is not of {group}")))
}

/// The fields of a ServiceImport DNS reads, wherever its version keeps them.
#[derive(Deserialize)]
struct ImportFields {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    ports: Vec<ImportPort>,
}

#[derive(Deserialize)]
struct ImportPort {
    name: Option<String>,
    protocol: Option<String>,
    port: i32,
}

/// A ServiceImport of any version in [`VERSIONS`].
pub fn service_import(object: &DynamicObject) -> Result<ServiceImport, ConvertError> {
    let key = service_key(&object.metadata)?;
    let version = version_of(object, GROUP)?;
    let (fields, prefix) = match version {
        "v1alpha1" | "v1beta1" => (object.data.get("spec").cloned(), "spec."),
        "v1alpha2" => (Some(object.data.clone()), ""),
        other => {
            return Err(invalid(format!(
                "apiVersion {GROUP}/{other} is not read; use one of {}",
                VERSIONS.join(", ")
            )));
        }
    };
    let fields: ImportFields = match fields {
        Some(value) => serde_path_to_error::deserialize(value).map_err(|error| {
            let path = error.path().to_string();
            ConvertError::caused_by(format!("field {prefix}{path}"), error.into_inner())
        })?,
        None => return Err(invalid("spec is missing")),
    };
    let kind = match fields.kind.as_deref() {
        Some("Headless") => ImportKind::Headless,
        Some("ClusterSetIP") => ImportKind::ClusterSetIp(
            fields
                .ips
                .iter()
                .enumerate()
                .map(|(i, text)| ip(text, &format!("{prefix}ips[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(invalid(format!(
                "{prefix}type {:?} is not one of ClusterSetIP, Headless",
                other.unwrap_or("")
            )));
        }
    };
    let ports = fields
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let field = |name: &str| format!("{prefix}ports[{i}].{name}");
            Ok(Port {
                name: port_name(p.name.as_deref(), &field("name"))?,
                protocol: protocol(p.protocol.as_deref(), &field("protocol"))?,
                port: port_number(p.port, &field("port"))?,
            })
        })
        .collect::<Result<_, ConvertError>>()?;
    Ok(ServiceImport { key, kind, ports })
}

/// The ClusterProperty that holds this cluster's id; `Ok(None)` for any other property.
pub fn cluster_property(object: &DynamicObject) -> Result<Option<ClusterProperty>, ConvertError> {
    if object.metadata.name.as_deref() != Some(CLUSTER_ID_PROPERTY) {
        return Ok(None);
    }
    version_of(object, ABOUT_GROUP)?;
    let value = object
        .data
        .get("spec")
        .and_then(|spec| spec.get("value"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("spec.value is missing: it holds this cluster's id"))?;
    if !is_dns1123_label(value) {
        return Err(invalid(format!(
            "spec.value {value:?} is not a DNS label (lowercase a-z, 0-9, '-', at most 63): this cluster's id names its endpoints in <hostname>.<cluster>.<svc>.<ns>.svc"
        )));
    }
    let key: ObjectKey = object_key(&object.metadata)?;
    Ok(Some(ClusterProperty {
        key,
        value: intern(value),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn error(result: Result<impl std::fmt::Debug, ConvertError>) -> String {
        result.map_or_else(|e| e.to_string(), |v| format!("ok: {v:?}"))
    }

    #[test]
    fn each_version_is_read_where_it_keeps_its_fields() {
        let spec = json!({"type": "ClusterSetIP", "ips": ["10.42.0.1"],
            "ports": [{"name": "sql", "port": 26257, "protocol": "TCP"}]});
        let mut imports = Vec::new();
        for version in ["v1alpha1", "v1beta1"] {
            imports.push(object(json!({"apiVersion": format!("{GROUP}/{version}"),
                "kind": "ServiceImport", "metadata": {"name": "db", "namespace": "demo"},
                "spec": spec})));
        }
        let mut top = json!({"apiVersion": format!("{GROUP}/v1alpha2"), "kind": "ServiceImport",
            "metadata": {"name": "db", "namespace": "demo"}});
        for (k, v) in spec.as_object().unwrap() {
            top[k] = v.clone();
        }
        imports.push(object(top));
        let read: Vec<ServiceImport> = imports.iter().map(|o| service_import(o).unwrap()).collect();
        assert!(read.windows(2).all(|w| w[0] == w[1]), "{read:?}");
        assert_eq!(
            read[0].kind,
            ImportKind::ClusterSetIp(vec!["10.42.0.1".parse().unwrap()])
        );
        assert_eq!(read[0].ports[0].port, 26257);
        // v1alpha2 ignores a `spec` (it has none): its fields are missing.
        let misplaced = object(json!({"apiVersion": format!("{GROUP}/v1alpha2"),
            "kind": "ServiceImport", "metadata": {"name": "db"}, "spec": spec}));
        assert!(error(service_import(&misplaced)).contains("type \"\""));
    }

    #[test]
    fn bad_fields_are_named() {
        let import = |spec: Value| {
            error(service_import(&object(
                json!({"apiVersion": format!("{GROUP}/v1alpha1"),
                "kind": "ServiceImport", "metadata": {"name": "db"}, "spec": spec}),
            )))
        };
        assert!(import(json!({"type": "Headless"})).starts_with("ok"));
        assert!(import(json!({"type": "LoadBalancer"})).contains("spec.type \"LoadBalancer\""));
        assert!(import(json!({"type": "ClusterSetIP", "ips": ["x"]})).contains("spec.ips[0]"));
        assert!(
            import(json!({"type": "Headless", "ports": [{"port": 0}]}))
                .contains("spec.ports[0].port")
        );
        assert!(import(json!({"type": "Headless", "ports": "x"})).contains("field spec.ports"));
        let other_group = object(json!({"apiVersion": "v1", "kind": "ServiceImport",
            "metadata": {"name": "db"}, "spec": {"type": "Headless"}}));
        assert!(error(service_import(&other_group)).contains("not of multicluster.x-k8s.io"));
    }

    #[test]
    fn only_the_cluster_id_property_is_read_and_it_is_a_label() {
        let property = |name: &str, value: &str| {
            cluster_property(&object(json!({"apiVersion": "about.k8s.io/v1alpha1",
                "kind": "ClusterProperty", "metadata": {"name": name}, "spec": {"value": value}})))
        };
        let id = property(CLUSTER_ID_PROPERTY, "east").unwrap().unwrap();
        assert_eq!(&*id.value, "east");
        assert!(property("clusterset.k8s.io", "set-1").unwrap().is_none());
        assert!(error(property(CLUSTER_ID_PROPERTY, "East_1")).contains("not a DNS label"));
    }
}
