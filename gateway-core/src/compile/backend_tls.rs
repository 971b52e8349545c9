//! BackendTLSPolicy: which policy applies to a Service port, the TLS it asks for, and its
//! status for each Gateway whose routes send traffic to the Services it targets.
//!
//! Precedence (the spec's): a policy naming the port by `sectionName` applies before one that
//! targets the whole Service, so the two never conflict; two policies with the same target
//! (Service and `sectionName`) conflict, and the older one (creation time, then
//! `namespace/name`) applies while the other is `Accepted=False/Conflicted`. An unusable
//! winner (no valid CA, invalid spec) makes the port unusable: requests fail, never in
//! plaintext.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::gateway::CompiledGateway;
use super::index::Index;
use crate::ir::{self, BackendTls, RouteOrder, SubjectName, TrustAnchors};
use crate::model::{
    BackendTlsPolicy, Condition, ConditionType, GATEWAY_GROUP, ObjectKey, ParentReference,
    PolicyAncestorStatus, PolicyStatus, Reason, ResourceKind,
};
use crate::status::{Diagnostic, ObjectStatus, Status};
use crate::validate;

/// Every BackendTLSPolicy of a snapshot, judged once per compile.
#[derive(Default)]
pub(super) struct Policies<'s> {
    compiled: Vec<CompiledPolicy<'s>>,
    /// `(namespace, Service)` → for each `sectionName` (`None`: the whole Service), the
    /// policies targeting it (indices into `compiled`), the winner first.
    targets: BTreeMap<(String, String), BTreeMap<Option<String>, Vec<usize>>>,
}

struct CompiledPolicy<'s> {
    policy: &'s BackendTlsPolicy,
    key: ObjectKey,
    /// `Err`: Accepted=False with this reason.
    accepted: Result<(), (Reason, String)>,
    /// `Err`: ResolvedRefs=False with this reason.
    resolved: Result<(), (Reason, String)>,
    /// What the data plane gets; `None` when the policy cannot be honoured.
    tls: Option<Arc<BackendTls>>,
}

/// What a Service port gets from the policies targeting it.
pub(super) enum Applied {
    /// No policy: plaintext.
    None,
    /// TLS as the policy says.
    Tls(Arc<BackendTls>),
    /// A policy applies but cannot be honoured: the backend is unusable.
    Unusable(String),
}

impl<'s> Policies<'s> {
    pub(super) fn new(index: &Index<'s>) -> Policies<'s> {
        let mut compiled: Vec<CompiledPolicy<'s>> = index
            .snapshot
            .backend_tls_policies
            .iter()
            .map(|p| compile_policy(index, p))
            .collect();
        // Policies per target, oldest first.
        let mut targets: BTreeMap<(String, String, Option<String>), Vec<usize>> = BTreeMap::new();
        for (i, c) in compiled.iter().enumerate() {
            for t in &c.policy.spec.target_refs {
                if t.group.is_empty() && t.kind == "Service" {
                    let section = t.section_name.clone().filter(|s| !s.is_empty());
                    let entry = targets
                        .entry((c.key.namespace.clone(), t.name.clone(), section))
                        .or_default();
                    if !entry.contains(&i) {
                        entry.push(i);
                    }
                }
            }
        }
        let order = |c: &CompiledPolicy<'_>| {
            RouteOrder::new(
                c.policy.metadata.created_at(),
                &c.key.namespace,
                &c.key.name,
            )
        };
        let mut by_service: BTreeMap<(String, String), BTreeMap<Option<String>, Vec<usize>>> =
            BTreeMap::new();
        let mut conflicted: Vec<(usize, usize)> = Vec::new();
        for ((namespace, service, section), mut policies) in targets {
            policies.sort_by_key(|&i| order(&compiled[i]));
            let winner = policies[0];
            conflicted.extend(policies[1..].iter().map(|&loser| (loser, winner)));
            by_service
                .entry((namespace, service))
                .or_default()
                .insert(section, policies);
        }
        for (loser, winner) in conflicted {
            let message = format!(
                "{} targets the same Service port and is older, so it applies instead",
                compiled[winner].key
            );
            compiled[loser].accepted = Err((Reason::Conflicted, message));
        }
        Policies {
            compiled,
            targets: by_service,
        }
    }

