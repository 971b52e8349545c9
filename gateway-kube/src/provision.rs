//! Per-Gateway Services: each Gateway of this controller gets its own `type: LoadBalancer`
//! Service, hence its own address.
//!
//! [`ServiceOptions::plan`] is pure: from a [`Snapshot`] it computes the Service every served
//! Gateway should have, the provisioned Services whose Gateway is gone or no longer ours, and,
//! from the Services' `status.loadBalancer.ingress`, the addresses compile reports for each
//! Gateway ([`ServicePlan::apply_to`]). [`ServiceProvisioner`] writes a plan: server-side apply
//! of the Services that differ from what the API holds, deletion of the stale ones, only while
//! this replica leads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::compile::{AssignedAddresses, Options};
use gateway_core::model::{
    Event, GATEWAY_GROUP, Gateway, GatewayStatusAddress, IntOrString, ObjectKey, ObjectMeta,
    OwnerReference, ResourceKind, Service, ServicePort, ServiceSpec, Snapshot,
};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::leader::{Leadership, leadership_changed, next_retry};
use crate::{Error, GatewayRef, kinds};

/// The label naming the Gateway a provisioned Service belongs to (its value: the Gateway's
/// name, in the Service's namespace). Left out for Gateway names longer than a label value
/// may be (63 characters); the owner reference names the Gateway in every case.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The label marking the Services a controller provisioned; its value is
/// [`ServiceOptions::managed_by`]. Only Services carrying it with our value are ever changed
/// or deleted.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// How the per-Gateway Services are made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceOptions {
    /// The `controllerName` of the GatewayClasses served: a Gateway of such a class (accepted
    /// by compile's rules) gets a Service.
    pub controller_name: String,
    /// Serve only this Gateway (one deployment per Gateway): only its Service is managed, and
    /// the Services of other Gateways are left to their own deployments.
    pub gateway: Option<GatewayRef>,
    /// Added to each listener port for the Service's `targetPort` (what the pods bind, as
    /// [`Options::port_offset`]).
    pub port_offset: i32,
    /// `spec.selector`: the labels of the gateway pods. Empty: no selector (the Service then
    /// has no endpoints; traffic reaches the pods only through something that routes the
    /// load balancer's address to them, as in the single-machine lab).
    pub selector: BTreeMap<String, String>,
    /// Whether each Gateway binds its listeners on its Service's load-balancer IP (a single
    /// machine where the load balancer hands out local addresses): the plan then fills
    /// [`Options::gateway_addresses`], and a Gateway without an IP yet is not bound.
    pub bind_load_balancer_addresses: bool,
}

impl ServiceOptions {
    /// Options for `controller_name`: every Gateway, no port offset, no selector, no binding
    /// of the load balancer's addresses.
    pub fn new(controller_name: impl Into<String>) -> Self {
        ServiceOptions {
            controller_name: controller_name.into(),
            ..ServiceOptions::default()
        }
    }

    /// The value of [`MANAGED_BY_LABEL`] on our Services: the controller name made a valid
    /// label value (`/` and other characters a label value cannot hold become `-`; a long name
    /// is cut and given a hash), so that two controllers in one cluster never touch each
    /// other's Services.
    ///
    /// ```
    /// let options = gateway_kube::ServiceOptions::new("gateway.example.dev/embedded-gateway");
    /// assert_eq!(options.managed_by(), "gateway.example.dev-embedded-gateway");
    /// ```
    pub fn managed_by(&self) -> String {
        label_value(&self.controller_name)
    }

    /// The field manager of our server-side applies: the controller name (at most the 128
    /// characters the API server allows).
    pub fn field_manager(&self) -> String {
        self.controller_name.chars().take(128).collect()
    }

    /// Whether a Gateway is in this deployment's scope.
    fn in_scope(&self, namespace: &str, name: &str) -> bool {
        self.gateway
            .as_ref()
            .is_none_or(|g| g.namespace == namespace && g.name == name)
    }

    /// Plans the Services for `snapshot` (which holds every Service of the cluster, with
    /// status): see [`ServicePlan`].
    ///
    /// ```
    /// use gateway_core::model::{Resource, Snapshot};
    /// use gateway_kube::ServiceOptions;
    ///
    /// let mut snapshot = Snapshot::default();
    /// for doc in [
    ///     serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
    ///         "metadata": {"name": "gw"}, "spec": {"controllerName": "example.com/gateway"}}),
    ///     serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
    ///         "metadata": {"name": "web", "namespace": "shop", "uid": "7c1e"},
    ///         "spec": {"gatewayClassName": "gw",
    ///                  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
    /// ] {
    ///     snapshot.extend(Resource::from_json(doc)?);
    /// }
    /// let mut options = ServiceOptions::new("example.com/gateway");
    /// options.port_offset = 10000;
    /// let plan = options.plan(&snapshot);
    /// let service = &plan.services[0].service;
    /// assert_eq!(service.metadata.name, "web-gw");
    /// assert_eq!(service.spec.ports[0].name.as_deref(), Some("tcp-80"));
    /// assert_eq!(service.spec.ports[0].target_port, Some(gateway_core::model::IntOrString::Int(10080)));
    /// // No load-balancer address yet: the Gateway waits for one.
    /// let key = ("shop".to_owned(), "web".to_owned());
    /// assert!(plan.assigned_addresses[&key].is_waiting());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plan(&self, snapshot: &Snapshot) -> ServicePlan {
        let managed_by = self.managed_by();
        let ours: BTreeSet<&str> = snapshot
            .gateway_classes
            .iter()
            .filter(|c| {
                c.spec.controller_name == self.controller_name
                    && c.spec.parameters_ref.is_none()
                    && gateway_core::validate::gateway_class(c).is_empty()
            })
            .map(|c| c.metadata.name.as_str())
            .collect();
        let services: BTreeMap<(&str, &str), &Service> = snapshot
            .services
            .iter()
            .map(|s| ((s.metadata.namespace(), s.metadata.name.as_str()), s))
            .collect();
        let is_managed =
            |service: &Service| service.metadata.labels.get(MANAGED_BY_LABEL) == Some(&managed_by);

