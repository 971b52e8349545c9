//! Spots HTTP/1.1 requests that carry both `Content-Length` and `Transfer-Encoding`.
//!
//! Two framings on one request are how requests are smuggled: a front end that believes one
//! and a backend that believes the other disagree on where the next request starts. hyper
//! resolves such a request before the handler sees it (RFC 9112 §6.3: `Transfer-Encoding`
//! wins, `Content-Length` is dropped, the connection closes after the response), which leaves
//! the handler unable to tell it from an honest chunked request. nginx and Envoy answer it
//! `400` without forwarding it, and so does the gateway: [`FramingWatch`] sees every read of
//! the client connection (through [`crate::observed::Observed`]), follows the framing of the
//! bytes hyper reads (request heads with httparse, bodies by length or by chunk sizes, as
//! hyper frames them) and records the index of the first request with both headers, which
//! the handler answers `400`.
//!
//! On anything it does not follow (a head httparse rejects, the HTTP/2 preface, a head over
//! the size limit, a malformed chunk) the watch stops: hyper rejects those connections itself,
//! and after stopping the gateway falls back to hyper's handling, which never forwards the
//! smuggled bytes either. Bytes of an upgraded connection are framed like any others until
//! they fail to parse; a request index found there is never matched, since hyper calls no
//! handler on an upgraded connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ConnInfo;
use crate::observed::ReadObserver;

/// Largest number of headers a head may have for the watch to follow it. hyper answers `431`
/// well below it with the default limit (100); with a configured limit above it, the watch
/// stops on such a head and hyper's own handling applies.
const MAX_HEADERS: usize = 256;

/// Follows the request framing of an HTTP/1.1 byte stream (see the module documentation).
///
/// ```
/// use gateway_net::fuzzing::RequestFraming;
///
/// let mut framing = RequestFraming::new(64 * 1024);
/// // An honest request with a body that looks like a request: nothing found.
/// let first = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\nGET / HTTP/1.1\r\n\r\n";
/// assert_eq!(framing.feed(first), None);
/// // The second request has both framings.
/// let second = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
/// assert_eq!(framing.feed(second), Some(1));
/// assert!(framing.is_stopped());
/// ```
#[derive(Debug)]
pub struct RequestFraming {
    state: State,
    /// The start of a head that did not arrive in one read.
    partial_head: Vec<u8>,
    max_head: usize,
    /// Request heads seen so far: the index of the next one.
    requests: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Bytes of a `Content-Length` body still to come.
    Fixed(u64),
    Chunked(Chunk),
    Stopped,
}

/// Where a chunked body is, byte by byte as hyper's decoder reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before the first digit of a chunk size.
    Start,
    Size(u64),
    /// Spaces after the size.
    SizeSpace(u64),
    Extension(u64),
    /// The LF ending the size line.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: a trailer line or the final CRLF.
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

impl RequestFraming {
    /// A watch for a new connection whose request heads hyper limits to `max_head` bytes.
    #[must_use]
    pub fn new(max_head: usize) -> RequestFraming {
        RequestFraming {
            state: State::Head,
            partial_head: Vec::new(),
            max_head,
            requests: 0,
        }
    }

