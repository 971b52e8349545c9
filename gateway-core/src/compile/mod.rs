//! Snapshot → [`Ir`] + [`Status`]: attachment, hostname intersection, ReferenceGrants, backend
//! resolution, listener conflicts, and the upstream conditions for every resource.
//!
//! `compile` is pure (no I/O, no clock) and total: any snapshot yields an Ir and a Status. An
//! invalid resource is rejected alone, with the upstream reason and a [`Diagnostic`] naming the
//! object and the field; everything else still compiles.
//!
//! ```
//! use gateway_core::compile::{compile, Options};
//! use gateway_core::model::{Resource, Snapshot};
//!
//! let docs = [
//!     r#"{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
//!         "metadata": {"name": "gw"}, "spec": {"controllerName": "example.com/gateway"}}"#,
//!     r#"{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
//!         "metadata": {"name": "web", "namespace": "default"},
//!         "spec": {"gatewayClassName": "gw",
//!                  "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}"#,
//! ];
//! let mut snapshot = Snapshot::default();
//! for doc in docs {
//!     let value: serde_json::Value = serde_json::from_str(doc)?;
//!     snapshot.extend(Resource::from_json(value)?);
//! }
//! let (ir, status) = compile(&snapshot, &Options::default());
//! assert_eq!(ir.binds.len(), 1);
//! assert_eq!(ir.binds[0].port, 8080);
//! assert!(status.all_accepted());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod backend_tls;
mod conflicts;
mod emit;
mod gateway;
mod hostname;
mod index;
mod listener;
mod listener_set;
mod route;
mod rules;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::ir::Ir;
use crate::model::{GatewayStatusAddress, Snapshot};
use crate::status::Status;

pub use self::hostname::intersect_hostnames;

/// How to compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The controller name this gateway answers to. `None` accepts every GatewayClass (the
    /// file mode default: a folder of manifests is meant to be served whatever class it names).
    pub controller_name: Option<String>,
    /// Address listeners bind to when the Gateway has no `spec.addresses` of type IPAddress.
    /// Default `0.0.0.0`.
    pub bind_address: IpAddr,
    /// Per-Gateway bind addresses (`(namespace, name)` → address), overriding `bind_address`;
    /// lets one process serve several Gateways on the same ports, each on its own address.
    pub gateway_addresses: BTreeMap<(String, String), IpAddr>,
    /// Added to every listener port when binding (for unprivileged runs of manifests that use
    /// ports below 1024). Status and redirects keep the manifest's ports.
    pub port_offset: i32,
    /// Addresses reported in `Gateway.status.addresses` for Gateways that bind the unspecified
    /// address (`0.0.0.0`); a Gateway bound to a specific address reports that address.
    pub advertised_addresses: Vec<IpAddr>,
    /// Per-Gateway addresses assigned from outside the gateway (`(namespace, name)` → what was
    /// assigned so far), typically by the load balancer of a Service provisioned for the
    /// Gateway. See [`AssignedAddresses`]: such a Gateway reports them in `status.addresses`
    /// (instead of `advertised_addresses` or its bound address), binds
    /// [`gateway_addresses`](Options::gateway_addresses) or `bind_address` but never its
    /// `spec.addresses` (those are a request to the assigner), and is `Programmed=False`
    /// with reason `AddressNotAssigned` while nothing is assigned, or `AddressNotUsable` when
    /// the assigner refused a requested address.
    pub assigned_addresses: BTreeMap<(String, String), AssignedAddresses>,
}

