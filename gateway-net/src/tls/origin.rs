//! TLS from the gateway to backends (BackendTLSPolicy): one rustls client configuration per
//! policy, Gateway and application protocol, and the verification the policy asks for.
//!
//! The certificate chain must lead to the policy's CA bundle (or the platform's trust
//! store); its name must be the SNI hostname, or, when the policy lists `subjectAltNames`,
//! one of those (DNS names as rustls checks them, URIs compared exactly). Nothing is ever
//! sent in plaintext to a backend a policy covers: a configuration that cannot be built makes
//! the backend unusable.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use gateway_core::ir::{self, SubjectName, TrustAnchors};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The application protocol offered by ALPN on a backend connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Alpn {
    /// `http/1.1`.
    Http1,
    /// `h2` (gRPC, `kubernetes.io/h2c` ports).
    H2,
    /// None: a byte stream (TLSRoute Terminate, TCPRoute).
    None,
}

impl Alpn {
    pub(crate) fn of(protocol: ir::AppProtocol) -> Alpn {
        match protocol {
            ir::AppProtocol::Http1 => Alpn::Http1,
            ir::AppProtocol::H2c => Alpn::H2,
            ir::AppProtocol::Tcp | ir::AppProtocol::Udp => Alpn::None,
        }
    }
}

/// How to open TLS to the backends of one policy.
pub(crate) struct TlsOrigin {
    /// Same id, same settings: pooled connections are keyed by it.
    pub(crate) id: u64,
    /// The BackendTLSPolicy, for logs.
    pub(crate) policy: gateway_core::model::ObjectKey,
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOrigin")
            .field("id", &self.id)
            .field("policy", &self.policy)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsOrigin {
    /// The TLS handshake over a connected stream.
    pub(crate) async fn connect(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
    }
}

/// Whether an upstream failure is a certificate refused: the backend's (untrusted chain,
/// wrong name, expired), or ours by the backend (a TLS 1.3 backend refuses a missing or
/// unacceptable client certificate with an alert after the gateway's side of the handshake has
/// finished, so the alert arrives inside the HTTP exchange). Counted apart in metrics.
pub(crate) fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let refused = |e: &rustls::Error| {
        use rustls::AlertDescription as A;
        match e {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => true,
            rustls::Error::AlertReceived(alert) => matches!(
                alert,
                A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::CertificateRequired
            ),
            _ => false,
        }
    };
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<rustls::Error>().is_some_and(refused) {
            return true;
        }
        // io::Error's `source` skips the error it wraps: look inside.
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref)
            && inner.downcast_ref::<rustls::Error>().is_some_and(refused)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The TLS origins of every configuration: the same settings give the same origin (so
/// pooled connections and TLS session tickets survive a reload that does not change them).
#[derive(Default)]
pub(crate) struct Origins {
    cache: Mutex<HashMap<(ir::BackendTls, Alpn), Weak<TlsOrigin>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins").finish_non_exhaustive()
    }
}

impl Origins {
    /// The origin for `tls` spoken with `alpn`, built unless a live one has the same
    /// settings. The error says why the policy cannot be honoured.
    pub(crate) fn get(&self, tls: &ir::BackendTls, alpn: Alpn) -> Result<Arc<TlsOrigin>, String> {
        let key = (tls.clone(), alpn);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(origin) = cache.get(&key).and_then(Weak::upgrade) {
            return Ok(origin);
        }
        cache.retain(|_, origin| origin.strong_count() > 0);
        let origin = Arc::new(TlsOrigin {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            policy: tls.policy.clone(),
            connector: tokio_rustls::TlsConnector::from(client_config(tls, alpn)?),
            server_name: ServerName::try_from(tls.sni.clone())
                .map_err(|e| format!("hostname {:?}: {e}", tls.sni))?,
        });
        cache.insert(key, Arc::downgrade(&origin));
        Ok(origin)
    }
}

fn client_config(tls: &ir::BackendTls, alpn: Alpn) -> Result<Arc<ClientConfig>, String> {
    // Explicit provider: the library must not depend on a process-wide default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &tls.trust {
        TrustAnchors::Bundle { pem, .. } => Arc::new(bundle(pem)?),
        TrustAnchors::System => system_roots()?,
    };
    let verifier = BackendVerifier {
        roots,
        names: tls.subject_alt_names.clone(),
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match &tls.client_certificate {
        None => builder.with_no_client_auth(),
        Some(certificate) => {
            let chain = CertificateDer::pem_slice_iter(&certificate.chain_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate {}: {e}", certificate.source))?;
            let key = PrivateKeyDer::from_pem_slice(&certificate.key_pem)
                .map_err(|e| format!("client certificate {} key: {e}", certificate.source))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate {}: {e}", certificate.source))?
        }
    };
    config.alpn_protocols = match alpn {
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
        Alpn::H2 => vec![b"h2".to_vec()],
        Alpn::None => Vec::new(),
    };
    Ok(Arc::new(config))
}

fn bundle(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("CA bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA bundle holds no certificate".to_owned());
    }
    Ok(roots)
}