        let field_manager = self.field_manager();
        let refusals = Refusals::new(&snapshot.events);
        let mut plan = ServicePlan::default();
        let mut wanted = BTreeSet::new();
        for gateway in &snapshot.gateways {
            let namespace = gateway.metadata.namespace();
            let gateway_name = gateway.metadata.name.as_str();
            if !self.in_scope(namespace, gateway_name)
                || !ours.contains(gateway.spec.gateway_class_name.as_str())
            {
                continue;
            }
            let gateway_key = (namespace.to_owned(), gateway_name.to_owned());
            let name = service_name(namespace, gateway_name);
            let waiting = |message: String| AssignedAddresses {
                serve_while_waiting: !self.bind_load_balancer_addresses,
                ..AssignedAddresses::waiting(message)
            };
            let existing = services.get(&(namespace, name.as_str())).copied();
            // The name is taken by a Service that is not ours: leave it alone.
            if existing.is_some_and(|s| !is_managed(s)) {
                let message = format!(
                    "Service {namespace}/{name} exists and is not managed by this controller \
                     (no label {MANAGED_BY_LABEL}={managed_by}); it is left alone, and the \
                     Gateway gets no address until it is removed"
                );
                tracing::warn!(service = %format!("{namespace}/{name}"), gateway = %format!("{namespace}/{gateway_name}"), "{message}");
                plan.assigned_addresses
                    .insert(gateway_key, waiting(message));
                continue;
            }
            let service = match self.desired(gateway, &name, &managed_by) {
                Ok(service) => service,
                Err(message) => {
                    tracing::warn!(gateway = %format!("{namespace}/{gateway_name}"), %message, "no Service for this Gateway");
                    plan.assigned_addresses
                        .insert(gateway_key, waiting(message));
                    continue;
                }
            };
            wanted.insert((namespace.to_owned(), name.clone()));
            let addresses = existing.map(ingress_addresses).unwrap_or_default();
            let bind_ip = addresses
                .iter()
                .filter(|a| a.type_.as_deref() == Some("IPAddress"))
                .find_map(|a| a.value.parse::<IpAddr>().ok())
                .filter(|_| self.bind_load_balancer_addresses);
            if let Some(ip) = bind_ip {
                plan.gateway_addresses.insert(gateway_key.clone(), ip);
            }
            // In the lab mode only an IP address serves: the listeners bind it.
            let has_address = if self.bind_load_balancer_addresses {
                bind_ip.is_some()
            } else {
                !addresses.is_empty()
            };
            let requested = requested_addresses(gateway);
            let service_ref = format!("{namespace}/{name}");
            let mut assigned = if has_address {
                let missing: Vec<String> = requested
                    .iter()
                    .filter(|ip| !addresses.iter().any(|a| a.value.parse() == Ok(**ip)))
                    .map(IpAddr::to_string)
                    .collect();
                if missing.is_empty() {
                    AssignedAddresses::assigned(addresses)
                } else {
                    let given: Vec<&str> = addresses.iter().map(|a| a.value.as_str()).collect();
                    let only_one = if requested.len() > 1 {
                        " (a LoadBalancer Service requests one address, the first)"
                    } else {
                        ""
                    };
                    AssignedAddresses::unusable(
                        addresses.clone(),
                        format!(
                            "requested {} not assigned to Service {service_ref}{only_one}; the \
                             load balancer gave {}",
                            missing.join(", "),
                            given.join(", ")
                        ),
                    )
                }
            } else {
                let refusal = existing.and_then(|s| refusals.latest(s, &field_manager));
                match refusal {
                    Some(event) if !requested.is_empty() => AssignedAddresses::unusable(
                        Vec::new(),
                        format!(
                            "the load balancer refused Service {service_ref} the requested \
                             address {}: {}: {}",
                            requested[0], event.reason, event.message
                        ),
                    ),
                    Some(event) => AssignedAddresses::waiting(format!(
                        "the load balancer gave Service {service_ref} no address: {}: {}",
                        event.reason, event.message
                    )),
                    None if self.bind_load_balancer_addresses => {
                        AssignedAddresses::waiting(format!(
                            "waiting for the load balancer to assign an IP address to Service \
                             {service_ref}; the listeners bind it"
                        ))
                    }
                    None => AssignedAddresses::waiting(format!(
                        "waiting for the load balancer to assign an address to Service \
                         {service_ref}"
                    )),
                }
            };
            assigned.serve_while_waiting = !self.bind_load_balancer_addresses;
            plan.assigned_addresses.insert(gateway_key, assigned);
            plan.services.push(DesiredService {
                gateway: GatewayRef {
                    namespace: namespace.to_owned(),
                    name: gateway_name.to_owned(),
                },
                key: ObjectKey::new(ResourceKind::Service, namespace, &name),
                service,
                current: existing.cloned(),
            });
        }
        for service in &snapshot.services {
            let namespace = service.metadata.namespace();
            let name = service.metadata.name.as_str();
            if !is_managed(service) || wanted.contains(&(namespace.to_owned(), name.to_owned())) {
                continue;
            }
            // With one Gateway served, the other Gateways' Services are their deployments'.
            if self.gateway.is_some() {
                let in_scope = owner_gateway(service).is_some_and(|g| self.in_scope(namespace, g));
                if !in_scope {
                    continue;
                }
            }
            plan.stale
                .push(ObjectKey::new(ResourceKind::Service, namespace, name));
        }
        plan
    }

    /// The Service `gateway` should have, or why it gets none.
    fn desired(&self, gateway: &Gateway, name: &str, managed_by: &str) -> Result<Service, String> {
        let namespace = gateway.metadata.namespace();
        let uid = gateway
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| "the Gateway has no metadata.uid to own a Service".to_owned())?;
        let mut ports: BTreeMap<(i64, &str), ServicePort> = BTreeMap::new();
        for listener in &gateway.spec.listeners {
            if !(1..=65535).contains(&listener.port) {
                continue;
            }
            let protocol = if listener.protocol.as_str() == "UDP" {
                "UDP"
            } else {
                "TCP"
            };
            let target = listener.port + i64::from(self.port_offset);
            if !(1..=65535).contains(&target) {
                tracing::warn!(gateway = %format!("{namespace}/{}", gateway.metadata.name), port = listener.port, offset = self.port_offset, "listener port out of range once shifted; not in the Service");
                continue;
            }
            ports
                .entry((listener.port, protocol))
                .or_insert_with(|| ServicePort {
                    name: Some(format!(
                        "{}-{}",
                        protocol.to_ascii_lowercase(),
                        listener.port
                    )),
                    protocol: Some(protocol.to_owned()),
                    port: listener.port,
                    target_port: Some(IntOrString::Int(target)),
                    app_protocol: None,
                });
        }
        if ports.is_empty() {
            return Err("the Gateway has no listener port a Service can expose".to_owned());
        }
        let infrastructure = gateway.spec.infrastructure.as_ref();
        let mut labels = infrastructure.map(|i| i.labels.clone()).unwrap_or_default();
        if is_label_value(&gateway.metadata.name) {
            labels.insert(GATEWAY_NAME_LABEL.to_owned(), gateway.metadata.name.clone());
        }
        labels.insert(MANAGED_BY_LABEL.to_owned(), managed_by.to_owned());
        let annotations = infrastructure
            .map(|i| i.annotations.clone())
            .unwrap_or_default();
        let api_version = if gateway
            .api_version
            .starts_with(&format!("{GATEWAY_GROUP}/"))
        {
            gateway.api_version.clone()
        } else {
            format!("{GATEWAY_GROUP}/v1")
        };
        // The first requested IPAddress: deprecated upstream, still honoured by MetalLB and
        // several cloud load balancers.
        let load_balancer_ip = requested_addresses(gateway).first().map(IpAddr::to_string);
        Ok(Service {
            api_version: "v1".to_owned(),
            kind: "Service".to_owned(),
            metadata: ObjectMeta {
                name: name.to_owned(),
                namespace: Some(namespace.to_owned()),
                labels,
                annotations,
                owner_references: vec![OwnerReference {
                    api_version,
                    kind: "Gateway".to_owned(),
                    name: gateway.metadata.name.clone(),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }],
                ..ObjectMeta::default()
            },
            spec: ServiceSpec {
                type_: Some("LoadBalancer".to_owned()),
                ports: ports.into_values().collect(),
                selector: (!self.selector.is_empty()).then(|| self.selector.clone()),
                load_balancer_ip,
                ..ServiceSpec::default()
            },
            status: None,
        })
    }
}

