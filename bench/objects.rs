//! Model objects the in-process benchmarks load: headless Services of StatefulSet pods.
//! Included with `#[path = "objects.rs"] mod objects;` (benchmarks are separate crates).

use std::net::{IpAddr, Ipv4Addr};

use headless_dns::model::{
    Endpoint, EndpointSlice, Object, ObjectKey, Port, Protocol, Service, ServiceKind,
};

pub fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

/// A headless Service `name` in `ns` with `size` StatefulSet pods from address `first`.
pub fn headless(ns: &str, name: &str, size: u32, first: u32) -> Vec<Object> {
    let service = ObjectKey::new(ns, name);
    let port = Port {
        name: "web".into(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    let mut objects = vec![Object::Service(Service {
        key: service.clone(),
        kind: ServiceKind::Headless,
        ports: vec![port.clone()],
        publish_not_ready: false,
    })];
    for (chunk, start) in (0..size).step_by(100).enumerate() {
        let end = (start + 100).min(size);
        objects.push(Object::EndpointSlice(EndpointSlice {
            key: ObjectKey::new(ns, format!("{name}-{chunk}")),
            service: service.clone(),
            of: Default::default(),
            endpoints: (start..end)
                .map(|i| Endpoint {
                    ip: ip(first + i),
                    hostname: Some(format!("{name}-{i}")),
                    ready: true,
                    terminating: false,
                })
                .collect(),
            ports: vec![port.clone()],
        }));
    }
    objects
}
