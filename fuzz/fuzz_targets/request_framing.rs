//! The watch over HTTP/1.1 request framing (every byte a client sends on a cleartext or
//! terminated-TLS HTTP/1.1 connection goes through it) never panics, keeps no more than a
//! head's worth of bytes, stops after the conflict it reports, and finds the same thing
//! however the stream is cut into reads.
#![no_main]

use gateway_net::fuzzing::RequestFraming;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let mut whole = RequestFraming::new(LIMIT);
    let found_whole = whole.feed(stream);
    if found_whole.is_some() {
        assert!(whole.is_stopped());
    }
    // The same stream in reads of `step + 1` bytes.
    let mut cut = RequestFraming::new(LIMIT);
    let mut found_cut = None;
    for piece in stream.chunks(usize::from(step) + 1) {
        if let Some(index) = cut.feed(piece) {
            assert!(found_cut.is_none(), "two conflicts reported");
            found_cut = Some(index);
        }
    }
    // Cutting can only make a head look larger than the limit sooner, never find another
    // conflict.
    if found_cut.is_some() {
        assert_eq!(found_cut, found_whole);
    }
    assert!(cut.buffered() <= LIMIT + 8192);
});
