//! Bytes in, response bytes out, with the demo cluster of config/ loaded. Every response
//! must parse with hickory-proto, echo the query ID, and fit the size the query allowed.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use headless_dns::Config;
use headless_dns::serve::answer::{Responder, Transport};
use headless_dns::config::parse_zone;
use headless_dns::model::Change;
use headless_dns::embed::Core;
use headless_dns::source::manifests::ManifestSet;
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

const MAX_UDP: u16 = 1232;

fn responder() -> &'static Responder {
    static RESPONDER: OnceLock<Responder> = OnceLock::new();
    RESPONDER.get_or_init(|| {
        let config = Config {
            zones: vec![
                parse_zone("cluster.local").unwrap(),
                parse_zone("sts.example.internal").unwrap(),
            ],
            max_udp_size: MAX_UDP,
            ..Config::default()
        };
        let mut core = Core::new(&config);
        let (_, objects) = ManifestSet::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"))
            .expect("config/ loads");
        core.controller.apply([Change::ReplaceAll(objects)]);
        core.responder
    })
}

fuzz_target!(|data: &[u8]| {
    let responder = responder();
    let mut out = Vec::with_capacity(65535);
    for transport in [Transport::Udp, Transport::Tcp] {
        if responder.respond(data, transport, &mut out).is_none() {
            continue;
        }
        let response = Message::from_vec(&out)
            .unwrap_or_else(|e| panic!("response does not parse ({e}): {out:02x?}"));
        assert_eq!(&out[..2], &data[..2], "ID echoed");
        assert!(out[2] & 0x80 != 0, "QR set");
        if transport == Transport::Udp {
            assert!(
                out.len() <= usize::from(MAX_UDP),
                "{} bytes over UDP",
                out.len()
            );
            // Without EDNS in the query, the RFC 1035 limit.
            if let Ok(query) = Message::from_vec(data)
                && query.edns.is_none()
            {
                assert!(out.len() <= 512, "{} bytes without EDNS", out.len());
            }
        }
        drop(response);
    }
});
