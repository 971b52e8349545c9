//! The crate's error type.

/// What can go wrong talking to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration source stopped: every watch ended (the runtime is shutting down).
    #[error("the Kubernetes watches stopped")]
    WatchesStopped,
    /// Status writes failed (after retries on conflict); the other objects were written.
    #[error("{failed} status write(s) failed; first: {first}")]
    StatusWrite {
        /// How many objects could not be written.
        failed: usize,
        /// The first failure: the object (`Kind namespace/name`) and why.
        first: String,
    },
    /// The Lease API failed.
    #[error("lease {lease}: {source}")]
    Lease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// No usable client configuration (kubeconfig, in-cluster service account).
    #[error("cannot configure the Kubernetes client: {0}")]
    Connect(String),
    /// A `namespace/name` argument that is not one.
    #[error("{0:?} is not namespace/name")]
    BadGatewayRef(String),
    /// A label selector argument that is not `key=value[,key=value…]`.
    #[error("label selector {selector:?}: {why}")]
    BadSelector {
        /// The text given.
        selector: String,
        /// What is wrong with it.
        why: String,
    },
    /// Per-Gateway Services could not all be applied or deleted; the others were.
    #[error("{failed} Service write(s) failed; first: {first}")]
    Provision {
        /// How many Services could not be written.
        failed: usize,
        /// The first failure: the Service (`Service namespace/name`) and why.
        first: String,
    },
}
