//! Bytes in, objects or errors out: the manifests loader never panics, as YAML or JSON.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for name in ["fuzz.yaml", "fuzz.json"] {
        let (objects, errors) = headless_dns::source::manifests::parse_file(
            Path::new(name),
            &text,
            &headless_dns::source::convert::ConvertOptions::default(),
        );
        // Every document either became objects or was reported.
        let _ = (objects.len(), errors.len());
    }
});
