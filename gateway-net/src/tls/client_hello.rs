//! A small, allocation-light parser of the TLS ClientHello: just enough to read the SNI before
//! deciding what to do with a connection (pick a listener, pass it through untouched).
//!
//! The input is untrusted: every read is bounds-checked through [`Reader`], errors are typed,
//! and nothing panics. The ClientHello may be fragmented over several TLS records
//! (RFC 8446 §5.1 allows it); the handshake message is reassembled from consecutive
//! handshake records.

use std::fmt;

/// TLS record content type `handshake`.
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type `client_hello`.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Extension type `server_name` (RFC 6066 §3).
const EXT_SERVER_NAME: u16 = 0;
/// `NameType` `host_name`.
const NAME_TYPE_HOST: u8 = 0;
/// Largest record payload a peer may send (2^14, RFC 8446 §5.1); a few bytes of slack for
/// peers that pad it are not needed for a ClientHello.
const MAX_RECORD_PAYLOAD: usize = 1 << 14;
/// Length of a TLS record header.
const RECORD_HEADER: usize = 5;

/// Why bytes are not (yet) a ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientHelloError {
    /// More bytes are needed: the buffer ends inside the ClientHello.
    Incomplete,
    /// The first record is not a TLS handshake record (plain HTTP, garbage…).
    NotHandshake,
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// The bytes are a handshake record but do not form a valid ClientHello; the string says
    /// which part is wrong (for logs).
    Malformed(&'static str),
}

impl fmt::Display for ClientHelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHelloError::Incomplete => f.write_str("incomplete ClientHello"),
            ClientHelloError::NotHandshake => f.write_str("not a TLS handshake record"),
            ClientHelloError::NotClientHello => {
                f.write_str("first handshake message is not a ClientHello")
            }
            ClientHelloError::Malformed(what) => write!(f, "malformed ClientHello: {what}"),
        }
    }
}

impl std::error::Error for ClientHelloError {}

/// What the gateway needs from a ClientHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// The `host_name` of the `server_name` extension, lower-cased and without a trailing dot;
    /// `None` when the client sent no SNI.
    pub server_name: Option<String>,
    /// How many bytes of the input the records carrying the ClientHello take.
    pub len: usize,
}

/// Bounds-checked reading of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        if self.bytes.len() < n {
            return Err(ClientHelloError::Malformed(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ClientHelloError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ClientHelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or_default(),
            b.get(1).copied().unwrap_or_default(),
        ]))
    }

    /// A vector with a one- or two-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }

    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], ClientHelloError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Parses the ClientHello at the start of `input` (the first bytes a client sent).
///
/// Returns [`ClientHelloError::Incomplete`] while `input` ends inside the ClientHello, so a
/// caller can read more and call again; any other error is final.
pub fn parse_client_hello(input: &[u8]) -> Result<ClientHello, ClientHelloError> {
    // Reassemble the handshake message from consecutive handshake records.
    let mut message: Vec<u8> = Vec::new();
    let mut offset = 0usize;
    loop {
        let Some(header) = input.get(offset..offset + RECORD_HEADER) else {
            // An early byte that is not a handshake record is reported right away, so garbage
            // is refused without waiting for five bytes.
            if input.get(offset).is_some_and(|&t| t != CONTENT_HANDSHAKE) {
                return Err(ClientHelloError::NotHandshake);
            }
            return Err(ClientHelloError::Incomplete);
        };
        let [content_type, major, _minor, len_hi, len_lo] = header else {
            return Err(ClientHelloError::Incomplete);
        };
        if *content_type != CONTENT_HANDSHAKE {
            return Err(ClientHelloError::NotHandshake);
        }
        // Record versions are 3.x (SSL 3.0 to TLS 1.2 as legacy_record_version).
        if *major != 3 {
            return Err(ClientHelloError::Malformed("record version"));
        }
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
        if len == 0 || len > MAX_RECORD_PAYLOAD {
            return Err(ClientHelloError::Malformed("record length"));
        }
        let start = offset + RECORD_HEADER;
        let Some(payload) = input.get(start..start + len) else {
            return Err(ClientHelloError::Incomplete);
        };
        offset = start + len;
        // Common case: the whole ClientHello in the first record, parsed in place.
        if message.is_empty()
            && let Some(body) = complete_body(payload)?
        {
            return Ok(ClientHello {
                server_name: parse_body(body)?,
                len: offset,
            });
        }
        message.extend_from_slice(payload);
        // The handshake header says how long the message is; stop at the record that
        // completes it.
        if let Some(body) = complete_body(&message)? {
            return Ok(ClientHello {
                server_name: parse_body(body)?,
                len: offset,
            });
        }
    }
}