    /// Whether the watch has stopped following the stream (it then finds nothing more).
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Bytes of an incomplete head held until the rest arrives.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.partial_head.len()
    }

    /// Follows `bytes`, the next bytes of the stream; returns the index (from 0) of a request
    /// found with both `Content-Length` and `Transfer-Encoding`. The watch stops after one.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<u64> {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Stopped => return None,
                State::Head => match self.head(bytes) {
                    Ok(used) => used,
                    Err(conflict) => return Some(conflict),
                },
                State::Fixed(left) => {
                    let used = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let left = left - used as u64;
                    self.state = if left == 0 {
                        State::Head
                    } else {
                        State::Fixed(left)
                    };
                    used
                }
                State::Chunked(chunk) => self.chunked(chunk, bytes),
            };
            bytes = bytes.get(used..).unwrap_or_default();
        }
        None
    }

    fn stop(&mut self) {
        self.state = State::Stopped;
        self.partial_head = Vec::new();
    }

    /// Reads head bytes; returns how many were used, or the index of a conflicting request.
    fn head(&mut self, bytes: &[u8]) -> Result<usize, u64> {
        if self.partial_head.is_empty() {
            match parse_head(bytes) {
                Parsed::Complete(len, framing) => return self.framed(framing).map(|()| len),
                Parsed::Partial => {}
                Parsed::Invalid => {
                    self.stop();
                    return Ok(bytes.len());
                }
            }
            if bytes.len() > self.max_head.saturating_add(MAX_HEAD_SLACK) {
                // hyper answers 431 before this head is complete.
                self.stop();
            } else {
                self.partial_head.extend_from_slice(bytes);
            }
            return Ok(bytes.len());
        }
        let before = self.partial_head.len();
        if before + bytes.len() > self.max_head.saturating_add(MAX_HEAD_SLACK) {
            // hyper answers 431 before this head is complete.
            self.stop();
            return Ok(bytes.len());
        }
        self.partial_head.extend_from_slice(bytes);
        // A head ends with an empty line: reparse only when one can have arrived, so that a
        // client sending a byte at a time costs a scan of each byte, not of the whole head.
        let from = before.saturating_sub(3);
        if !has_empty_line(self.partial_head.get(from..).unwrap_or_default()) {
            return Ok(bytes.len());
        }
        match parse_head(&self.partial_head) {
            Parsed::Complete(len, framing) => {
                self.partial_head.clear();
                // The head ends inside `bytes`, since it was partial without them.
                let used = len.saturating_sub(before).min(bytes.len());
                self.framed(framing).map(|()| used)
            }
            Parsed::Partial => Ok(bytes.len()),
            Parsed::Invalid => {
                self.stop();
                Ok(bytes.len())
            }
        }
    }

    /// Moves to the body of a head just read.
    fn framed(&mut self, framing: Framing) -> Result<(), u64> {
        let index = self.requests;
        self.requests += 1;
        self.state = match framing {
            Framing::Conflict => {
                self.stop();
                return Err(index);
            }
            Framing::Chunked => State::Chunked(Chunk::Start),
            Framing::Length(0) | Framing::None => State::Head,
            Framing::Length(n) => State::Fixed(n),
            Framing::Unknown => State::Stopped,
        };
        Ok(())
    }

    /// Reads chunked-body bytes; returns how many were used.
    fn chunked(&mut self, mut chunk: Chunk, bytes: &[u8]) -> usize {
        let mut used = 0;
        while let Some(&byte) = bytes.get(used) {
            if let Chunk::Data(left) = chunk {
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - used);
                used += n;
                let left = left - n as u64;
                chunk = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            used += 1;
            let next = match (chunk, byte) {
                (Chunk::Start, b) => hex(b).map(|d| Chunk::Size(u64::from(d))),
                (Chunk::Size(size), b' ' | b'\t') => Some(Chunk::SizeSpace(size)),
                (Chunk::Size(size) | Chunk::SizeSpace(size), b';') => Some(Chunk::Extension(size)),
                (Chunk::Size(size) | Chunk::SizeSpace(size) | Chunk::Extension(size), b'\r') => {
                    Some(Chunk::SizeLf(size))
                }
                (Chunk::Size(size), b) => hex(b).and_then(|d| {
                    size.checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(d)))
                        .map(Chunk::Size)
                }),
                (Chunk::SizeSpace(size), b' ' | b'\t') => Some(Chunk::SizeSpace(size)),
                (Chunk::Extension(_), b'\n') => None,
                (Chunk::Extension(size), _) => Some(Chunk::Extension(size)),
                (Chunk::SizeLf(0), b'\n') => Some(Chunk::EndCr),
                (Chunk::SizeLf(size), b'\n') => Some(Chunk::Data(size)),
                (Chunk::DataCr, b'\r') => Some(Chunk::DataLf),
                (Chunk::DataLf, b'\n') => Some(Chunk::Start),
                (Chunk::EndCr, b'\r') => Some(Chunk::EndLf),
                (Chunk::Trailer, b'\r') => Some(Chunk::TrailerLf),
                (Chunk::EndCr | Chunk::Trailer, _) => Some(Chunk::Trailer),
                (Chunk::TrailerLf, b'\n') => Some(Chunk::EndCr),
                (Chunk::EndLf, b'\n') => {
                    self.state = State::Head;
                    return used;
                }
                _ => None,
            };
            match next {
                Some(next) => chunk = next,
                None => {
                    self.stop();
                    return bytes.len();
                }
            }
        }
        self.state = State::Chunked(chunk);
        used
    }
}

