//! A fake Kubernetes API server for tests: hyper on 127.0.0.1, speaking the real list, watch,
//! get, create, replace, patch and delete protocol so the real `kube::Client`, `watcher` and
//! `reflector` run end to end against it, plus controls for tests (seeding, reading back,
//! request counts, fault injection).
//!
//! # Start
//!
//! ```ignore
//! let api = FakeApi::start().await;
//! api.apply_yaml(include_str!("gateway.yaml"))?; // seed as `kubectl apply` would
//! let client = api.client(); // plain HTTP, no TLS
//! // ... run the code under test with `client` ...
//! const V1: &str = "gateway.networking.k8s.io/v1";
//! let written = api.wait_until(Duration::from_secs(10), |api| {
//!     api.get(V1, "Gateway", Some("default"), "gw").is_some_and(|gw| gw["status"] != Value::Null)
//! });
//! assert!(written.await);
//! let status_path = api.path(V1, "Gateway", Some("default"), "gw") + "/status";
//! assert_eq!(api.count(Verb::Patch, &status_path), 1);
//! ```
//!
//! # What is served
//!
//! - Paths: `/api/v1/[namespaces/{ns}/]{plural}[/{name}[/status]]` and
//!   `/apis/{group}/{version}/[namespaces/{ns}/]{plural}[/{name}[/status]]`; the cluster-wide
//!   form of a namespaced plural lists and watches all namespaces. `/version` answers, and so
//!   does discovery (`/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`, classic and
//!   aggregated v2), listing each served kind at its stored version with a `status`
//!   subresource; hidden kinds drop out of it.
//! - Kinds: the core, discovery, coordination and Gateway API kinds the gateway reads (see
//!   `store::WELL_KNOWN`), any kind seeded from a manifest (plural guessed from the kind), and
//!   any kind given to [`FakeApi::register`]. Objects are stored per group and plural, not per
//!   version: every version of a group serves the same objects, with `apiVersion` naming the
//!   version asked for (no conversion, as Gateway API v1 and v1beta1 share a schema).
//! - LIST: `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!`), `fieldSelector` (`=`,
//!   `==`, `!=` over any dotted field path, `metadata.name` and `metadata.namespace` included),
//!   `limit` and `continue` (kube's watcher pages by 500), `resourceVersion` and
//!   `resourceVersionMatch`. Each item carries `kind` and `apiVersion`; the list its
//!   `resourceVersion`, and `continue` plus `remainingItemCount` when paged.
//! - WATCH (`watch=true|1`): a chunked stream of `{"type":..,"object":..}` lines with the events
//!   strictly after `resourceVersion` (synthetic ADDED events for the current objects when it is
//!   empty or `0`), filtered by namespace and selectors (an object entering or leaving a
//!   selector is ADDED or DELETED, as on the API server); BOOKMARK events every
//!   [`FakeApi::set_bookmark_interval`] (1 s by default) when `allowWatchBookmarks=true`;
//!   `sendInitialEvents=true` (streaming lists) sends the current objects then a BOOKMARK with
//!   the `k8s.io/initial-events-end` annotation; the stream ends cleanly after `timeoutSeconds`.
//!   A `resourceVersion` older than the compacted history gets an ERROR event with a 410
//!   `Expired` Status inside a 200 stream (as the real server does), or an HTTP 410 answer after
//!   [`FakeApi::set_expired_as_http_status`].
//! - Writes: POST (201; 409 `AlreadyExists`; `generateName`), PUT (409 `Conflict` when
//!   `metadata.resourceVersion` is set and stale), PATCH as `application/merge-patch+json`,
//!   `application/json-patch+json`, `application/strategic-merge-patch+json` and
//!   `application/apply-patch+yaml` (a `metadata.resourceVersion` in the patch is a
//!   precondition, 409 when stale), DELETE (with `preconditions.resourceVersion`) and
//!   DELETE on a collection. `.../status` GET, PUT and PATCH change only `.status`; writes to
//!   the main resource keep the stored `.status` and POST drops a given one (every kind acts as
//!   if it had a status subresource). Every effective write takes the next value of one global
//!   resourceVersion counter, sets `uid`, `creationTimestamp` and `generation` 1 on create,
//!   bumps `generation` when anything outside `metadata` and `status` changes, and is logged
//!   for watches. A write that changes nothing is a no-op (no new resourceVersion, no event),
//!   as on the API server. Errors are `Status` objects (`kind: Status`, `status: Failure`,
//!   `reason`, `message`, `code`).
//!
//! # Simplifications
//!
//! - Server-side apply is a JSON merge patch of the applied configuration: no managed fields,
//!   no field ownership, no conflicts between managers (`fieldManager` and `force` are
//!   accepted and ignored); lists in the applied configuration replace the stored ones whole
//!   (a status `conditions` list is replaced, not merged by `type`), and applying to a missing
//!   object creates it. Strategic merge patch is applied as a JSON merge patch (no `$patch`
//!   directives; lists replaced whole).
//! - LIST always serves the newest state: a `continue` page shows the objects after the last
//!   key as they are now, under the first page's resourceVersion (so the watch that follows
//!   replays what changed meanwhile); `resourceVersionMatch=Exact` for anything but the newest
//!   version is 410. A continue token older than the compacted history is 410 as on the real
//!   server.
//! - No admission, validation beyond names and namespaces, defaulting, finalizers, owner
//!   references or garbage collection; namespaces need not exist; DELETE removes at once.
//! - No authentication or authorization; HTTP/1.1 only.
//!
//! - Metadata-only requests (`Accept: ...;as=PartialObjectMetadata[List]`) get
//!   `meta.k8s.io/v1` `PartialObjectMetadata[List]` answers and watch events; no other
//!   `as=` transformation (no `Table`), no protobuf.
//! - kube's client retries 429, 503 and 504 by itself (`Config::default_retry`): an injected
//!   error with one of those codes is retried before the caller sees it.
//!
//! # Test controls
//!
//! - Start and connect: [`FakeApi::start`], [`FakeApi::url`], [`FakeApi::client`],
//!   [`FakeApi::config`], [`FakeApi::client_as`] (requests recorded with that client's name, to
//!   tell replicas apart).
//! - Seed, as `kubectl apply` would ([`FakeApi::apply`], [`FakeApi::apply_yaml`],
//!   [`FakeApi::apply_dir`], [`FakeApi::delete`]) and as another controller would
//!   ([`FakeApi::set_status`]): through the same store as the API, so every change bumps the
//!   resourceVersion and feeds open watches. [`FakeApi::register`] serves another kind.
//! - Read back: [`FakeApi::get`], [`FakeApi::list`], [`FakeApi::resource_version`],
//!   [`FakeApi::path`] (an object's URL path, for counts and faults).
//! - Requests: [`FakeApi::requests`], [`FakeApi::count`], [`FakeApi::count_from`],
//!   [`FakeApi::count_writes`], [`FakeApi::clear_requests`], [`FakeApi::open_watches`],
//!   [`FakeApi::wait_for_watches`], [`FakeApi::wait_until`].
//! - Faults: [`FakeApi::drop_watches`] (cut every open watch connection mid-stream),
//!   [`FakeApi::expire_watches`] (a 410 ERROR event in every open watch),
//!   [`FakeApi::compact`] (forget history: older resourceVersions get 410),
//!   [`FakeApi::fail_next`] / [`FakeApi::conflict_next_writes`] (the next N matching requests
//!   to a path answer an error), [`FakeApi::set_latency`], [`FakeApi::hide`] /
//!   [`FakeApi::unhide`] (a kind answers 404 and leaves discovery, as when its CRD is not
//!   installed), [`FakeApi::set_bookmark_interval`], [`FakeApi::set_expired_as_http_status`].