/// The ClientHello body when `message` (handshake bytes so far) holds all of it, `None` when
/// more are needed.
fn complete_body(message: &[u8]) -> Result<Option<&[u8]>, ClientHelloError> {
    if message
        .first()
        .is_some_and(|&t| t != HANDSHAKE_CLIENT_HELLO)
    {
        return Err(ClientHelloError::NotClientHello);
    }
    let Some(&[_, a, b, c]) = message.get(..4) else {
        return Ok(None);
    };
    let body_len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
    // A ClientHello never needs more than a few records; refuse absurd lengths early
    // instead of waiting for megabytes.
    if body_len > 4 * MAX_RECORD_PAYLOAD {
        return Err(ClientHelloError::Malformed("handshake length"));
    }
    Ok(message.get(4..4 + body_len))
}

/// Parses a ClientHello body (after the handshake header) and returns its SNI.
fn parse_body(body: &[u8]) -> Result<Option<String>, ClientHelloError> {
    let mut r = Reader::new(body);
    let _legacy_version = r.u16("legacy_version")?;
    r.take(32, "random")?;
    let session_id = r.vec8("legacy_session_id")?;
    if session_id.len() > 32 {
        return Err(ClientHelloError::Malformed("legacy_session_id"));
    }
    let suites = r.vec16("cipher_suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(ClientHelloError::Malformed("cipher_suites"));
    }
    let compression = r.vec8("legacy_compression_methods")?;
    if compression.is_empty() {
        return Err(ClientHelloError::Malformed("legacy_compression_methods"));
    }
    if r.is_empty() {
        // SSL 3.0-era hellos have no extensions, hence no SNI.
        return Ok(None);
    }
    let mut extensions = Reader::new(r.vec16("extensions")?);
    if !r.is_empty() {
        return Err(ClientHelloError::Malformed("trailing bytes"));
    }
    let mut server_name = None;
    while !extensions.is_empty() {
        let kind = extensions.u16("extension type")?;
        let data = extensions.vec16("extension data")?;
        if kind == EXT_SERVER_NAME {
            if server_name.is_some() {
                return Err(ClientHelloError::Malformed("duplicate server_name"));
            }
            server_name = parse_server_name(data)?;
        }
    }
    Ok(server_name)
}

/// The `host_name` entry of a `server_name` extension.
fn parse_server_name(data: &[u8]) -> Result<Option<String>, ClientHelloError> {
    let mut outer = Reader::new(data);
    let mut list = Reader::new(outer.vec16("server_name_list")?);
    if !outer.is_empty() {
        return Err(ClientHelloError::Malformed("server_name trailing bytes"));
    }
    let mut host = None;
    while !list.is_empty() {
        let name_type = list.u8("server_name type")?;
        let name = list.vec16("server_name")?;
        if name_type != NAME_TYPE_HOST || host.is_some() {
            // Unknown name types are skipped (RFC 6066 leaves room for them); only the first
            // host_name counts.
            continue;
        }
        host = Some(normalize_host(name)?);
    }
    Ok(host)
}