/// What [`ServiceOptions::plan`] found: the Services to have, those to delete, and what compile
/// should report (and bind) for each Gateway.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServicePlan {
    /// One Service per served Gateway, in snapshot order.
    pub services: Vec<DesiredService>,
    /// Services carrying our [`MANAGED_BY_LABEL`] whose Gateway is gone or no longer ours.
    pub stale: Vec<ObjectKey>,
    /// For [`Options::assigned_addresses`]: every served Gateway, with its load balancer's
    /// addresses or why it has none yet.
    pub assigned_addresses: BTreeMap<(String, String), AssignedAddresses>,
    /// For [`Options::gateway_addresses`], with
    /// [`bind_load_balancer_addresses`](ServiceOptions::bind_load_balancer_addresses): the
    /// load-balancer IP each Gateway binds.
    pub gateway_addresses: BTreeMap<(String, String), IpAddr>,
}

impl ServicePlan {
    /// Adds the plan's per-Gateway addresses to compile options (entries already there for
    /// the same Gateways are replaced).
    pub fn apply_to(&self, options: &mut Options) {
        options.assigned_addresses.extend(
            self.assigned_addresses
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        options
            .gateway_addresses
            .extend(self.gateway_addresses.iter().map(|(k, v)| (k.clone(), *v)));
    }
}

/// The Service one Gateway should have.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredService {
    /// The Gateway.
    pub gateway: GatewayRef,
    /// The Service's key.
    pub key: ObjectKey,
    /// The applied configuration: only the fields this controller sets.
    pub service: Service,
    /// The Service as the snapshot has it, when it exists.
    pub current: Option<Service>,
}

