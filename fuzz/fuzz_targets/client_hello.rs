//! The ClientHello parser (the first bytes of every TLS connection, before any
//! authentication) never panics, and its answers are consistent: a parsed ClientHello
//! reports a length within the input, and parsing just those bytes gives the same answer.
#![no_main]

use gateway_net::fuzzing::{ClientHelloError, parse_client_hello};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_client_hello(data) {
        Ok(hello) => {
            assert!(hello.len <= data.len());
            let again = parse_client_hello(&data[..hello.len]).expect("the same records parse again");
            assert_eq!(again, hello);
            if let Some(name) = &hello.server_name {
                assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
        Err(ClientHelloError::Incomplete) => {
            // A prefix of an incomplete input is incomplete too (or already refused).
            if let Some(shorter) = data.len().checked_sub(1) {
                assert!(parse_client_hello(&data[..shorter]).is_err());
            }
        }
        Err(_) => {}
    }
});