/// Bytes a partial head may exceed the limit by before the watch gives up: hyper's read buffer
/// is at least 8 KiB, whatever the configured limit.
const MAX_HEAD_SLACK: usize = 8192;

/// The value of a hex digit (bytes past ASCII are Latin-1 letters, never digits).
fn hex(byte: u8) -> Option<u32> {
    char::from(byte).to_digit(16)
}

/// Whether `bytes` holds the empty line that ends a head (httparse accepts bare LFs).
fn has_empty_line(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// How a request head frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Both `Content-Length` and `Transfer-Encoding`.
    Conflict,
    /// A framing hyper rejects (invalid or differing lengths, a final encoding other than
    /// chunked): the connection ends with this request.
    Unknown,
}

enum Parsed {
    Complete(usize, Framing),
    Partial,
    Invalid,
}

fn parse_head(bytes: &[u8]) -> Parsed {
    // Uninitialised: a head is parsed per request, and zeroing the array would cost more
    // than parsing.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let mut length: Option<u64> = None;
    let mut lengths_valid = true;
    let mut has_length = false;
    let mut transfer_encoding: Option<bool> = None;
    for h in request.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            has_length = true;
            match (digits(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(prev)) if n == prev => {}
                _ => lengths_valid = false,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // As hyper: the last Transfer-Encoding line decides whether chunked is final.
            transfer_encoding = Some(chunked_last(h.value));
        }
    }
    let framing = match (has_length, transfer_encoding) {
        (true, Some(_)) => Framing::Conflict,
        (false, Some(true)) => Framing::Chunked,
        (false, Some(false)) => Framing::Unknown,
        (true, None) => match length {
            Some(n) if lengths_valid => Framing::Length(n),
            _ => Framing::Unknown,
        },
        (false, None) => Framing::None,
    };
    Parsed::Complete(len, framing)
}

