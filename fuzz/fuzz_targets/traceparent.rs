//! The `traceparent` check (a request header every client controls) never panics, and what it
//! accepts has the W3C shape: `vv-<32 hex>-<16 hex>-ff` with non-zero ids, version `00`
//! exactly 55 bytes.
#![no_main]

use gateway_net::fuzzing::valid_traceparent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if valid_traceparent(data) {
        assert!(data.len() >= 55);
        assert!(data[2] == b'-' && data[35] == b'-' && data[52] == b'-');
        assert!(&data[..2] != b"ff");
        assert!(data[3..35].iter().any(|&b| b != b'0'));
        assert!(data[36..52].iter().any(|&b| b != b'0'));
        if &data[..2] == b"00" {
            assert_eq!(data.len(), 55);
        }
    }
});
