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
mod gateway;
mod hostname;
mod index;
mod route;
mod rules;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::ir::Ir;
use crate::model::Snapshot;
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: None,
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            gateway_addresses: BTreeMap::new(),
            port_offset: 0,
            advertised_addresses: Vec::new(),
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
    let ir = gateway::finish(&index, options, gateways, &mut status);
    status.diagnostics.sort();
    status.diagnostics.dedup();
    (ir, status)
}

#[cfg(test)]
mod tests;
