//! The file source's YAML reader (document splitting, positions, every kind) never panics, and
//! what it loads compiles.
#![no_main]

use std::path::Path;

use gateway_core::compile::{Options, compile};
use gateway_file::{LoadOptions, load_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(snapshot) = load_str(Path::new("fuzz.yaml"), text, &LoadOptions::default()) {
        let _ = compile(&snapshot, &Options::default());
    }
});