impl DesiredService {
    /// Whether the Service as it exists already has everything we want (other writers'
    /// labels, annotations and owners may be there too).
    fn is_current(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|current| covers(current, &self.service))
    }
}

/// Whether `have` holds all of `want`: its labels, annotations and owner references among
/// others', and exactly its type, ports, selector and requested address.
fn covers(have: &Service, want: &Service) -> bool {
    let contains = |have: &BTreeMap<String, String>, want: &BTreeMap<String, String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    };
    let ports = |s: &Service| {
        let mut ports: Vec<_> = s
            .spec
            .ports
            .iter()
            .map(|p| {
                (
                    p.port,
                    p.protocol().to_owned(),
                    p.name.clone(),
                    p.target_port.clone().unwrap_or(IntOrString::Int(p.port)),
                )
            })
            .collect();
        ports.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        ports
    };
    contains(&have.metadata.labels, &want.metadata.labels)
        && contains(&have.metadata.annotations, &want.metadata.annotations)
        && want
            .metadata
            .owner_references
            .iter()
            .all(|o| have.metadata.owner_references.contains(o))
        && have.spec.type_ == want.spec.type_
        && ports(have) == ports(want)
        && have.spec.selector == want.spec.selector
        && have.spec.load_balancer_ip == want.spec.load_balancer_ip
}

/// The Gateway a provisioned Service belongs to: its Gateway owner, else its
/// [`GATEWAY_NAME_LABEL`].
fn owner_gateway(service: &Service) -> Option<&str> {
    service
        .metadata
        .owner_references
        .iter()
        .find(|o| o.kind == "Gateway" && o.api_version.starts_with(GATEWAY_GROUP))
        .map(|o| o.name.as_str())
        .or_else(|| {
            service
                .metadata
                .labels
                .get(GATEWAY_NAME_LABEL)
                .map(String::as_str)
        })
}

/// The IP addresses a Gateway requests (`spec.addresses` of type `IPAddress` with a value), in
/// order. Entries of other types make compile refuse the Gateway; empty values ask for any.
fn requested_addresses(gateway: &Gateway) -> Vec<IpAddr> {
    gateway
        .spec
        .addresses
        .iter()
        .filter(|a| a.type_.as_deref().unwrap_or("IPAddress") == "IPAddress")
        .filter_map(|a| a.value.as_deref())
        .filter_map(|v| v.parse::<IpAddr>().ok())
        .collect()
}

/// The `reason`s of the warning Events with which load balancers say they could not give a
/// Service an address: MetalLB's controller (`AllocationFailed`: the address is outside every
/// pool, or taken) and the cloud-provider service controller that every cloud's controller
/// manager runs (`SyncLoadBalancerFailed`).
pub const LOAD_BALANCER_FAILURE_REASONS: &[&str] = &["AllocationFailed", "SyncLoadBalancerFailed"];

/// The load balancers' refusals in a snapshot's Events, by Service.
struct Refusals<'a> {
    by_service: HashMap<(&'a str, &'a str), Vec<&'a Event>>,
}

impl<'a> Refusals<'a> {
    fn new(events: &'a [Event]) -> Self {
        let mut by_service: HashMap<(&str, &str), Vec<&Event>> = HashMap::new();
        for event in events {
            let object = &event.involved_object;
            if object.kind == "Service"
                && event.type_ == "Warning"
                && LOAD_BALANCER_FAILURE_REASONS.contains(&event.reason.as_str())
            {
                by_service
                    .entry((object.namespace.as_str(), object.name.as_str()))
                    .or_default()
                    .push(event);
            }
        }
        Refusals { by_service }
    }

