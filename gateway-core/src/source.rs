//! The seams between the core and its adapters: where snapshots come from, where status goes.

use std::future::Future;

use crate::model::Snapshot;
use crate::status::Status;

/// A source of configuration: a folder of manifests, the Kubernetes API, or a user's own.
///
/// A source emits whole [`Snapshot`]s, each complete on its own; the consumer compiles the
/// newest and keeps serving the previous configuration until then. A source that cannot
/// produce a valid snapshot (a file that does not parse, a watch that has not synced) emits
/// nothing and reports through its own channel (logs, errors from `next`), so the last good
/// configuration keeps serving.
pub trait ConfigSource: Send {
    /// The error a source reports when it cannot go on.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Waits for the next snapshot. The first call returns the initial snapshot as soon as
    /// the source has one; later calls return when something changed. `Ok(None)` means the
    /// source is finished and will emit nothing more.
    fn next(&mut self) -> impl Future<Output = Result<Option<Snapshot>, Self::Error>> + Send;
}

/// Where compiled status goes: patched into the API server, printed, or logged.
pub trait StatusSink: Send {
    /// The error a sink reports when a write fails.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Publishes the status of the latest compiled snapshot. Called after every compile;
    /// implementations skip writes that change nothing.
    fn publish(&mut self, status: &Status) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
