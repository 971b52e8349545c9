//! Request path normalisation (untrusted input on every request) never panics, and is
//! idempotent: a normalised path normalises to itself.
#![no_main]

use gateway_core::router::normalize_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(normal) = normalize_path(path) {
        let again = normalize_path(&normal).expect("a normalised path stays valid");
        assert_eq!(again, normal, "normalisation is idempotent");
    }
});