    /// The latest refusal about `service` as it is now: about this very object (its UID), and
    /// seen no earlier than our field manager last changed what it applies (seconds
    /// precision, so a refusal of the previous spec in that same second still counts until
    /// the load balancer answers again). A Service whose `managedFields` say nothing of us
    /// counts every refusal.
    fn latest(&self, service: &Service, field_manager: &str) -> Option<&'a Event> {
        let key = (service.metadata.namespace(), service.metadata.name.as_str());
        let applied_at = service
            .metadata
            .managed_fields
            .iter()
            .filter(|m| m.manager == field_manager && m.subresource.is_empty())
            .filter_map(|m| m.time.as_deref())
            .filter_map(gateway_core::model::parse_rfc3339)
            .max();
        self.by_service
            .get(&key)?
            .iter()
            .filter(|e| match (&e.involved_object.uid, &service.metadata.uid) {
                (Some(event), Some(service)) => event == service,
                _ => true,
            })
            .filter_map(|e| Some((e.last_seen()?, *e)))
            .filter(|(seen, _)| applied_at.is_none_or(|at| *seen >= at))
            .max_by_key(|(seen, _)| *seen)
            .map(|(_, e)| e)
    }
}

/// `status.loadBalancer.ingress` as Gateway status addresses: each entry's IP (`IPAddress`),
/// then its host name (`Hostname`), without repeats.
fn ingress_addresses(service: &Service) -> Vec<GatewayStatusAddress> {
    let mut out: Vec<GatewayStatusAddress> = Vec::new();
    for ingress in service.load_balancer_ingress() {
        let ip = ingress
            .ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| ("IPAddress", ip.to_string()));
        let hostname = ingress
            .hostname
            .as_deref()
            .filter(|h| !h.is_empty())
            .map(|h| ("Hostname", h.to_owned()));
        for (type_, value) in ip.into_iter().chain(hostname) {
            let address = GatewayStatusAddress {
                type_: Some(type_.to_owned()),
                value,
            };
            if !out.contains(&address) {
                out.push(address);
            }
        }
    }
    out
}

/// The name of a Gateway's Service: `<gateway>-gw` when that is a valid Service name (a DNS
/// label of at most 63 characters starting with a letter); otherwise a cleaned, truncated
/// prefix of the Gateway name, a hash of `namespace/name`, and `-gw`. Always the same for the
/// same Gateway, and two Gateways of one namespace never share one.
///
/// ```
/// use gateway_kube::service_name;
/// assert_eq!(service_name("shop", "web"), "web-gw");
/// let long = service_name("shop", &"a".repeat(80));
/// assert!(long.len() <= 63 && long.ends_with("-gw"), "{long}");
/// assert_eq!(long, service_name("shop", &"a".repeat(80)));
/// assert_ne!(service_name("shop", "v1.web"), service_name("shop", "v1-web"));
/// ```
pub fn service_name(namespace: &str, gateway: &str) -> String {
    const SUFFIX: &str = "-gw";
    let simple = format!("{gateway}{SUFFIX}");
    if is_dns_label(&simple) {
        return simple;
    }
    let hash = short_hash(&format!("{namespace}/{gateway}"));
    let cleaned: String = gateway
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let room = 63 - (1 + hash.len() + SUFFIX.len());
    let prefix: String = cleaned.chars().take(room).collect();
    let prefix = prefix.trim_end_matches('-');
    if prefix.is_empty() {
        format!("gateway-{hash}{SUFFIX}")
    } else {
        format!("{prefix}-{hash}{SUFFIX}")
    }
}

/// A DNS-1035 label: what a Service name must be.
fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// A valid label value (empty included).
fn is_label_value(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// `text` made a label value: invalid characters become `-`, the ends are trimmed to
/// alphanumerics, and a value longer than 63 characters is cut and given a hash.
fn label_value(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if cleaned.len() <= 63 {
        return cleaned.to_owned();
    }
    let hash = short_hash(text);
    let prefix: String = cleaned.chars().take(63 - 1 - hash.len()).collect();
    let prefix = prefix.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hash}")
}

/// 8 hex digits of the 64-bit FNV-1a hash of `text`: stable across releases and platforms
/// (unlike std's hasher), which a name derived from it needs.
fn short_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff))
}

/// Parses a label selector of equalities, `key=value[,key=value…]`, as the pods' labels for
/// [`ServiceOptions::selector`].
///
/// ```
/// let selector = gateway_kube::parse_selector("app.kubernetes.io/name=embedded-gateway, tier=edge")?;
/// assert_eq!(selector["app.kubernetes.io/name"], "embedded-gateway");
/// assert_eq!(selector.len(), 2);
/// assert!(gateway_kube::parse_selector("app in (a,b)").is_err());
/// # Ok::<(), gateway_kube::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::BadSelector`] when an entry is not `key=value` with a valid label key and value.
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let bad = |why: String| Error::BadSelector {
        selector: text.to_owned(),
        why,
    };
    let mut out = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(bad(format!("{entry:?} is not key=value")));
        };
        let (key, value) = (key.trim(), value.trim());
        if !is_label_key(key) {
            return Err(bad(format!("{key:?} is not a label key")));
        }
        if !is_label_value(value) {
            return Err(bad(format!("{value:?} is not a label value")));
        }
        out.insert(key.to_owned(), value.to_owned());
    }
    if out.is_empty() {
        return Err(bad("no key=value entry".to_owned()));
    }
    Ok(out)
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// What a [`ServiceProvisioner`] did, counted since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProvisionStats {
    /// Plans written (as leader).
    pub reconciles: u64,
    /// Plans skipped because this replica is not the leader.
    pub not_leader: u64,
    /// Services applied (server-side apply sent and accepted).
    pub applied: u64,
    /// Services found as wanted: nothing sent.
    pub unchanged: u64,
    /// Stale Services deleted (or found gone).
    pub deleted: u64,
    /// Writes that failed.
    pub failed: u64,
}