/// The platform's trust store (`wellKnownCACertificates: System`), read once.
///
/// `rustls-native-certs` rather than a compiled-in list (`webpki-roots`): operators manage
/// the roots a machine trusts (a company CA added with `update-ca-certificates`, a distro's
/// removals), and "System" should mean what the platform trusts, not what this binary was
/// built with.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "system CA certificates: not all could be read");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if ignored > 0 {
                tracing::debug!(ignored, "system CA certificates rustls cannot use");
            }
            if added == 0 {
                return Err("no system CA certificate could be loaded".to_owned());
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// Chain to the policy's roots, then the name: the SNI hostname, or any of the policy's
/// subject alternative names.
#[derive(Debug)]
struct BackendVerifier {
    roots: Arc<RootCertStore>,
    names: Vec<SubjectName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.names.is_empty() {
            rustls::client::verify_server_name(&cert, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        let mut uris: Option<Vec<String>> = None;
        for name in &self.names {
            let matched = match name {
                SubjectName::Dns(dns) => ServerName::try_from(dns.as_str())
                    .is_ok_and(|n| rustls::client::verify_server_name(&cert, &n).is_ok()),
                SubjectName::Uri(uri) => uris
                    .get_or_insert_with(|| uri_names(end_entity))
                    .iter()
                    .any(|u| u == uri),
            };
            if matched {
                return Ok(ServerCertVerified::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The URI subject alternative names of a certificate (webpki checks DNS and IP names only).
/// Called once the chain is verified, but the bytes are still the backend's: a malformed
/// extension yields no name, never a panic (`fuzz/fuzz_targets/backend_certificate.rs`).
pub fn uri_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

/// The TLS origins of the backends of one bind's listeners, held for the life of the bind's
/// state. Keyed by the address of each backend's [`ir::BackendTls`] in the Ir this state
/// holds (stable for its life) and the protocol spoken, so a request finds its origin
/// without hashing certificates.
#[derive(Debug, Default)]
pub(crate) struct OriginTable {
    origins: HashMap<(usize, Alpn), Result<Arc<TlsOrigin>, Arc<str>>>,
}

impl OriginTable {
    /// The origins every backend of `listeners` needs (HTTP, gRPC and mirror backends, TLS
    /// and TCP routes), from the gateway-wide cache.
    pub(crate) fn build(listeners: &[Arc<ir::Listener>], origins: &Origins) -> OriginTable {
        let mut table = OriginTable::default();
        for listener in listeners {
            for_each_backend(listener, &mut |service| {
                let Some(tls) = &service.tls else {
                    return;
                };
                let alpn = Alpn::of(service.protocol);
                table.origins.entry((key(tls), alpn)).or_insert_with(|| {
                    origins.get(tls, alpn).map_err(|message| {
                        tracing::error!(
                            policy = %tls.policy,
                            %message,
                            "BackendTLSPolicy cannot be honoured; its backends answer 503"
                        );
                        Arc::from(message)
                    })
                });
            });
        }
        table
    }

    /// How to reach `service`: `None` in plaintext, else its TLS origin or why there is none.
    pub(crate) fn get(
        &self,
        service: &ir::ServiceBackend,
    ) -> Option<Result<&Arc<TlsOrigin>, &str>> {
        let tls = service.tls.as_ref()?;
        Some(
            match self.origins.get(&(key(tls), Alpn::of(service.protocol))) {
                Some(Ok(origin)) => Ok(origin),
                Some(Err(message)) => Err(message),
                None => Err("no TLS settings were built for this backend"),
            },
        )
    }
}

fn key(tls: &Arc<ir::BackendTls>) -> usize {
    Arc::as_ptr(tls) as usize
}

/// Calls `f` with every Service backend of a listener: route backends, mirrors of rules and
/// backendRefs, TLSRoute and TCPRoute backends.
pub(crate) fn for_each_backend(listener: &ir::Listener, f: &mut dyn FnMut(&ir::ServiceBackend)) {
    fn filters(filters: &[ir::HttpFilter], f: &mut dyn FnMut(&ir::ServiceBackend)) {
        for filter in filters {
            if let ir::HttpFilter::Mirror(m) = filter {
                f(&m.backend);
            }
        }
    }
    fn backends(backends: &[ir::WeightedBackend], f: &mut dyn FnMut(&ir::ServiceBackend)) {
        for b in backends {
            if let ir::Backend::Service(service) = &b.backend {
                f(service);
            }
            filters(&b.filters, f);
        }
    }
    fn rule(
        rule_filters: &[ir::HttpFilter],
        action: &ir::RuleAction,
        f: &mut dyn FnMut(&ir::ServiceBackend),
    ) {
        filters(rule_filters, f);
        if let ir::RuleAction::Forward(forward) = action {
            backends(forward, f);
        }
    }
    for route in &listener.http_routes {
        for r in &route.rules {
            rule(&r.filters, &r.action, f);
        }
    }
    for route in &listener.grpc_routes {
        for r in &route.rules {
            rule(&r.filters, &r.action, f);
        }
    }
    for route in &listener.tls_routes {
        backends(&route.backends, f);
    }
    if let Some(route) = &listener.l4_route {
        backends(&route.backends, f);
    }
}
