//! The URI names of a backend's certificate (BackendTLSPolicy `subjectAltNames` of type URI),
//! read from the DER the backend sends: never a panic, and every name found is a run of the
//! input's own bytes.
#![no_main]

use gateway_net::fuzzing::uri_names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let der = rustls_pki_types::CertificateDer::from(data);
    for name in uri_names(&der) {
        assert!(
            name.is_empty() || data.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name:?} is not in the certificate"
        );
    }
});
