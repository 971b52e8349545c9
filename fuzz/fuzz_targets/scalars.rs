//! Small parsers of manifest scalars: durations, timestamps, hostnames.
#![no_main]

use gateway_core::model::parse_rfc3339;
use gateway_core::validate::{is_valid_hostname, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_duration(text);
    let _ = parse_rfc3339(text);
    let _ = is_valid_hostname(text, true);
});
