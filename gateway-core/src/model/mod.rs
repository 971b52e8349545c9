//! The Gateway API model: serde types that read the real Kubernetes manifests.
//!
//! Every kind and version that upstream serves or served is read with the same types
//! (`TCPRoute` `v1alpha2` and `v1` share one shape). Defaults the CRDs apply are exposed as
//! accessor methods (`ParentReference::kind()`, `HttpPathMatch::value()`, …) so that a manifest
//! read from a file and the same object read from the API server compile alike. Enum-like
//! fields keep unknown values ([`ProtocolType::Unknown`], …) so that compile can report them
//! with the upstream reason instead of failing to parse.
//!
//! Every field is optional when reading: each struct carries `#[serde(default)]` (its `Default`
//! is derived, so a missing field is that field's default), and lists and maps also read
//! `null` as empty. What a kind requires is checked by [`validate`](crate::validate), which
//! names the missing field instead of failing the whole document.
//!
//! ```
//! use gateway_core::model::{Resource, ResourceKind};
//!
//! let route = serde_json::json!({
//!     "apiVersion": "gateway.networking.k8s.io/v1alpha2",
//!     "kind": "TCPRoute",
//!     "metadata": {"name": "tcp", "namespace": "demo"},
//!     "spec": {"rules": [{"backendRefs": [{"name": "echo", "port": 9000}]}]}
//! });
//! let resource = Resource::from_json(route)?.expect("a kind the model reads");
//! assert_eq!(resource.kind(), ResourceKind::TcpRoute);
//! assert_eq!(resource.key().to_string(), "TCPRoute demo/tcp");
//! # Ok::<(), gateway_core::model::FromJsonError>(())
//! ```

pub(crate) mod de;

mod core;
mod gateway;
mod meta;
mod policy;
mod reason;
mod route;
mod snapshot;

pub use self::core::*;
pub use self::gateway::*;
pub use self::meta::*;
pub use self::policy::*;
pub use self::reason::*;
pub use self::route::*;
pub use self::snapshot::*;