    /// What port `port_name` of Service `namespace/service` gets. Every policy targeting the
    /// port, applied or not (conflicted), goes into `used`: a Gateway whose routes send
    /// traffic there is an ancestor of each.
    pub(super) fn applied(
        &self,
        namespace: &str,
        service: &str,
        port_name: Option<&str>,
        used: &mut UsedPolicies,
    ) -> Applied {
        let Some(sections) = self
            .targets
            .get(&(namespace.to_owned(), service.to_owned()))
        else {
            return Applied::None;
        };
        let port = port_name
            .filter(|p| !p.is_empty())
            .and_then(|p| sections.get(&Some(p.to_owned())));
        let whole = sections.get(&None);
        for &i in port.into_iter().chain(whole).flatten() {
            used.insert(self.compiled[i].key.clone());
        }
        let winner = port.or(whole).and_then(|policies| policies.first());
        let Some(policy) = winner.map(|&i| &self.compiled[i]) else {
            return Applied::None;
        };
        match &policy.tls {
            Some(tls) => Applied::Tls(tls.clone()),
            None => {
                let why = policy
                    .accepted
                    .as_ref()
                    .err()
                    .or(policy.resolved.as_ref().err())
                    .map(|(reason, message)| format!("{reason}: {message}"))
                    .unwrap_or_default();
                Applied::Unusable(format!("{} cannot be honoured ({why})", policy.key))
            }
        }
    }

    /// The status of every policy that applies to traffic of one of `gateways`: one ancestor
    /// entry per such Gateway.
    pub(super) fn write_status(&self, gateways: &[CompiledGateway], status: &mut Status) {
        for policy in &self.compiled {
            let generation = policy.policy.metadata.generation;
            if let Err((_, message)) = &policy.accepted {
                status.diagnostics.push(Diagnostic {
                    object: policy.key.clone(),
                    field: String::new(),
                    message: message.clone(),
                });
            }
            if let Err((_, message)) = &policy.resolved
                && policy.accepted.is_ok()
            {
                status.diagnostics.push(Diagnostic {
                    object: policy.key.clone(),
                    field: "spec.validation.caCertificateRefs".into(),
                    message: message.clone(),
                });
            }
            let ancestors: Vec<PolicyAncestorStatus> = gateways
                .iter()
                .filter(|g| g.backend_tls_policies.contains(&policy.key))
                .map(|g| PolicyAncestorStatus {
                    ancestor_ref: ParentReference {
                        group: Some(GATEWAY_GROUP.to_owned()),
                        kind: Some("Gateway".to_owned()),
                        namespace: Some(g.key.namespace.clone()),
                        name: g.key.name.clone(),
                        section_name: None,
                        port: None,
                    },
                    controller_name: g.controller.clone(),
                    conditions: vec![
                        condition(ConditionType::Accepted, &policy.accepted, generation),
                        condition(ConditionType::ResolvedRefs, &policy.resolved, generation),
                    ],
                })
                .collect();
            if !ancestors.is_empty() {
                status.policies.push(ObjectStatus {
                    key: policy.key.clone(),
                    generation,
                    uid: policy.policy.metadata.uid.clone(),
                    status: PolicyStatus { ancestors },
                });
            }
        }
        status.policies.sort_by(|a, b| a.key.cmp(&b.key));
    }
}

fn condition(
    type_: ConditionType,
    outcome: &Result<(), (Reason, String)>,
    generation: Option<i64>,
) -> Condition {
    let ok = match type_ {
        ConditionType::Accepted => Reason::Accepted,
        _ => Reason::ResolvedRefs,
    };
    match outcome {
        Ok(()) => Condition::new(type_, true, ok, "", generation),
        Err((reason, message)) => Condition::new(type_, false, *reason, message, generation),
    }
}

