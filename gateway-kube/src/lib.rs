//! The gateway's Kubernetes mode: a [`ConfigSource`](gateway_core::source::ConfigSource)
//! over the Kubernetes API ([`KubeSource`]), a [`StatusSink`](gateway_core::source::StatusSink)
//! that writes status back ([`KubeStatusSink`]), and Lease-based leader election
//! ([`LeaderElector`]) so that, with several replicas, every replica serves traffic and only
//! the leader writes status, and per-Gateway Services ([`ServiceOptions`],
//! [`ServiceProvisioner`]): each Gateway gets its own `type: LoadBalancer` Service, whose
//! load-balancer address becomes the Gateway's `status.addresses`.
//!
//! Against a plain-HTTP server (a test API server, `kubectl proxy`), build the client from its
//! URL; nothing here needs TLS or in-cluster environment variables:
//!
//! ```
//! # async fn client() -> Result<(), Box<dyn std::error::Error>> {
//! use gateway_kube::kube;
//! let config = kube::Config::new("http://127.0.0.1:8001".parse()?);
//! let client = kube::Client::try_from(config)?;
//! # let _ = client;
//! # Ok(())
//! # }
//! ```
//!
//! The binary that embeds this crate chooses the Kubernetes API version, as k8s-openapi asks:
//! `k8s-openapi = { version = "0.29", default-features = false, features = ["latest"] }` (or a
//! `v1_*` feature) among its own dependencies.
//!
//! `kube` and `k8s-openapi` stay inside this crate: objects are read as JSON straight into
//! [`gateway_core::model`], and status is written from [`gateway_core::status::Status`].
//! Everything takes a [`kube::Client`], so the same code runs in a cluster, from a kubeconfig,
//! or against a plain-HTTP test server (`kube::Config::new(url)`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use gateway_core::compile::{compile, Options};
//! use gateway_core::source::{ConfigSource, StatusSink};
//! use gateway_kube::{KubeSource, KubeSourceOptions, KubeStatusSink, StatusSinkOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let controller = "gateway.example.dev/embedded-gateway";
//! let mut source = KubeSource::new(client.clone(), KubeSourceOptions::new(controller));
//! let mut sink = KubeStatusSink::new(client, StatusSinkOptions::new(controller));
//! let options = Options { controller_name: Some(controller.into()), ..Options::default() };
//! while let Some(snapshot) = source.next().await? {
//!     let (_ir, status) = compile(&snapshot, &options);
//!     // apply `_ir` to the data plane, then:
//!     sink.publish(&status).await?;
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod index;
mod kinds;
mod leader;
mod provision;
mod source;
mod status;

#[cfg(test)]
mod real_cluster;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use error::Error;
/// The kube-rs release this crate is built with, for embedders that build their own
/// [`kube::Client`] (a custom config, a test server) without depending on it themselves.
pub use kube;
pub use leader::{DEFAULT_LEASE_DURATION, LeaderElector, Leadership, LeaseOptions};
pub use provision::{
    DesiredService, GATEWAY_NAME_LABEL, LOAD_BALANCER_FAILURE_REASONS, MANAGED_BY_LABEL,
    ProvisionStats, ServiceOptions, ServicePlan, ServiceProvisioner, parse_selector, service_name,
};
pub use source::{
    DEFAULT_ABSENT_RECHECK, DEFAULT_QUIET_PERIOD, KubeSource, KubeSourceOptions, SecretSelection,
};
pub use status::{KubeStatusSink, StatusSinkOptions, WriteStats};

/// The controller name the examples and manifests use by default.
pub const DEFAULT_CONTROLLER_NAME: &str = "gateway.example.dev/embedded-gateway";

/// Connects to the API server: with the kubeconfig at `kubeconfig` (its current context)
/// when given, otherwise as kube-rs infers it (`KUBECONFIG` or `~/.kube/config`, then the
/// in-cluster service account).
///
/// # Errors
///
/// [`Error::Connect`] when no configuration is found or it cannot be used.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, Error> {
    let connect_error = |message: String| Error::Connect(message);
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| connect_error(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| connect_error(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| connect_error(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| connect_error(e.to_string()))
}

/// A Gateway by namespace and name, written `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl FromStr for GatewayRef {
    type Err = Error;

    /// ```
    /// let gateway: gateway_kube::GatewayRef = "platform/main-gateway".parse()?;
    /// assert_eq!(gateway.name, "main-gateway");
    /// assert!("main-gateway".parse::<gateway_kube::GatewayRef>().is_err());
    /// # Ok::<(), gateway_kube::Error>(())
    /// ```
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(GatewayRef {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(Error::BadGatewayRef(text.to_owned())),
        }
    }
}

impl fmt::Display for GatewayRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