// The lead's end-to-end tests use parts of the control API the self-tests do not.
#![allow(dead_code)]

mod discovery;
mod http;
mod patch;
mod select;
mod store;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub(crate) use store::{ApiError, ResourceDef};
use store::{Part, Store, guess_plural};

/// The header [`FakeApi::client_as`] clients name themselves with.
pub(crate) const CLIENT_HEADER: &str = "x-fake-api-client";

/// What a request did, as the API server's audit log names verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// A method the path does not support.
    Other,
}

impl Verb {
    /// The verbs that change objects.
    pub(crate) const WRITES: &[Verb] = &[
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
    ];

    /// Whether this verb changes objects.
    pub(crate) fn is_write(self) -> bool {
        Self::WRITES.contains(&self)
    }
}

/// One request the fake answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestRecord {
    /// HTTP method.
    pub(crate) method: String,
    pub(crate) verb: Verb,
    /// URL path, without the query.
    pub(crate) path: String,
    /// The raw query string.
    pub(crate) query: String,
    pub(crate) content_type: Option<String>,
    /// The name given to [`FakeApi::client_as`] for the client that sent it.
    pub(crate) client: Option<String>,
    /// The HTTP status answered (200 for a watch, whatever its stream carried).
    pub(crate) status: u16,
}

