//! WATCH: a chunked stream of JSON lines, one watch event per line.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;

use super::Shared;
use super::http::{Body, metadata_view, present};
use super::select::Selector;
use super::store::{ApiError, Change, LoggedEvent, ResourceDef};

/// Streams last this long when the request names no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Which objects a watch (or a list) reports.
pub(crate) struct Filter {
    pub(crate) def: ResourceDef,
    pub(crate) version: String,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: Option<Selector>,
    pub(crate) fields: Option<Selector>,
    /// Objects go out as `PartialObjectMetadata` (metadata-only watches).
    pub(crate) metadata_only: bool,
}

impl Filter {
    /// The filter of a list or watch request's namespace and selectors.
    pub(crate) fn new(
        def: ResourceDef,
        version: &str,
        namespace: Option<String>,
        query: &BTreeMap<String, String>,
    ) -> Result<Self, ApiError> {
        let labels = query
            .get("labelSelector")
            .filter(|s| !s.is_empty())
            .map(|s| Selector::labels(s))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))?;
        let fields = query
            .get("fieldSelector")
            .filter(|s| !s.is_empty())
            .map(|s| Selector::fields(s))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("invalid fieldSelector: {e}")))?;
        Ok(Self {
            def,
            version: version.to_owned(),
            namespace,
            labels,
            fields,
            metadata_only: false,
        })
    }

    /// Whether `object` is in the filter's namespace and satisfies its selectors.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        self.namespace
            .as_deref()
            .is_none_or(|wanted| namespace == Some(wanted))
            && self
                .labels
                .as_ref()
                .is_none_or(|s| s.matches_labels(object))
            && self
                .fields
                .as_ref()
                .is_none_or(|s| s.matches_fields(object))
    }

    /// The watch event type a logged change is, for this watch: an object that starts or stops
    /// matching the selectors is ADDED or DELETED, as on the API server.
    fn event_type(&self, event: &LoggedEvent) -> Option<&'static str> {
        if event.key != self.def.key() {
            return None;
        }
        let now = self.matches(&event.object);
        match event.change {
            Change::Added => now.then_some("ADDED"),
            Change::Deleted => now.then_some("DELETED"),
            Change::Modified => match (
                event.previous.as_ref().is_some_and(|p| self.matches(p)),
                now,
            ) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }

    fn line(&self, event_type: &str, object: &Value) -> Bytes {
        let object = present(object, &self.def, &self.version);
        event_line(
            event_type,
            &if self.metadata_only {
                metadata_view(object)
            } else {
                object
            },
        )
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.def.kind,
            "apiVersion": self.def.api_version(&self.version),
            "metadata": metadata,
        });
        event_line("BOOKMARK", &object)
    }
}

fn event_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn error_line(error: &ApiError) -> Bytes {
    event_line("ERROR", &error.to_status())
}

fn flag(query: &BTreeMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|v| v == "true" || v == "1")
}

/// Counts a watch stream as open while it lives.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

type Sender = mpsc::Sender<Result<Frame<Bytes>, io::Error>>;

/// Starts a watch: answers 200 with a stream fed by a task until the timeout, a test
/// interruption or the client going away.
pub(crate) fn start(
    shared: &Arc<Shared>,
    filter: Filter,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let timeout = match query.get("timeoutSeconds") {
        Some(secs) => Duration::from_secs(
            secs.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds `{secs}`")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let bookmarks = flag(query, "allowWatchBookmarks");
    let send_initial_events = flag(query, "sendInitialEvents");
    let requested_rv = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or_default();
    let (expired_as_http_status, bookmark_interval) = {
        let controls = shared.controls();
        (controls.expired_as_http_status, controls.bookmark_interval)
    };
    // Subscribed before the starting point is read, so no later change is missed.
    let mut changes = shared.changes.subscribe();
    let mut interrupts = shared.interrupts.subscribe();
    let started = *interrupts.borrow_and_update();

    let mut initial = Vec::new();
    let mut position = None;
    {
        let store = shared.store();
        if requested_rv.is_empty() || requested_rv == "0" || send_initial_events {
            // Start at the newest state: synthetic ADDED events for every current object.
            for object in store.list(&filter.def, filter.namespace.as_deref()) {
                if filter.matches(object) {
                    initial.push(filter.line("ADDED", object));
                }
            }
            if send_initial_events {
                initial.push(filter.bookmark(store.rv(), true));
            }
            position = Some(store.rv());
        } else {
            let rv: u64 = requested_rv.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version `{requested_rv}`"))
            })?;
            match store.events_after(rv) {
                Ok(_) => position = Some(rv),
                Err(expired) if expired_as_http_status => return Err(expired),
                Err(expired) => initial.push(error_line(&expired)),
            }
        }
    }

    let (sender, receiver) = mpsc::channel(64);
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let open = OpenWatch(shared.clone());
    tokio::spawn(async move {
        let _open = open;
        for line in initial {
            if sender.send(Ok(Frame::data(line))).await.is_err() {
                return;
            }
        }
        let Some(mut position) = position else {
            return;
        };
        let shared = _open.0.clone();
        let deadline = Instant::now() + timeout;
        let mut bookmark_timer =
            tokio::time::interval_at(Instant::now() + bookmark_interval, bookmark_interval);
        bookmark_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let drained = {
                let store = shared.store();
                store.events_after(position).map(|events| {
                    let lines: Vec<Bytes> = events
                        .iter()
                        .filter_map(|event| {
                            filter
                                .event_type(event)
                                .map(|t| filter.line(t, &event.object))
                        })
                        .collect();
                    position = position.max(store.rv());
                    lines
                })
            };
            match drained {
                Ok(lines) => {
                    for line in lines {
                        if !send(&sender, line).await {
                            return;
                        }
                    }
                }
                Err(expired) => {
                    send(&sender, error_line(&expired)).await;
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = sender.closed() => return,
                changed = changes.changed() => if changed.is_err() { return },
                _ = bookmark_timer.tick(), if bookmarks => {
                    if !send(&sender, filter.bookmark(position, false)).await {
                        return;
                    }
                }
                changed = interrupts.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *interrupts.borrow_and_update();
                    if now.drops != started.drops {
                        // A body error makes hyper cut the connection mid-stream, as a network
                        // failure or an API server restart would.
                        let _ = sender.send(Err(io::Error::other("watch dropped by the test"))).await;
                        return;
                    }
                    if now.expiries != started.expiries {
                        let expired = ApiError::expired(format!(
                            "too old resource version: {position} (expired by the test)"
                        ));
                        send(&sender, error_line(&expired)).await;
                        return;
                    }
                }
            }
        }
    });
    let body = StreamBody::new(ReceiverStream::new(receiver)).boxed();
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| ApiError::new(500, e.to_string()))
}

async fn send(sender: &Sender, line: Bytes) -> bool {
    sender.send(Ok(Frame::data(line))).await.is_ok()
}
