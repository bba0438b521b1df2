//! DNS over HTTPS requests: a GET's query string (its `dns` parameter, base64url) or a POST's
//! body, through the server's own decoding and answering, with the demo cluster of config/
//! loaded. The first byte picks the method. Every 200 response must carry a DNS message that
//! parses with hickory-proto, echoes the query ID and has QR set; every other status must be
//! one the server documents (400, 413).
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use headless_dns::Config;
use headless_dns::embed::Core;
use headless_dns::metrics::{Metrics, Proto, QueryStats};
use headless_dns::model::Change;
use headless_dns::serve::answer::Responder;
use headless_dns::serve::https::{dns_parameter, dns_response};
use headless_dns::source::manifests::ManifestSet;
use hickory_proto::op::Message;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;

fn server() -> &'static (Responder, Arc<QueryStats>) {
    static SERVER: OnceLock<(Responder, Arc<QueryStats>)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut core = Core::new(&Config::default());
        let (_, objects) = ManifestSet::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config"))
            .expect("config/ loads");
        core.controller.apply([Change::ReplaceAll(objects)]);
        let stats = Metrics::new().query_stats(Proto::Https);
        (core.responder, stats)
    })
}

/// The body of a response built from a `Full` body: ready at once.
fn body_of(response: hyper::Response<http_body_util::Full<hyper::body::Bytes>>) -> Vec<u8> {
    let collected = futures_lite_block_on(response.into_body().collect());
    collected.map(|c| c.to_bytes().to_vec()).unwrap_or_default()
}

/// Polls a future that is ready at once (a `Full` body's collection).
fn futures_lite_block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a Full body is ready at once"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (responder, stats) = server();
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let query = if method & 1 == 0 {
        // GET: the rest is the URI's query string.
        let text = String::from_utf8_lossy(rest);
        match dns_parameter(Some(&text)) {
            Ok(message) => message,
            Err(response) => {
                let status = response.status().as_u16();
                assert!(matches!(status, 400 | 413), "GET refused with {status}");
                return;
            }
        }
    } else {
        // POST: the rest is the body.
        rest.to_vec()
    };
    let response = dns_response(&query, responder, stats);
    let status = response.status().as_u16();
    assert!(matches!(status, 200 | 400), "status {status}");
    let body = body_of(response);
    if status == 200 {
        let message = Message::from_vec(&body)
            .unwrap_or_else(|e| panic!("response does not parse ({e}): {body:02x?}"));
        assert_eq!(&body[..2], &query[..2], "ID echoed");
        assert!(body[2] & 0x80 != 0, "QR set");
        drop(message);
    }
});