/// An injected failure: the next `remaining` requests with one of `verbs` to `path` answer
/// `code` instead of being served.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    pub(crate) path: String,
    pub(crate) verbs: Vec<Verb>,
    pub(crate) remaining: usize,
    pub(crate) code: u16,
}

impl Fault {
    fn error(&self) -> ApiError {
        let mut error = ApiError::new(
            self.code,
            format!("injected failure {} for {}", self.code, self.path),
        );
        if self.code == 409 {
            error.message = format!(
                "Operation cannot be fulfilled on {}: the object has been modified; please apply your \
                 changes to the latest version and try again (injected)",
                self.path
            );
        }
        error
    }
}

/// Test controls that are not objects.
#[derive(Debug)]
pub(crate) struct Controls {
    requests: Vec<RequestRecord>,
    faults: Vec<Fault>,
    latency: Duration,
    bookmark_interval: Duration,
    expired_as_http_status: bool,
}

/// Counters watch streams compare with their starting values to learn of interruptions.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Interrupts {
    drops: u64,
    expiries: u64,
}

/// State shared by the connections, the watch tasks and the test.
pub(crate) struct Shared {
    store: Mutex<Store>,
    controls: Mutex<Controls>,
    /// The newest resourceVersion, sent after every write to wake watch streams.
    changes: tokio::sync::watch::Sender<u64>,
    interrupts: tokio::sync::watch::Sender<Interrupts>,
    open_watches: AtomicUsize,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A test that panicked while holding the lock leaves a store that is still consistent
        // enough to report from.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn controls(&self) -> MutexGuard<'_, Controls> {
        self.controls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a write on the store, then wakes the watch streams.
    fn write<R>(&self, write: impl FnOnce(&mut Store) -> R) -> R {
        let (result, rv) = {
            let mut store = self.store();
            let result = write(&mut store);
            (result, store.rv())
        };
        self.changes.send_replace(rv);
        result
    }

    fn interrupt(&self, change: impl FnOnce(&mut Interrupts)) {
        self.interrupts.send_modify(change);
    }
}

/// A running fake API server; it stops when dropped (open watch streams are cut).
pub(crate) struct FakeApi {
    shared: Arc<Shared>,
    address: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.interrupt(|i| i.drops += 1);
    }
}

/// The group and version of an `apiVersion`.
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

impl FakeApi {
    /// Starts a server on 127.0.0.1, on a port of the system's choosing.
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            controls: Mutex::new(Controls {
                requests: Vec::new(),
                faults: Vec::new(),
                latency: Duration::ZERO,
                bookmark_interval: Duration::from_secs(1),
                expired_as_http_status: false,
            }),
            changes: tokio::sync::watch::Sender::new(0),
            interrupts: tokio::sync::watch::Sender::new(Interrupts::default()),
            open_watches: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(http::serve(listener, shared.clone()));
        Self {
            shared,
            address,
            accept,
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A client for this server (plain HTTP, default namespace `default`).
    pub(crate) fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("a plain HTTP client needs no TLS")
    }

    /// The configuration [`FakeApi::client`] uses, to adjust before building a client.
    pub(crate) fn config(&self) -> kube::Config {
        let uri = self.url().parse().expect("the server URL is a valid URI");
        kube::Config::new(uri)
    }

    /// A client whose requests are recorded with `client: Some(name)`, to tell replicas apart.
    pub(crate) fn client_as(&self, name: &str) -> kube::Client {
        let mut config = self.config();
        let value =
            ::http::HeaderValue::from_str(name).expect("a client name is a valid header value");
        config
            .headers
            .push((::http::HeaderName::from_static(CLIENT_HEADER), value));
        kube::Client::try_from(config).expect("a plain HTTP client needs no TLS")
    }

    /// Serves another kind (or redefines one, by group and plural).
    pub(crate) fn register(&self, def: ResourceDef) {
        self.shared.store().register(def);
    }

