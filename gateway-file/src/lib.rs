//! A [`ConfigSource`](gateway_core::source::ConfigSource) over a file or a folder of
//! Kubernetes manifests.
//!
//! [`load`] reads the Gateway API objects and the core objects they point at (Services,
//! EndpointSlices, Secrets, …) from YAML and JSON files into a
//! [`Snapshot`](gateway_core::model::Snapshot), the same manifests `kubectl apply -f` takes.
//! [`FileSource`] does that once, then watches the files and emits a new snapshot after
//! every change, keeping the last good one when a change does not load.
//!
//! Errors name the file, line, column, document and object, and every problem of a load is
//! reported at once:
//!
//! ```text
//! routes.yaml:42:7 (document 3, HTTPRoute demo/web): spec.rules[0].matches: invalid type: …
//! ```
//!
//! # Example
//!
//! ```
//! use gateway_file::{LoadOptions, load};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(
//!     dir.path().join("gateway.yaml"),
//!     r#"
//! apiVersion: gateway.networking.k8s.io/v1
//! kind: Gateway
//! metadata:
//!   name: web
//! spec:
//!   gatewayClassName: example
//!   listeners:
//!     - name: http
//!       protocol: HTTP
//!       port: 80
//! ---
//! apiVersion: apps/v1
//! kind: Deployment   # not read by the gateway: skipped
//! metadata:
//!   name: backend
//! "#,
//! )?;
//!
//! let snapshot = load(dir.path(), &LoadOptions::default())?;
//! assert_eq!(snapshot.gateways.len(), 1);
//! assert_eq!(snapshot.gateways[0].metadata.namespace.as_deref(), Some("default"));
//!
//! std::fs::write(dir.path().join("broken.yaml"), "kind: Service\napiVersion: v1\nspec: [\n")?;
//! let error = load(dir.path(), &LoadOptions::default()).unwrap_err();
//! assert!(error.to_string().contains("broken.yaml:3:7 (document 1): YAML syntax error"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Watching, inside a Tokio runtime:
//!
//! ```no_run
//! use gateway_core::source::ConfigSource;
//! use gateway_file::FileSource;
//!
//! # async fn run() -> Result<(), gateway_file::Error> {
//! let mut source = FileSource::new("manifests/")?;
//! while let Some(snapshot) = source.next().await? {
//!     // compile and apply `snapshot`; a broken edit is logged and not returned here.
//!     # let _ = snapshot;
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod load;
mod split;
mod watch;

pub use error::{Error, LoadError, Problem};
pub use load::{LoadOptions, load, load_str};
pub use watch::{DEFAULT_DEBOUNCE, FileSource};
