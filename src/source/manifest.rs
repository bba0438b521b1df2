//! One Kubernetes object of any kind DNS reads, as the API defines it: what the embedding
//! API's feed accepts, what a watch event carries and what a manifest document holds. The
//! one place that dispatches over the kinds: from a document's `apiVersion` and `kind` to
//! its k8s-openapi type (or, for the Multi-Cluster Services custom resources, a
//! `DynamicObject`), and from that type to its converter (`convert`, `multicluster`).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::{Kind, Object, ObjectKey};
use crate::source::convert::{self, ConvertError, ConvertOptions};
use crate::source::multicluster;

/// An object a source hands on: a Service, an EndpointSlice, a legacy Endpoints, a
/// StatefulSet, or a ServiceImport or ClusterProperty (its `apiVersion` says which version).
pub enum Manifest {
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Endpoints(Box<Endpoints>),
    StatefulSet(Box<StatefulSet>),
    ServiceImport(Box<DynamicObject>),
    ClusterProperty(Box<DynamicObject>),
}

impl From<Service> for Manifest {
    fn from(o: Service) -> Self {
        Manifest::Service(Box::new(o))
    }
}
impl From<EndpointSlice> for Manifest {
    fn from(o: EndpointSlice) -> Self {
        Manifest::EndpointSlice(Box::new(o))
    }
}
impl From<Endpoints> for Manifest {
    fn from(o: Endpoints) -> Self {
        Manifest::Endpoints(Box::new(o))
    }
}
impl From<StatefulSet> for Manifest {
    fn from(o: StatefulSet) -> Self {
        Manifest::StatefulSet(Box::new(o))
    }
}

/// An object that could not be used, with its kind and `namespace/name`.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name} is invalid")]
pub struct InvalidObject {
    pub kind: &'static str,
    pub name: String,
    #[source]
    pub source: ConvertError,
}

impl Manifest {
    /// The object a manifest document describes (`apiVersion`, `kind` and the rest, as
    /// `kubectl get -o yaml` prints it); `Ok(None)` for a kind DNS does not read.
    pub fn from_document(value: Value) -> Result<Option<Manifest>, ConvertError> {
        let text = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or("");
        let (kind, api_version) = (text("kind").to_owned(), text("apiVersion").to_owned());
        if kind.is_empty() || api_version.is_empty() {
            return Err(ConvertError::new("apiVersion and kind are required"));
        }
        let custom = |group: &str, versions: &[&str]| -> Vec<String> {
            versions.iter().map(|v| format!("{group}/{v}")).collect()
        };
        let expected: Vec<String> = match kind.as_str() {
            "Service" | "Endpoints" => vec!["v1".into()],
            "EndpointSlice" => vec!["discovery.k8s.io/v1".into()],
            "StatefulSet" => vec!["apps/v1".into()],
            "ServiceImport" => custom(multicluster::GROUP, &multicluster::VERSIONS),
            "ClusterProperty" => custom(multicluster::ABOUT_GROUP, &multicluster::ABOUT_VERSIONS),
            _ => return Ok(None),
        };
        if !expected.contains(&api_version) {
            return Err(ConvertError::new(format!(
                "apiVersion {api_version:?} is not supported for {kind}; use {}",
                expected.join(" or ")
            )));
        }
        Ok(Some(match kind.as_str() {
            "Service" => typed::<Service>(value)?.into(),
            "Endpoints" => typed::<Endpoints>(value)?.into(),
            "EndpointSlice" => typed::<EndpointSlice>(value)?.into(),
            "ServiceImport" => Manifest::ServiceImport(Box::new(typed(value)?)),
            "ClusterProperty" => Manifest::ClusterProperty(Box::new(typed(value)?)),
            _ => typed::<StatefulSet>(value)?.into(),
        }))
    }

    pub fn kind(&self) -> Kind {
        match self {
            Manifest::Service(_) => Kind::Service,
            Manifest::EndpointSlice(_) => Kind::EndpointSlice,
            Manifest::Endpoints(_) => Kind::Endpoints,
            Manifest::StatefulSet(_) => Kind::StatefulSet,
            Manifest::ServiceImport(_) => Kind::ServiceImport,
            Manifest::ClusterProperty(_) => Kind::ClusterProperty,
        }
    }