fn compile_policy<'s>(index: &Index<'s>, policy: &'s BackendTlsPolicy) -> CompiledPolicy<'s> {
    let key = ObjectKey::of(ResourceKind::BackendTlsPolicy, &policy.metadata);
    let namespace = policy.metadata.namespace();
    let mut compiled = CompiledPolicy {
        policy,
        key,
        accepted: Ok(()),
        resolved: Ok(()),
        tls: None,
    };
    let errors = validate::backend_tls_policy(policy);
    if !errors.is_empty() {
        compiled.accepted = Err((Reason::Invalid, super::gateway::join_errors(&errors)));
        return compiled;
    }
    let validation = &policy.spec.validation;
    let trust = match validation.well_known_ca_certificates.as_deref() {
        Some("System") => TrustAnchors::System,
        Some(other) if !other.is_empty() => {
            compiled.accepted = Err((
                Reason::Invalid,
                format!("wellKnownCACertificates {other:?} is not supported (only \"System\")"),
            ));
            return compiled;
        }
        _ => {
            let mut sources = Vec::new();
            let mut pem = Vec::new();
            let mut problems = Vec::new();
            for ca_ref in &validation.ca_certificate_refs {
                // ConfigMaps are the spec's Core; Secrets (the same `ca.crt` key) are what
                // cert-manager writes a CA to, and Envoy Gateway reads them too.
                let (kind, found) = match (ca_ref.group.as_str(), ca_ref.kind.as_str()) {
                    ("", "ConfigMap") => (
                        ResourceKind::ConfigMap,
                        index
                            .config_map(namespace, &ca_ref.name)
                            .and_then(|c| c.get("ca.crt")),
                    ),
                    ("", "Secret") => (
                        ResourceKind::Secret,
                        index
                            .secret(namespace, &ca_ref.name)
                            .and_then(|c| c.get("ca.crt")),
                    ),
                    _ => {
                        problems.push((
                            Reason::InvalidKind,
                            format!(
                                "caCertificateRef {}/{} {:?} is neither a ConfigMap nor a Secret",
                                super::backend::display_group(&ca_ref.group),
                                ca_ref.kind,
                                ca_ref.name
                            ),
                        ));
                        continue;
                    }
                };
                let bundle = found.and_then(Result::ok).filter(|p| {
                    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(p).collect();
                    certs.is_ok_and(|c| !c.is_empty())
                });
                match bundle {
                    Some(bundle) => {
                        sources.push(ObjectKey::new(kind, namespace, &ca_ref.name));
                        pem.extend_from_slice(&bundle);
                        if !pem.ends_with(b"\n") {
                            pem.push(b'\n');
                        }
                    }
                    None => problems.push((
                        Reason::InvalidCACertificateRef,
                        format!(
                            "{} {namespace}/{} is missing or has no valid PEM certificate in \
                             \"ca.crt\"",
                            ca_ref.kind, ca_ref.name
                        ),
                    )),
                }
            }
            if let Some((reason, _)) = problems.first() {
                let message = problems
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                compiled.resolved = Err((*reason, message.clone()));
                if sources.is_empty() {
                    compiled.accepted = Err((Reason::NoValidCACertificate, message));
                    return compiled;
                }
            }
            TrustAnchors::Bundle {
                sources,
                pem: pem.into(),
            }
        }
    };
    let subject_alt_names = validation
        .subject_alt_names
        .iter()
        .filter_map(|san| match san.type_.as_str() {
            "Hostname" => san
                .hostname
                .as_deref()
                .map(|h| SubjectName::Dns(h.to_ascii_lowercase())),
            "URI" => san.uri.clone().map(SubjectName::Uri),
            _ => None,
        })
        .collect();
    compiled.tls = Some(Arc::new(BackendTls {
        policy: compiled.key.clone(),
        sni: validation.hostname.to_ascii_lowercase(),
        trust,
        subject_alt_names,
        client_certificate: None,
    }));
    compiled
}

/// Gives every TLS backend of a Gateway's listener the Gateway's client certificate. `cache`
/// keeps one copy per policy, so backends of one policy keep sharing their TLS settings.
pub(super) fn offer_client_certificate(
    listener: &mut super::listener::CompiledListener,
    certificate: &ir::Certificate,
    cache: &mut BTreeMap<ObjectKey, Arc<BackendTls>>,
) {
    let mut give = ClientCertificate { certificate, cache };
    for route in &mut listener.http_routes {
        for rule in &mut route.rules {
            give.rule(&mut rule.filters, &mut rule.action);
        }
    }
    for route in &mut listener.grpc_routes {
        for rule in &mut route.rules {
            give.rule(&mut rule.filters, &mut rule.action);
        }
    }
    for route in &mut listener.tls_routes {
        give.backends(&mut route.backends);
    }
    for (_, route) in &mut listener.l4_routes {
        give.backends(&mut route.backends);
    }
}

struct ClientCertificate<'a> {
    certificate: &'a ir::Certificate,
    cache: &'a mut BTreeMap<ObjectKey, Arc<BackendTls>>,
}

impl ClientCertificate<'_> {
    fn service(&mut self, service: &mut ir::ServiceBackend) {
        if let Some(tls) = &service.tls {
            let copy = self.cache.entry(tls.policy.clone()).or_insert_with(|| {
                Arc::new(BackendTls {
                    client_certificate: Some(self.certificate.clone()),
                    ..BackendTls::clone(tls)
                })
            });
            service.tls = Some(copy.clone());
        }
    }

    fn filters(&mut self, filters: &mut [ir::HttpFilter]) {
        for filter in filters {
            if let ir::HttpFilter::Mirror(m) = filter {
                self.service(&mut m.backend);
            }
        }
    }

    fn backends(&mut self, backends: &mut [ir::WeightedBackend]) {
        for b in backends {
            if let ir::Backend::Service(service) = &mut b.backend {
                self.service(service);
            }
            self.filters(&mut b.filters);
        }
    }

    fn rule(&mut self, filters: &mut [ir::HttpFilter], action: &mut ir::RuleAction) {
        self.filters(filters);
        if let ir::RuleAction::Forward(backends) = action {
            self.backends(backends);
        }
    }
}

/// The policies whose backends a route uses, recorded while its backends resolve.
pub(super) type UsedPolicies = BTreeSet<ObjectKey>;