/// Writes [`ServicePlan`]s: applies each wanted Service that differs from what the API holds
/// and deletes the stale ones.
///
/// A Service is applied (server-side apply, field manager
/// [`ServiceOptions::field_manager`], forced: the fields are ours) when it lacks something we
/// want, or when what we want changed since our last apply (so that a label or annotation
/// removed from the Gateway's `spec.infrastructure` is removed from the Service as well, by
/// the apply semantics). Nothing is sent when the Service already has it all, or when it is
/// exactly as our last apply of the same configuration left it (another writer's field the
/// apply cannot take away does not make a write per plan). A Service is applied again when it
/// changes behind our back, since the source sees the change and plans again.
///
/// With [`with_leadership`](ServiceProvisioner::with_leadership), only the leader writes;
/// [`run`](ServiceProvisioner::run) writes the latest plan as soon as this replica leads.
///
/// ```no_run
/// use std::sync::Arc;
/// use gateway_kube::{ServiceOptions, ServiceProvisioner};
/// # async fn run(client: kube::Client, snapshot: gateway_core::model::Snapshot) -> Result<(), gateway_kube::Error> {
/// let options = ServiceOptions::new("example.com/gateway");
/// let mut provisioner = ServiceProvisioner::new(client, &options);
/// provisioner.reconcile(Arc::new(options.plan(&snapshot))).await?;
/// # Ok(())
/// # }
/// ```
pub struct ServiceProvisioner {
    client: kube::Client,
    field_manager: String,
    leadership: Option<Leadership>,
    was_leader: bool,
    latest: Option<Arc<ServicePlan>>,
    /// Per Service: the configuration we last applied, and the Service as the apply left it.
    written: HashMap<ObjectKey, (Service, Service)>,
    stats: ProvisionStats,
}

impl std::fmt::Debug for ServiceProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvisioner")
            .field("field_manager", &self.field_manager)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl ServiceProvisioner {
    /// A provisioner writing through `client`, always (no leader election).
    pub fn new(client: kube::Client, options: &ServiceOptions) -> Self {
        ServiceProvisioner {
            client,
            field_manager: options.field_manager(),
            leadership: None,
            was_leader: false,
            latest: None,
            written: HashMap::new(),
            stats: ProvisionStats::default(),
        }
    }

    /// Writes only while `leadership` says this replica leads.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// Counters of what the provisioner did.
    pub fn stats(&self) -> ProvisionStats {
        self.stats
    }

    fn is_leader(&self) -> bool {
        self.leadership.as_ref().is_none_or(Leadership::is_leader)
    }

    /// Writes `plan` when this replica leads (and remembers it otherwise, for when it does).
    ///
    /// # Errors
    ///
    /// [`Error::Provision`] when some Services could not be applied or deleted; the others
    /// were.
    pub async fn reconcile(&mut self, plan: Arc<ServicePlan>) -> Result<(), Error> {
        self.latest = Some(plan.clone());
        if !self.is_leader() {
            self.was_leader = false;
            self.stats.not_leader += 1;
            return Ok(());
        }
        if !self.was_leader {
            // Another replica may have written since this one last did.
            self.was_leader = true;
            self.written.clear();
        }
        self.stats.reconciles += 1;
        let ar = kinds::api_resource(ResourceKind::Service, "v1");
        let mut failures = Vec::new();
        for desired in &plan.services {
            if let Err(message) = self.write_one(desired, &ar).await {
                self.stats.failed += 1;
                tracing::warn!(service = %desired.key, gateway = %desired.gateway, %message, "Service not applied");
                failures.push(format!("{}: {message}", desired.key));
            }
        }
        for key in &plan.stale {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &key.namespace, &ar);
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(service = %key, "deleted: its Gateway is gone or no longer ours");
                    self.stats.deleted += 1;
                    self.written.remove(key);
                }
                Err(error) if kinds::is_not_found(&error) => {
                    self.stats.deleted += 1;
                    self.written.remove(key);
                }
                Err(error) => {
                    self.stats.failed += 1;
                    tracing::warn!(service = %key, %error, "stale Service not deleted");
                    failures.push(format!("{key}: delete failed: {error}"));
                }
            }
        }
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(Error::Provision {
                failed: failures.len(),
                first: first.clone(),
            }),
        }
    }

    async fn write_one(
        &mut self,
        desired: &DesiredService,
        ar: &kube::api::ApiResource,
    ) -> Result<(), String> {
        let last = self.written.get(&desired.key);
        let same_as_last = last.is_some_and(|(applied, _)| *applied == desired.service);
        let current = desired.current.as_ref();
        let skip = if same_as_last {
            // Ours already, or as our last apply of this configuration left it.
            desired.is_current()
                || current.is_some_and(|c| last.is_some_and(|(_, left)| *left == strip(c.clone())))
        } else {
            // Nothing applied yet (a new leader): an existing Service that has it all stays;
            // a changed configuration is applied, so that what we dropped is dropped.
            last.is_none() && desired.is_current()
        };
        if skip {
            if let (None, Some(current)) = (last, current) {
                self.written.insert(
                    desired.key.clone(),
                    (desired.service.clone(), strip(current.clone())),
                );
            }
            self.stats.unchanged += 1;
            return Ok(());
        }
        let body = serde_json::to_value(&desired.service).map_err(|e| e.to_string())?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &desired.key.namespace, ar);
        let params = PatchParams::apply(&self.field_manager).force();
        let result = api
            .patch(&desired.key.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| format!("server-side apply failed: {e}"))?;
        let left: Service = serde_json::to_value(result)
            .and_then(serde_json::from_value)
            .unwrap_or_default();
        let created = current.is_none();
        tracing::info!(service = %desired.key, gateway = %desired.gateway, created, "Service applied");
        self.stats.applied += 1;
        self.written
            .insert(desired.key.clone(), (desired.service.clone(), strip(left)));
        Ok(())
    }

    /// Writes every plan `plans` carries, and the latest one again whenever this replica
    /// becomes leader or a write failed (retried with backoff, 1 s to 30 s), until
    /// `shutdown`.
    pub async fn run(
        mut self,
        mut plans: watch::Receiver<Option<Arc<ServicePlan>>>,
        shutdown: CancellationToken,
    ) {
        let mut leadership = self.leadership.clone();
        let mut retry: Option<Duration> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = plans.changed() => if changed.is_err() { return },
                alive = leadership_changed(&mut leadership) => if !alive { leadership = None },
                () = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => {}
            }
            let Some(plan) = plans.borrow_and_update().clone() else {
                continue;
            };
            match self.reconcile(plan).await {
                Ok(()) => retry = None,
                Err(error) => {
                    let delay = next_retry(retry);
                    tracing::warn!(%error, ?delay, "Services not fully provisioned; retrying");
                    retry = Some(delay);
                }
            }
        }
    }
}