/// The addresses something in front of a Gateway (a load balancer) assigned to it, for
/// [`Options::assigned_addresses`].
///
/// ```
/// use gateway_core::compile::{compile, AssignedAddresses, Options};
/// use gateway_core::model::{GatewayStatusAddress, Resource, Snapshot};
///
/// let mut snapshot = Snapshot::default();
/// for doc in [
///     serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
///         "metadata": {"name": "gw"}, "spec": {"controllerName": "example.com/gateway"}}),
///     serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
///         "metadata": {"name": "web", "namespace": "shop"},
///         "spec": {"gatewayClassName": "gw",
///                  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
/// ] {
///     snapshot.extend(Resource::from_json(doc)?);
/// }
/// let key = ("shop".to_owned(), "web".to_owned());
/// let mut options = Options::default();
/// // No address yet: served, but not Programmed.
/// options.assigned_addresses.insert(key.clone(), AssignedAddresses::waiting("waiting for the load balancer"));
/// let (ir, status) = compile(&snapshot, &options);
/// assert_eq!(ir.binds.len(), 1);
/// use gateway_core::model::ConditionType;
/// let find = |status: &gateway_core::status::Status, t: ConditionType| {
///     status.gateways[0].status.conditions.iter().find(|c| c.is(t)).cloned().unwrap()
/// };
/// let programmed = find(&status, ConditionType::Programmed);
/// assert_eq!((programmed.type_.as_str(), programmed.reason.as_str()), ("Programmed", "AddressNotAssigned"));
/// // Assigned: reported.
/// options.assigned_addresses.insert(key, AssignedAddresses::assigned(vec![GatewayStatusAddress {
///     type_: Some("IPAddress".into()),
///     value: "203.0.113.7".into(),
/// }]));
/// let (_, status) = compile(&snapshot, &options);
/// assert_eq!(status.gateways[0].status.addresses[0].value, "203.0.113.7");
/// assert!(find(&status, ConditionType::Programmed).is_true());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignedAddresses {
    /// What was assigned, in order: entries of type `IPAddress` or `Hostname`, reported as
    /// they are in `status.addresses`. Empty while nothing is.
    pub addresses: Vec<GatewayStatusAddress>,
    /// While `addresses` is empty: why, as the message of `Programmed=False`
    /// `AddressNotAssigned` (what is waited for).
    pub waiting: String,
    /// Whether the Gateway's listeners are served while `addresses` is empty. `false` for a
    /// Gateway that is to bind the assigned address itself: its listeners are then not bound
    /// (`Programmed=False`, reason `Pending`) until there is one.
    pub serve_while_waiting: bool,
    /// Set when an address the Gateway requests in `spec.addresses` cannot be used (the
    /// assigner refused it, or assigned others): why, as the message of `Programmed=False`
    /// `AddressNotUsable`. Whatever was assigned is still reported.
    pub unusable: Option<String>,
}

impl AssignedAddresses {
    /// Addresses that were assigned.
    pub fn assigned(addresses: Vec<GatewayStatusAddress>) -> Self {
        AssignedAddresses {
            addresses,
            waiting: String::new(),
            serve_while_waiting: true,
            unusable: None,
        }
    }

    /// None yet, `waiting` says why; the listeners are served meanwhile.
    pub fn waiting(waiting: impl Into<String>) -> Self {
        AssignedAddresses {
            addresses: Vec::new(),
            waiting: waiting.into(),
            serve_while_waiting: true,
            unusable: None,
        }
    }

    /// A requested address cannot be used, `why` says why; `addresses` are what was assigned
    /// instead (often none).
    pub fn unusable(addresses: Vec<GatewayStatusAddress>, why: impl Into<String>) -> Self {
        let why = why.into();
        AssignedAddresses {
            addresses,
            waiting: why.clone(),
            serve_while_waiting: true,
            unusable: Some(why),
        }
    }

    /// Whether the Gateway still waits for an address.
    pub fn is_waiting(&self) -> bool {
        self.addresses.is_empty()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: None,
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            gateway_addresses: BTreeMap::new(),
            port_offset: 0,
            advertised_addresses: Vec::new(),
            assigned_addresses: BTreeMap::new(),
        }
    }
}

/// Compiles a snapshot into the Ir the data plane runs and the status of every resource this
/// controller owns.
pub fn compile(snapshot: &Snapshot, options: &Options) -> (Ir, Status) {
    let index = index::Index::new(snapshot);
    let mut status = Status::default();
    let mut gateways = gateway::compile_gateways(&index, options, &mut status);
    route::attach_routes(&index, &mut gateways, &mut status);
    let ir = emit::finish(&index, options, gateways, &mut status);
    status.diagnostics.sort();
    status.diagnostics.dedup();
    (ir, status)
}

#[cfg(test)]
mod tests;