    /// The definition of a kind, registered on first use with a guessed plural.
    fn def(&self, api_version: &str, kind: &str, namespaced: bool) -> ResourceDef {
        let (group, version) = split_api_version(api_version);
        let mut store = self.shared.store();
        if let Some(def) = store.resource_for_kind(group, kind) {
            return def.clone();
        }
        let def = ResourceDef::new(group, version, &guess_plural(kind), kind, namespaced);
        store.register(def.clone());
        def
    }

    fn namespace_for(def: &ResourceDef, namespace: Option<&str>) -> String {
        if def.namespaced {
            namespace.unwrap_or("default").to_owned()
        } else {
            String::new()
        }
    }

    /// The URL path of an object (append `/status` for its status).
    pub(crate) fn path(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> String {
        let def = self.def(api_version, kind, namespace.is_some());
        let prefix = if def.group.is_empty() {
            "/api".to_owned()
        } else {
            format!("/apis/{}", def.group)
        };
        let (_, version) = split_api_version(api_version);
        let scope = if def.namespaced {
            format!("/namespaces/{}", Self::namespace_for(&def, namespace))
        } else {
            String::new()
        };
        format!("{prefix}/{version}{scope}/{}/{name}", def.plural)
    }

    /// Creates or updates an object as `kubectl apply` would (a namespaced object without a
    /// namespace goes to `default`); a `.status` in it is stored too, a missing one keeps the
    /// stored status. Bumps the resourceVersion and feeds watches (unless nothing changed). A
    /// kind the fake does not know is registered with a guessed plural, namespaced when the
    /// object names a namespace.
    pub(crate) fn apply(&self, object: Value) -> Result<Value, ApiError> {
        let field = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(api_version), Some(kind), Some(name)) = (
            field("/apiVersion"),
            field("/kind"),
            field("/metadata/name"),
        ) else {
            return Err(ApiError::bad_request(
                "an object needs apiVersion, kind and metadata.name",
            ));
        };
        let namespace = field("/metadata/namespace");
        let def = self.def(&api_version, &kind, namespace.is_some());
        let namespace = Self::namespace_for(&def, namespace.as_deref());
        self.shared.write(|store| {
            if store.get(&def, &namespace, &name).is_some() {
                store.update(&def, &namespace, &name, object, Part::All, None)
            } else {
                store.create(&def, &namespace, object, true)
            }
        })
    }