/// A `Content-Length` value: ASCII digits only.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Whether the last coding of a `Transfer-Encoding` value is `chunked`.
fn chunked_last(value: &[u8]) -> bool {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// Follows the request framing of a client connection (see the module documentation) and
/// hands the index of a conflicting request to the connection's [`ConnInfo`].
pub(crate) struct FramingWatch {
    /// `None` once stopped, or for HTTP/2 connections, which are never followed.
    framing: Option<RequestFraming>,
    conn: Arc<ConnInfo>,
}

impl FramingWatch {
    /// A watch over a client connection whose heads hyper limits to `max_head` bytes (`None`:
    /// HTTP/2, nothing to follow).
    pub(crate) fn new(conn: Arc<ConnInfo>, max_head: Option<usize>) -> FramingWatch {
        FramingWatch {
            framing: max_head.map(RequestFraming::new),
            conn,
        }
    }
}

impl ReadObserver for FramingWatch {
    fn observe(&mut self, bytes: &[u8]) {
        let Some(framing) = self.framing.as_mut() else {
            return;
        };
        if let Some(index) = framing.feed(bytes) {
            self.conn.framing_conflict.store(index, Ordering::Relaxed);
        }
        if framing.is_stopped() {
            self.framing = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::RequestFraming;

    const LIMIT: usize = 64 * 1024;

    /// Feeds `stream` in pieces cut at `cuts`; the conflict found, and the watch.
    fn feed_cut(stream: &[u8], cuts: &[usize]) -> (Option<u64>, RequestFraming) {
        let mut framing = RequestFraming::new(LIMIT);
        let mut found = None;
        let mut from = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([stream.len()]) {
            if cut < from {
                continue;
            }
            if let Some(i) = framing.feed(&stream[from..cut]) {
                assert!(found.is_none(), "a second conflict after stopping");
                found = Some(i);
            }
            from = cut;
        }
        (found, framing)
    }

    #[test]
    fn honest_requests_whose_bodies_look_like_heads_are_not_flagged() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /fixed HTTP/1.1\r\nHost: a\r\nContent-Length: 60\r\n\r\n\
            POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n\
            POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            2c;name=value\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTE: x\r\n\r\n\r\n\
            0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
            \r\nGET /after-a-stray-crlf HTTP/1.1\r\nHost: a\r\n\r\n";
        for cuts in [vec![], (0..stream.len()).collect::<Vec<_>>()] {
            let (found, framing) = feed_cut(stream, &cuts);
            assert_eq!(found, None);
            assert!(!framing.is_stopped());
            assert_eq!(framing.requests, 4);
        }
    }

    #[test]
    fn both_framings_are_found_in_either_order_and_after_honest_requests() {
        let cl_te = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let te_cl = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: x\r\n\r\n";
        let te_gzip = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n";
        for head in [&cl_te[..], &te_cl[..], &te_gzip[..]] {
            assert_eq!(feed_cut(head, &[]).0, Some(0));
            let mut stream =
                b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok".to_vec();
            stream.extend_from_slice(head);
            let (found, framing) = feed_cut(&stream, &[20, 21, 60]);
            assert_eq!(found, Some(2));
            assert!(framing.is_stopped());
        }
    }

    #[test]
    fn streams_it_does_not_follow_stop_the_watch() {
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let (found, framing) = feed_cut(h2, &[3]);
        assert_eq!((found, framing.is_stopped()), (None, true));
        let bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(feed_cut(bad_chunk, &[]).1.is_stopped());
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.resize(LIMIT + 9000, b'a');
        let (found, framing) = feed_cut(&huge, &[100, 5000, 70_000]);
        assert_eq!((found, framing.is_stopped()), (None, true));
        assert!(framing.partial_head.is_empty());
    }

    /// One request of a generated stream.
    #[derive(Debug, Clone)]
    enum Req {
        Bodiless,
        Fixed(Vec<u8>),
        /// Chunks, an extension on each, and trailer lines.
        Chunked(Vec<Vec<u8>>, bool, Vec<String>),
        Conflict(bool),
    }

    impl Req {
        fn write(&self, out: &mut Vec<u8>) {
            match self {
                Req::Bodiless => out.extend_from_slice(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"),
                Req::Fixed(body) => {
                    let head = format!("PUT / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
                    out.extend_from_slice(head.as_bytes());
                    out.extend_from_slice(body);
                }
                Req::Chunked(chunks, ext, trailers) => {
                    out.extend_from_slice(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
                    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                        let ext = if *ext { ";a=b" } else { "" };
                        out.extend_from_slice(format!("{:X}{ext}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n");
                    for t in trailers {
                        out.extend_from_slice(format!("x-{t}: v\r\n").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                }
                Req::Conflict(te_first) => {
                    let (a, b) = ("Transfer-Encoding: chunked", "Content-Length: 4");
                    let (a, b) = if *te_first { (a, b) } else { (b, a) };
                    out.extend_from_slice(
                        format!("POST / HTTP/1.1\r\n{a}\r\n{b}\r\n\r\n").as_bytes(),
                    );
                }
            }
        }
    }

    fn req() -> impl Strategy<Value = Req> {
        let body = proptest::collection::vec(any::<u8>(), 0..300);
        prop_oneof![
            Just(Req::Bodiless),
            body.clone().prop_map(Req::Fixed),
            (
                proptest::collection::vec(body, 0..4),
                any::<bool>(),
                proptest::collection::vec("[a-z]{1,8}", 0..3)
            )
                .prop_map(|(c, e, t)| Req::Chunked(c, e, t)),
            any::<bool>().prop_map(Req::Conflict),
        ]
    }

    proptest! {
        /// Differential: the watch reports exactly the index of the first request generated
        /// with both framings, however the stream is cut into reads.
        #[test]
        fn the_first_conflict_is_found_at_its_index(
            reqs in proptest::collection::vec(req(), 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut stream = Vec::new();
            for r in &reqs {
                r.write(&mut stream);
            }
            let expected = reqs.iter().position(|r| matches!(r, Req::Conflict(_)));
            let (found, framing) = feed_cut(&stream, &cuts);
            prop_assert_eq!(found, expected.map(|i| i as u64));
            if expected.is_none() {
                prop_assert!(!framing.is_stopped());
                prop_assert_eq!(framing.requests, reqs.len() as u64);
            }
        }

        /// Whatever the bytes, the watch neither panics nor keeps more than a head's worth.
        #[test]
        fn arbitrary_bytes_are_harmless(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let (_, framing) = feed_cut(&bytes, &cuts);
            prop_assert!(framing.partial_head.len() <= LIMIT + super::MAX_HEAD_SLACK);
        }
    }
}