/// A Service without what changes without any writer of its configuration: `status` (the
/// load balancer's) and `resourceVersion`, so that what an apply returned compares with what
/// the watch brings later.
fn strip(mut service: Service) -> Service {
    service.metadata.resource_version = None;
    service.status = None;
    service
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels_and_distinct() {
        let names = [
            "web",
            "v1.web",
            "v1-web",
            "9lives",
            &"x".repeat(61),
            &"x".repeat(200),
            &format!("{}.b", "a".repeat(100)),
        ];
        let mut seen = BTreeSet::new();
        for name in names {
            let service = service_name("ns", name);
            assert!(is_dns_label(&service), "{name} → {service}");
            assert!(seen.insert(service.clone()), "{name} → {service} twice");
        }
        assert_eq!(
            service_name("ns", &"x".repeat(60)),
            format!("{}-gw", "x".repeat(60))
        );
        assert_ne!(
            service_name("a", &"x".repeat(70)),
            service_name("b", &"x".repeat(70))
        );
    }

    #[test]
    fn managed_by_is_a_label_value() {
        for controller in [
            "gateway.example.dev/embedded-gateway",
            "example.com/a/b~c",
            &format!("example.com/{}", "n".repeat(120)),
        ] {
            let value = label_value(controller);
            assert!(is_label_value(&value) && !value.is_empty(), "{value}");
        }
        assert_ne!(
            label_value(&format!("example.com/{}a", "n".repeat(120))),
            label_value(&format!("example.com/{}b", "n".repeat(120)))
        );
    }

    /// A snapshot with our class, Gateway `shop/web` requesting `requested` (if any), its
    /// Service as the API has it (`service` merged over what we apply) and `events`.
    fn refusal_snapshot(
        requested: Option<&str>,
        service: serde_json::Value,
        events: &[serde_json::Value],
    ) -> Snapshot {
        use gateway_core::model::Resource;
        let mut gateway = serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "shop", "uid": "g-1"},
            "spec": {"gatewayClassName": "gw",
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}});
        if let Some(ip) = requested {
            gateway["spec"]["addresses"] = serde_json::json!([{"type": "IPAddress", "value": ip}]);
        }
        let class = serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "gw"}, "spec": {"controllerName": "example.com/gateway"}});
        let mut snapshot = Snapshot::default();
        for doc in [class, gateway] {
            snapshot.extend(Resource::from_json(doc).unwrap());
        }
        let options = ServiceOptions::new("example.com/gateway");
        let mut applied =
            serde_json::to_value(&options.plan(&snapshot).services[0].service).unwrap();
        applied["metadata"]["uid"] = serde_json::json!("s-1");
        json_merge(&mut applied, service);
        snapshot.extend(Resource::from_json(applied).unwrap());
        for event in events {
            snapshot.extend(Resource::from_json(event.clone()).unwrap());
        }
        snapshot
    }

    fn json_merge(target: &mut serde_json::Value, patch: serde_json::Value) {
        match (target, patch) {
            (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
                for (k, v) in patch {
                    json_merge(target.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (target, patch) => *target = patch,
        }
    }

    fn refusal(reason: &str, uid: &str, last: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("web-gw.{last}"), "namespace": "shop"},
            "involvedObject": {"kind": "Service", "namespace": "shop", "name": "web-gw", "uid": uid},
            "type": "Warning", "reason": reason,
            "message": "Failed to allocate IP for \"shop/web-gw\": [\"192.0.2.1\"] is not allowed in config",
            "lastTimestamp": last})
    }

    /// Our field manager's entry, last changed at `time`.
    fn applied_at(time: &str) -> serde_json::Value {
        serde_json::json!({"metadata": {"managedFields": [
            {"manager": "example.com/gateway", "operation": "Apply", "time": time},
            {"manager": "metallb-controller", "operation": "Update", "subresource": "status",
             "time": "2026-12-03T17:00:00Z"}]}})
    }

    fn assigned(snapshot: &Snapshot) -> AssignedAddresses {
        let plan = ServiceOptions::new("example.com/gateway").plan(snapshot);
        plan.assigned_addresses[&("shop".to_owned(), "web".to_owned())].clone()
    }

    #[test]
    fn a_refused_requested_address_is_unusable_with_the_load_balancers_words() {
        let snapshot = refusal_snapshot(
            Some("192.0.2.1"),
            applied_at("2026-12-03T16:00:00Z"),
            &[refusal("AllocationFailed", "s-1", "2026-12-03T16:00:00Z")],
        );
        let got = assigned(&snapshot);
        let why = got.unusable.as_deref().expect("unusable");
        assert!(why.contains("192.0.2.1"), "{why}");
        assert!(
            why.contains("AllocationFailed: Failed to allocate IP"),
            "{why}"
        );
        assert!(why.contains("Service shop/web-gw"), "{why}");
        assert!(got.addresses.is_empty());
        // The same refusal without a request: still waiting, with the reason.
        let snapshot = refusal_snapshot(
            None,
            applied_at("2026-12-03T16:00:00Z"),
            &[refusal(
                "SyncLoadBalancerFailed",
                "s-1",
                "2026-12-03T16:00:01Z",
            )],
        );
        let got = assigned(&snapshot);
        assert_eq!(got.unusable, None);
        assert!(
            got.waiting.contains("SyncLoadBalancerFailed"),
            "{}",
            got.waiting
        );
    }

    #[test]
    fn refusals_of_an_earlier_spec_another_service_or_another_reason_do_not_count() {
        for (events, case) in [
            // Before our last apply: it answered the previous spec.
            (
                vec![refusal("AllocationFailed", "s-1", "2026-12-03T15:59:59Z")],
                "older",
            ),
            // A Service of the same name that was deleted.
            (
                vec![refusal("AllocationFailed", "s-0", "2026-12-03T16:00:05Z")],
                "other uid",
            ),
            (
                vec![refusal(
                    "FailedToUpdateEndpoint",
                    "s-1",
                    "2026-12-03T16:00:05Z",
                )],
                "other reason",
            ),
        ] {
            let snapshot = refusal_snapshot(
                Some("192.0.2.1"),
                applied_at("2026-12-03T16:00:00Z"),
                &events,
            );
            let got = assigned(&snapshot);
            assert_eq!(got.unusable, None, "{case}");
            assert!(got.is_waiting(), "{case}");
            assert!(
                got.waiting.starts_with("waiting for the load balancer"),
                "{case}"
            );
        }
    }

    #[test]
    fn an_address_other_than_the_requested_one_is_unusable_but_reported() {
        let given =
            serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}});
        let got = assigned(&refusal_snapshot(Some("192.0.2.1"), given.clone(), &[]));
        assert_eq!(got.addresses.len(), 1);
        assert_eq!(got.addresses[0].value, "203.0.113.7");
        let why = got.unusable.as_deref().expect("unusable");
        assert!(why.contains("requested 192.0.2.1 not assigned"), "{why}");
        // Given what was requested: assigned, and an old refusal no longer matters.
        let given =
            serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        let got = assigned(&refusal_snapshot(
            Some("192.0.2.1"),
            given,
            &[refusal("AllocationFailed", "s-1", "2026-12-03T16:00:00Z")],
        ));
        assert_eq!(got, AssignedAddresses::assigned(got.addresses.clone()));
        assert_eq!(got.addresses[0].value, "192.0.2.1");
    }

    #[test]
    fn selectors_are_equalities_of_labels() {
        assert!(parse_selector("a=b,c=").is_ok());
        for bad in ["", "a", "a!=b", "-a=b", "a=b c", "Example.com/a=b"] {
            assert!(parse_selector(bad).is_err(), "{bad:?}");
        }
    }
}
