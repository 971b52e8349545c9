//! rustls server configurations of terminating listeners: certificates chosen by SNI and
//! client certificate validation.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_core::ir;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

/// ALPN protocols of HTTPS listeners, preferred first.
const HTTPS_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Builds the rustls configuration of one terminating listener; the error is the reason the
/// listener cannot be served (reported as a `ListenerIssue`).
pub(crate) fn server_config(
    listener: &ir::Listener,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, String> {
    let Some(tls) = &listener.tls else {
        return Err("a terminating listener without TLS settings".to_owned());
    };
    let resolver = SniResolver::new(&tls.certificates, provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &tls.client_validation {
        None => builder.with_no_client_auth(),
        Some(validation) => {
            builder.with_client_cert_verifier(client_verifier(validation, provider)?)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    if listener.protocol == ir::ListenerProtocol::Https {
        config.alpn_protocols = HTTPS_ALPN.iter().map(|p| p.to_vec()).collect();
    }
    Ok(Arc::new(config))
}

fn client_verifier(
    validation: &ir::ClientValidation,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&validation.ca_pem) {
        let cert = cert.map_err(|e| format!("client CA bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("client CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("client CA bundle holds no certificate".to_owned());
    }
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if validation.allow_insecure_fallback {
        builder = builder.allow_unauthenticated();
    }
    let verifier = builder
        .build()
        .map_err(|e| format!("client validation: {e}"))?;
    if validation.allow_insecure_fallback {
        Ok(Arc::new(InsecureFallback { inner: verifier }))
    } else {
        Ok(verifier)
    }
}

/// `AllowInsecureFallback`: asks for a client certificate and checks it, but lets the
/// connection through when it is missing or invalid (the proof of key possession is still
/// checked, so a client cannot present someone else's certificate without its key).
#[derive(Debug)]
struct InsecureFallback {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for InsecureFallback {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => Ok(verified),
            Err(error) => {
                tracing::debug!(%error, "invalid client certificate accepted (AllowInsecureFallback)");
                Ok(ClientCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Picks a listener's certificate by SNI: a certificate whose DNS names hold the SNI exactly,
/// else one with a matching wildcard name, else the first certificate.
#[derive(Debug)]
pub(crate) struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`: `*.example.com` → `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    pub(crate) fn new(
        certificates: &[ir::Certificate],
        provider: &CryptoProvider,
    ) -> Result<Self, String> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for certificate in certificates {
            let (key, names) = load(certificate, provider)
                .map_err(|e| format!("certificate {}: {e}", certificate.source))?;
            for name in names {
                let name = name.to_ascii_lowercase();
                // The first certificate in `certificateRefs` order wins a name both carry.
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| key.clone()),
                    None => exact.entry(name).or_insert_with(|| key.clone()),
                };
            }
            default.get_or_insert(key);
        }
        let default = default.ok_or_else(|| "no certificate".to_owned())?;
        Ok(SniResolver {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for `sni`.
    pub(crate) fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(sni) = sni else {
            return &self.default;
        };
        let sni = sni.strip_suffix('.').unwrap_or(sni).to_ascii_lowercase();
        if let Some(key) = self.exact.get(&sni) {
            return key;
        }
        // A wildcard covers exactly one label (RFC 6125 §6.4.3), as clients verify it.
        if let Some((_, parent)) = sni.split_once('.')
            && let Some(key) = self.wildcard.get(parent)
        {
            return key;
        }
        &self.default
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()).clone())
    }
}

/// Parses and checks one certificate: the chain, the key, that they belong together; returns
/// the key and the DNS names of the end-entity certificate.
fn load(
    certificate: &ir::Certificate,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Vec<String>), String> {
    let chain = CertificateDer::pem_slice_iter(&certificate.chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("chain: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err("no certificate in tls.crt".to_owned());
    };
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("end-entity certificate: {e}"))?
        .valid_dns_names()
        .map(str::to_owned)
        .collect();
    let key =
        PrivateKeyDer::from_pem_slice(&certificate.key_pem).map_err(|e| format!("key: {e}"))?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| format!("key: {e}"))?;
    Ok((Arc::new(key), names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> (ir::Certificate, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let der = made.cert.der().to_vec();
        (
            certificate(made.cert.pem(), made.signing_key.serialize_pem()),
            der,
        )
    }

    fn certificate(chain: String, key: String) -> ir::Certificate {
        ir::Certificate {
            source: gateway_core::model::ObjectKey::new(
                gateway_core::model::ResourceKind::Secret,
                "default",
                "test",
            ),
            chain_pem: chain.into_bytes().into(),
            key_pem: key.into_bytes().into(),
        }
    }

    #[test]
    fn picks_exact_then_wildcard_then_first() {
        let provider = rustls::crypto::ring::default_provider();
        let (a, a_der) = cert(&["a.example.com", "*.example.com"]);
        let (b, b_der) = cert(&["b.example.com"]);
        let (w, w_der) = cert(&["*.example.com", "x.example.com", "*.deep.example.com"]);
        let resolver = SniResolver::new(&[a, b, w], &provider).unwrap();
        let pick = |sni: Option<&str>| resolver.pick(sni).cert.first().unwrap().to_vec();
        assert_eq!(pick(Some("a.example.com")), a_der);
        assert_eq!(pick(Some("B.Example.Com.")), b_der);
        assert_eq!(
            pick(Some("x.example.com")),
            w_der,
            "an exact name before a wildcard"
        );
        assert_eq!(
            pick(Some("y.example.com")),
            a_der,
            "the first certificate with the wildcard"
        );
        assert_eq!(pick(Some("q.deep.example.com")), w_der);
        assert_eq!(
            pick(Some("p.q.example.com")),
            a_der,
            "no match: the first certificate"
        );
        assert_eq!(pick(None), a_der);
    }

    #[test]
    fn refuses_what_rustls_refuses() {
        let provider = rustls::crypto::ring::default_provider();
        let (good, _) = cert(&["a.example.com"]);
        let (other, _) = cert(&["b.example.com"]);
        let mismatched = certificate(
            String::from_utf8(good.chain_pem.to_vec()).unwrap(),
            String::from_utf8(other.key_pem.to_vec()).unwrap(),
        );
        assert!(SniResolver::new(&[mismatched], &provider).is_err());
        let garbage = certificate("not a certificate".into(), "not a key".into());
        assert!(SniResolver::new(&[garbage], &provider).is_err());
        assert!(SniResolver::new(&[], &provider).is_err());
    }
}
