//! Signed queries (TSIG, RFC 8945): the fuzzer's message, signed with the server's key or
//! not, then optionally damaged in one byte, answered over UDP and TCP by a server that
//! holds the key and serves transfers. Without the signing step a fuzzer would almost never
//! reach a valid MAC; with the damage it reaches every way a signature fails (name,
//! algorithm, time, MAC size and bytes, other data). Every response must parse with
//! hickory-proto, echo the ID and set QR; the record reader must never panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use headless_dns::Config;
use headless_dns::dns::tsig::{self, TsigKey, TsigKeySpec};
use headless_dns::dns::wire::{self, Parsed, QuestionName};
use headless_dns::embed::Core;
use headless_dns::model::Change;
use headless_dns::serve::answer::{Responder, Transport};
use headless_dns::source::manifests::ManifestSet;
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "transfer:hmac-sha256:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";

fn server() -> &'static (Responder, TsigKey) {
    static SERVER: OnceLock<(Responder, TsigKey)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let spec: TsigKeySpec = KEY.parse().expect("the key parses");
        let config = Config {
            tsig_keys: vec![spec.clone()],
            transfer_allow: vec!["127.0.0.0/8".parse().expect("a CIDR")],
            ..Config::default()
        };
        let mut core = Core::new(&config);
        let (_, objects) = ManifestSet::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"))
            .expect("config/ loads");
        core.controller.apply([Change::ReplaceAll(objects)]);
        (core.responder, spec.key().expect("the key builds"))
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fuzz_target!(|data: &[u8]| {
    let (responder, key) = server();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut message = rest.to_vec();
    if mode & 1 != 0 && message.len() >= 12 {
        tsig::sign_request(&mut message, key, now());
    }
    if mode & 2 != 0 && !message.is_empty() {
        let at = usize::from(mode >> 2) * 31 % message.len();
        message[at] ^= 0x5a;
    }
    // The record reader on its own, wherever the parser finds a TSIG record.
    let mut name = QuestionName::new();
    if let Parsed::Query(query) = wire::parse(&message, &mut name)
        && let Some(at) = query.tsig
    {
        let _ = tsig::record(&message, at);
        let _ = tsig::check(std::slice::from_ref(key), &message, at, now());
    }
    let mut out = Vec::with_capacity(65535);
    for transport in [Transport::Udp, Transport::Tcp] {
        let Some(outcome) = responder.respond(&message, transport, &mut out) else {
            continue;
        };
        if outcome.transfer {
            continue; // streamed by the connection, nothing written here
        }
        let response = Message::from_vec(&out)
            .unwrap_or_else(|e| panic!("response does not parse ({e}): {out:02x?}"));
        assert_eq!(&out[..2], &message[..2], "ID echoed");
        assert!(out[2] & 0x80 != 0, "QR set");
        drop(response);
    }
});