    /// Applies every document of a multi-document YAML (or JSON) text, in order; empty
    /// documents and `List` kinds' items are handled as `kubectl apply` does.
    pub(crate) fn apply_yaml(&self, text: &str) -> Result<Vec<Value>, ApiError> {
        let documents: Vec<Value> = serde_saphyr::from_str_multiple(text)
            .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))?;
        let mut applied = Vec::new();
        for document in documents {
            if document.is_null() {
                continue;
            }
            let is_list = document
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"));
            match document.get("items") {
                Some(Value::Array(items)) if is_list => {
                    for item in items {
                        applied.push(self.apply(item.clone())?);
                    }
                }
                _ => applied.push(self.apply(document)?),
            }
        }
        Ok(applied)
    }

    /// Applies every `*.yaml`, `*.yml` and `*.json` file of a folder, in name order.
    pub(crate) fn apply_dir(&self, dir: &Path) -> Result<Vec<Value>, ApiError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ApiError::bad_request(format!("reading {}: {e}", dir.display())))?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            })
            .collect();
        files.sort();
        let mut applied = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| ApiError::bad_request(format!("reading {}: {e}", file.display())))?;
            applied.extend(self.apply_yaml(&text)?);
        }
        Ok(applied)
    }

    /// One stored object (`apiVersion` as stored), `None` when absent.
    pub(crate) fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let def = self.def(api_version, kind, namespace.is_some());
        let namespace = Self::namespace_for(&def, namespace);
        self.shared.store().get(&def, &namespace, name).cloned()
    }

    /// The stored objects of a kind, in one namespace or (`None`) all.
    pub(crate) fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let def = self.def(api_version, kind, true);
        self.shared
            .store()
            .list(&def, namespace)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Deletes an object, feeding watches; returns its last state.
    pub(crate) fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let def = self.def(api_version, kind, namespace.is_some());
        let namespace = Self::namespace_for(&def, namespace);
        self.shared
            .write(|store| store.delete(&def, &namespace, name, None))
    }

    /// Replaces an object's `.status`, as another controller would.
    pub(crate) fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        let def = self.def(api_version, kind, namespace.is_some());
        let namespace = Self::namespace_for(&def, namespace);
        let body = serde_json::json!({ "status": status });
        self.shared
            .write(|store| store.update(&def, &namespace, name, body, Part::Status, None))
    }

    /// The newest resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// Every request answered so far, oldest first.
    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.shared.controls().requests.clone()
    }

    /// How many requests with `verb` went to exactly `path`.
    pub(crate) fn count(&self, verb: Verb, path: &str) -> usize {
        self.shared
            .controls()
            .requests
            .iter()
            .filter(|r| r.verb == verb && r.path == path)
            .count()
    }

    /// How many requests with `verb` to exactly `path` came from the client named `client`
    /// (see [`FakeApi::client_as`]).
    pub(crate) fn count_from(&self, client: &str, verb: Verb, path: &str) -> usize {
        let requests = &self.shared.controls().requests;
        requests
            .iter()
            .filter(|r| r.client.as_deref() == Some(client) && r.verb == verb && r.path == path)
            .count()
    }

    /// How many write requests (any write verb, any path) were answered.
    pub(crate) fn count_writes(&self) -> usize {
        self.shared
            .controls()
            .requests
            .iter()
            .filter(|r| r.verb.is_write())
            .count()
    }

    /// Forgets the requests recorded so far.
    pub(crate) fn clear_requests(&self) {
        self.shared.controls().requests.clear();
    }

    /// How many watch streams are open.
    pub(crate) fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` watch streams are open; `false` after `timeout`.
    pub(crate) async fn wait_for_watches(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open_watches() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Polls `check` every 10 ms until it holds; `false` after `timeout`. For waiting on the
    /// code under test (a status written, a lease taken) without fixed sleeps.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !check(self) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Cuts every open watch connection mid-stream (as a network failure or an API server
    /// restart would); clients resume from their last resourceVersion.
    pub(crate) fn drop_watches(&self) {
        self.shared.interrupt(|i| i.drops += 1);
    }

    /// Ends every open watch stream with an ERROR event carrying a 410 `Expired` Status, which
    /// makes kube's watcher list again.
    pub(crate) fn expire_watches(&self) {
        self.shared.interrupt(|i| i.expiries += 1);
    }

    /// Forgets the history up to now: a watch from an older resourceVersion (and a continue
    /// token from an older list) gets 410 `Expired`.
    pub(crate) fn compact(&self) {
        self.shared.write(Store::compact);
    }

    /// Makes the next `count` requests with one of `verbs` to exactly `path` answer `code` (a
    /// `Status` with the usual reason for it) without being served.
    pub(crate) fn fail_next(&self, path: &str, verbs: &[Verb], count: usize, code: u16) {
        self.shared.controls().faults.push(Fault {
            path: path.to_owned(),
            verbs: verbs.to_vec(),
            remaining: count,
            code,
        });
    }

    /// Makes the next `count` writes to exactly `path` answer 409 Conflict.
    pub(crate) fn conflict_next_writes(&self, path: &str, count: usize) {
        self.fail_next(path, Verb::WRITES, count, 409);
    }

    /// Delays every answer (a watch: its start) by `latency`.
    pub(crate) fn set_latency(&self, latency: Duration) {
        self.shared.controls().latency = latency;
    }

    /// How often open watches with `allowWatchBookmarks=true` get a BOOKMARK (for watches
    /// started afterwards).
    pub(crate) fn set_bookmark_interval(&self, interval: Duration) {
        self.shared.controls().bookmark_interval = interval.max(Duration::from_millis(1));
    }

    /// Answers a watch from a compacted resourceVersion with HTTP 410 instead of a 200 stream
    /// holding a 410 ERROR event. Note that kube 5's watcher re-lists only on the ERROR event:
    /// on an HTTP 410 it retries the watch from the same resourceVersion (forever while this is
    /// on), so this is for testing code that calls `Api::watch` itself.
    pub(crate) fn set_expired_as_http_status(&self, enabled: bool) {
        self.shared.controls().expired_as_http_status = enabled;
    }

    /// Makes a kind answer 404 on every path, as when its CRD is not installed.
    pub(crate) fn hide(&self, api_version: &str, kind: &str) {
        let def = self.def(api_version, kind, true);
        self.shared.store().set_hidden(def.key(), true);
    }

    /// Serves a hidden kind again.
    pub(crate) fn unhide(&self, api_version: &str, kind: &str) {
        let def = self.def(api_version, kind, true);
        self.shared.store().set_hidden(def.key(), false);
    }
}
