//! The JSON reader (as the Kubernetes adapter feeds objects) never panics.
#![no_main]

use std::path::Path;

use gateway_core::model::Resource;
use gateway_file::{LoadOptions, load_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = Resource::from_json(value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load_str(Path::new("fuzz.json"), text, &LoadOptions::default());
    }
});
