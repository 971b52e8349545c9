//! The certificates, Secrets and CA ConfigMaps the Go suite generates at run time (see the
//! shared folder's README), made fresh for each run with rcgen.

use std::collections::BTreeMap;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

const INFRA: &str = "gateway-conformance-infra";

/// A certificate and its key, PEM.
#[derive(Clone, Debug)]
pub(crate) struct Pem {
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// Every generated object, by `namespace/name`.
pub(crate) struct Pki {
    /// `kubernetes.io/tls` Secrets.
    pub(crate) secrets: BTreeMap<String, Pem>,
    /// ConfigMaps with a `ca.crt`.
    pub(crate) cas: BTreeMap<String, String>,
    /// Secret → the CA that signed it, for clients told to trust the Secret's own tls.crt.
    pub(crate) issuers: BTreeMap<String, String>,
}

/// Parameters for `names`, with a subject of its own (rcgen's default subject is the same for
/// every certificate, which makes a leaf look like its own issuer).
fn params(names: &[&str]) -> CertificateParams {
    // Names with a scheme are URI SANs (as the Go suite's generator makes them), the rest DNS
    // names.
    let (uris, dns): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| n.contains("://"));
    let mut params =
        CertificateParams::new(dns.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("certificate names");
    for uri in uris {
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from(uri).expect("an ASCII URI"),
        ));
    }
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        format!(
            "{} {:08x}",
            names.first().copied().unwrap_or("cert"),
            fastrand::u32(..)
        ),
    );
    params.distinguished_name = dn;
    params
}

fn self_signed(names: &[&str], ca: bool) -> (CertificateParams, KeyPair, Pem) {
    let mut params = params(names);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let key = KeyPair::generate().expect("key pair");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let pem = Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    };
    (params, key, pem)
}

fn signed(names: &[&str], issuer: &Issuer<'_, KeyPair>) -> Pem {
    let params = params(names);
    let key = KeyPair::generate().expect("key pair");
    let cert = params.signed_by(&key, issuer).expect("signed certificate");
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A CA: its certificate PEM and an issuer for leaves.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let (params, key, pem) = self_signed(&[name], true);
    (pem.cert, Issuer::new(params, key))
}

impl Pki {
    /// `https_names`: the names HTTPS cases send as SNI to listeners serving
    /// tls-validity-checks-certificate. Upstream that certificate carries only `*`, `*.org` and
    /// `*.wildcard.org`, which Go's verifier matches to `example.org`; rustls (webpki) refuses
    /// a wildcard directly under a top-level domain, so the names are added as SANs to keep
    /// verification on.
    pub(crate) fn generate(https_names: &[String]) -> Pki {
        let mut secrets = BTreeMap::new();
        let mut cas = BTreeMap::new();
        let key = |ns: &str, name: &str| format!("{ns}/{name}");
        secrets.insert(
            key("gateway-conformance-web-backend", "certificate"),
            self_signed(&["*"], false).2,
        );
        secrets.insert(
            key(INFRA, "tls-validity-checks-certificate"),
            self_signed(
                &["*", "*.org", "*.wildcard.org"]
                    .into_iter()
                    .chain(https_names.iter().map(String::as_str))
                    .collect::<Vec<_>>(),
                false,
            )
            .2,
        );
        // Frontend client-certificate validation: a CA and a client certificate, twice.
        let (default_ca, default_issuer) = ca("tls-validity-checks-ca");
        cas.insert(key(INFRA, "tls-validity-checks-ca-certificate"), default_ca);
        secrets.insert(
            key(INFRA, "tls-validity-checks-client-certificate"),
            signed(&["client.example.org"], &default_issuer),
        );
        let (port_ca, port_issuer) = ca("tls-validity-checks-per-port-ca");
        cas.insert(
            key(INFRA, "tls-validity-checks-per-port-ca-certificate"),
            port_ca,
        );
        secrets.insert(
            key(INFRA, "tls-validity-checks-per-port-client-certificate"),
            signed(&["client.example.org"], &port_issuer),
        );
        // Backend and TLSRoute certificates, under one CA.
        let (checks_ca, checks) = ca("tls-checks-ca");
        cas.insert(key(INFRA, "tls-checks-ca-certificate"), checks_ca);
        secrets.insert(
            key(INFRA, "tls-checks-certificate"),
            signed(
                &[
                    "abc.example.com",
                    "spiffe://abc.example.com/test-identity",
                    "other.example.com",
                ],
                &checks,
            ),
        );
        secrets.insert(
            key(INFRA, "tls-checks-client-certificate"),
            signed(&["client.example.com"], &checks),
        );
        let passthrough = signed(&["abc.example.com"], &checks);
        secrets.insert(
            key(INFRA, "tls-passthrough-checks-certificate"),
            passthrough.clone(),
        );
        secrets.insert(
            key(
                "gateway-conformance-app-backend",
                "tls-passthrough-checks-certificate",
            ),
            passthrough,
        );
        secrets.insert(
            key(INFRA, "tls-terminate-checks-certificate"),
            signed(&["tls.example.com"], &checks),
        );
        cas.insert(
            key("gateway-conformance-web-backend", "web-backend-cm"),
            ca("web-backend-ca").0,
        );
        cas.insert(key(INFRA, "mismatch-ca-certificate"), ca("mismatch-ca").0);
        // Every Secret signed by the tls-checks CA: a client trusting the Secret's tls.crt
        // (Go accepts a leaf found in its root pool) trusts that CA here.
        let issuers = secrets
            .keys()
            .filter(|k| {
                k.contains("tls-checks-")
                    || k.contains("tls-passthrough-")
                    || k.contains("tls-terminate-")
            })
            .map(|k| (k.clone(), key(INFRA, "tls-checks-ca-certificate")))
            .collect();
        Pki {
            secrets,
            cas,
            issuers,
        }
    }

    /// The Secrets and ConfigMaps as manifests.
    pub(crate) fn manifests(&self) -> String {
        let indent = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        let mut out = String::new();
        for (id, pem) in &self.secrets {
            let (namespace, name) = id.split_once('/').expect("namespace/name");
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: \
                 {namespace}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: \
                 |\n{}",
                indent(&pem.cert),
                indent(&pem.key)
            ));
        }
        for (id, cert) in &self.cas {
            let (namespace, name) = id.split_once('/').expect("namespace/name");
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: \
                 {namespace}\ndata:\n  ca.crt: |\n{}",
                indent(cert)
            ));
        }
        out
    }

    /// The certificate a case's prose names (`Secret ns/name (…)` or `ConfigMap ns/name …`).
    pub(crate) fn named(&self, prose: &str) -> Option<(bool, String)> {
        let mut words = prose.split_whitespace();
        let kind = words.next()?;
        let id = words.next()?;
        let id = if id.contains('/') {
            id.to_owned()
        } else {
            format!("{INFRA}/{id}")
        };
        match kind {
            "Secret" => self.secrets.get(&id).map(|_| (true, id.clone())),
            "ConfigMap" => self.cas.get(&id).map(|_| (false, id.clone())),
            _ => None,
        }
    }

    /// PEM of the certificate a prose reference names (a Secret's tls.crt or a ConfigMap's
    /// ca.crt).
    pub(crate) fn cert_of(&self, prose: &str) -> Option<String> {
        let (secret, id) = self.named(prose)?;
        if secret {
            if let Some(ca) = self.issuers.get(&id) {
                return self.cas.get(ca).cloned();
            }
            self.secrets.get(&id).map(|p| p.cert.clone())
        } else {
            self.cas.get(&id).cloned()
        }
    }
}