    fn metadata(&self) -> &ObjectMeta {
        match self {
            Manifest::Service(o) => &o.metadata,
            Manifest::EndpointSlice(o) => &o.metadata,
            Manifest::Endpoints(o) => &o.metadata,
            Manifest::StatefulSet(o) => &o.metadata,
            Manifest::ServiceImport(o) | Manifest::ClusterProperty(o) => &o.metadata,
        }
    }

    /// `namespace/name` for messages, whatever is missing shown as `?`.
    pub fn name(&self) -> String {
        let meta = self.metadata();
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("?")
        )
    }

    fn invalid(&self, source: ConvertError) -> InvalidObject {
        InvalidObject {
            kind: self.kind().as_str(),
            name: self.name(),
            source,
        }
    }

    /// The object's namespace and name (legacy Endpoints: its Service's).
    pub fn key(&self) -> Result<ObjectKey, InvalidObject> {
        let meta = self.metadata();
        let name = meta
            .name
            .clone()
            .ok_or_else(|| self.invalid(ConvertError::new("metadata.name is missing")))?;
        Ok(ObjectKey::new(
            meta.namespace.as_deref().unwrap_or("default"),
            name,
        ))
    }

    /// The model object; `None` for what DNS ignores (FQDN EndpointSlices, and without
    /// `multicluster` the Multi-Cluster Services objects).
    pub fn convert(&self) -> Result<Option<Object>, InvalidObject> {
        self.convert_with(&ConvertOptions::default())
    }

    /// The model object, converted with `options` (the server's flags).
    pub fn convert_with(&self, options: &ConvertOptions) -> Result<Option<Object>, InvalidObject> {
        let converted = match self {
            Manifest::Service(o) => convert::service(o).map(|s| Some(Object::Service(s))),
            Manifest::EndpointSlice(o) => {
                convert::endpoint_slice(o, options).map(|s| s.map(Object::EndpointSlice))
            }
            Manifest::Endpoints(o) => convert::endpoints(o, options).map(Some),
            Manifest::StatefulSet(o) => {
                convert::stateful_set(o).map(|s| Some(Object::StatefulSet(s)))
            }
            // Read only when the clusterset zone is served; skipped quietly otherwise.
            Manifest::ServiceImport(_) | Manifest::ClusterProperty(_) if !options.multicluster => {
                Ok(None)
            }
            Manifest::ServiceImport(o) => {
                multicluster::service_import(o).map(|i| Some(Object::ServiceImport(i)))
            }
            Manifest::ClusterProperty(o) => {
                multicluster::cluster_property(o).map(|p| p.map(Object::ClusterProperty))
            }
        };
        converted.map_err(|source| self.invalid(source))
    }
}

/// Deserializes into a k8s-openapi type; the error names the path of the bad field.
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, ConvertError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = if path == "." {
            "the document".to_owned()
        } else {
            format!("field {path}")
        };
        ConvertError::caused_by(message, error.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What becomes of `document`: "ok", "skipped", or the error's message.
    fn error_of(document: Value) -> String {
        match Manifest::from_document(document) {
            Ok(Some(manifest)) => match manifest.convert() {
                Ok(_) => "ok".into(),
                Err(error) => error.source.to_string(),
            },
            Ok(None) => "skipped".into(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn documents_are_dispatched_by_kind_and_api_version() {
        use serde_json::json;
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "api"}, "spec": {"clusterIP": "10.96.0.1"}});
        assert_eq!(error_of(service), "ok");
        let wrong_version = json!({"apiVersion": "apps/v1", "kind": "Service",
            "metadata": {"name": "api"}});
        assert!(error_of(wrong_version).contains("use v1"));
        assert_eq!(
            error_of(json!({"apiVersion": "v1", "kind": "ConfigMap"})),
            "skipped"
        );
        assert!(error_of(json!({"kind": "Service"})).contains("apiVersion and kind"));
        let bad_field = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web"}, "spec": {"replicas": "three"}});
        let error = Manifest::from_document(bad_field).err().map(|e| {
            let source = std::error::Error::source(&e).map(ToString::to_string);
            (e.to_string(), source)
        });
        let (message, source) = error.unwrap();
        assert!(message.contains("spec.replicas"), "{message}");
        assert!(source.is_some(), "the parser's error is kept as the source");
    }
}