/// Checks that a host name is printable ASCII without spaces and normalises it for matching.
fn normalize_host(name: &[u8]) -> Result<String, ClientHelloError> {
    if name.is_empty() || name.len() > 255 || !name.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ClientHelloError::Malformed("host_name"));
    }
    let text = String::from_utf8_lossy(name);
    let text = text.strip_suffix('.').unwrap_or(&text);
    if text.is_empty() {
        return Err(ClientHelloError::Malformed("host_name"));
    }
    Ok(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello with the given extensions block, in one record.
    fn hello(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        let mut record = vec![22, 3, 1];
        record.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        record.extend_from_slice(&msg);
        record
    }

    fn sni_ext(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![0];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    #[test]
    fn reads_sni_and_normalises_it() {
        let bytes = hello(&sni_ext(b"App.Example.COM."));
        let parsed = parse_client_hello(&bytes).unwrap();
        assert_eq!(parsed.server_name.as_deref(), Some("app.example.com"));
        assert_eq!(parsed.len, bytes.len());
    }

    #[test]
    fn no_extensions_means_no_sni() {
        let bytes = hello(&[]);
        assert_eq!(parse_client_hello(&bytes).unwrap().server_name, None);
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let bytes = hello(&sni_ext(b"a.example.com"));
        for end in 0..bytes.len() {
            assert_eq!(
                parse_client_hello(&bytes[..end]),
                Err(ClientHelloError::Incomplete),
                "{end}"
            );
        }
    }

    #[test]
    fn reassembles_across_records() {
        let one = hello(&sni_ext(b"split.example.com"));
        let msg = &one[5..];
        let mut split = Vec::new();
        for chunk in msg.chunks(7) {
            split.extend_from_slice(&[22, 3, 1]);
            split.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            split.extend_from_slice(chunk);
        }
        let parsed = parse_client_hello(&split).unwrap();
        assert_eq!(parsed.server_name.as_deref(), Some("split.example.com"));
        assert_eq!(parsed.len, split.len());
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(
            parse_client_hello(b"GET / HTTP/1.1\r\n"),
            Err(ClientHelloError::NotHandshake)
        );
        assert_eq!(
            parse_client_hello(b"G"),
            Err(ClientHelloError::NotHandshake)
        );
        assert_eq!(
            parse_client_hello(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
            Err(ClientHelloError::NotClientHello)
        );
        assert!(matches!(
            parse_client_hello(&[22, 3, 1, 0xff, 0xff]),
            Err(ClientHelloError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_hello(&hello(&sni_ext(b"bad name"))),
            Err(ClientHelloError::Malformed(_))
        ));
    }

    /// The first flight of a rustls client: a real ClientHello.
    fn rustls_hello(
        sni: Option<&str>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Vec<u8> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.enable_sni = sni.is_some();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name =
            rustls::pki_types::ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned())
                .unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    fn real_hellos() -> Vec<(Option<&'static str>, Vec<u8>)> {
        let mut all = Vec::new();
        for versions in [
            &[&rustls::version::TLS13, &rustls::version::TLS12][..],
            &[&rustls::version::TLS12][..],
            &[&rustls::version::TLS13][..],
        ] {
            all.push((
                Some("a.example.com"),
                rustls_hello(Some("a.example.com"), versions),
            ));
            all.push((None, rustls_hello(None, versions)));
        }
        all
    }

    #[test]
    fn reads_real_client_hellos() {
        for (sni, bytes) in real_hellos() {
            let parsed = parse_client_hello(&bytes).unwrap();
            assert_eq!(parsed.server_name.as_deref(), sni);
            assert_eq!(parsed.len, bytes.len());
            // Bytes after the ClientHello (the client's next flight) do not matter.
            let mut more = bytes.clone();
            more.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
            assert_eq!(
                parse_client_hello(&more).unwrap().server_name.as_deref(),
                sni
            );
        }
    }

    #[test]
    fn real_client_hellos_truncated_at_every_offset_are_incomplete() {
        for (_, bytes) in real_hellos() {
            for end in 0..bytes.len() {
                assert_eq!(
                    parse_client_hello(&bytes[..end]),
                    Err(ClientHelloError::Incomplete),
                    "{end}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = parse_client_hello(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_client_hellos(
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..8),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let mut bytes = rustls_hello(Some("a.example.com"), &[&rustls::version::TLS13, &rustls::version::TLS12]);
            for (at, value) in flips {
                let len = bytes.len();
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = value;
                }
            }
            let cut = cut % (bytes.len() + 1);
            let _ = parse_client_hello(&bytes[..cut]);
            let _ = parse_client_hello(&bytes);
        }
    }
}
