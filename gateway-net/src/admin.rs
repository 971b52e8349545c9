//! The admin endpoint: metrics, readiness, and what the gateway serves, on a socket of its
//! own.
//!
//! | path | answer |
//! | --- | --- |
//! | `/metrics` | every metric in the Prometheus text format ([`Metrics::encode`](crate::Metrics::encode)) |
//! | `/ready` | `200 ready` once a configuration is applied and every listener is served; `503` and the reason before, when something is not served, and while draining ([`Gateway::readiness`]) |
//! | `/healthz` | `200 ok` while the process serves this endpoint |
//! | `/config` | the configuration served, as JSON ([`Ir::summary`]): binds, listeners, routes in precedence order with their rules, backends with their endpoints |
//! | `/status` | the conditions of every resource, as `gateway check` prints them ([`Status::to_table`]) |
//!
//! Only `GET` and `HEAD` are answered. The endpoint is a separate socket (an embedder binds
//! it to loopback or to a private interface): nothing of it is reachable through the data
//! plane's listeners, which serve only routes.
//!
//! The library does not start it: [`AdminServer::bind`] serves it on its own socket, or an
//! embedder with an HTTP server of its own mounts [`AdminState::respond`].
//!
//! ```no_run
//! # async fn demo(ir: gateway_core::ir::Ir, status: gateway_core::status::Status) {
//! use std::sync::Arc;
//! use gateway_net::admin::{AdminServer, AdminState};
//! let gateway = gateway_net::Gateway::new(Default::default());
//! let admin = AdminState::new(gateway.clone());
//! let address = "127.0.0.1:9901".parse().expect("an address");
//! let server = AdminServer::bind(address, admin.clone())
//!     .await
//!     .expect("admin address free");
//! gateway.apply(&ir).await;
//! admin.publish(Arc::new(ir), Arc::new(status));
//! // ...
//! gateway.shutdown().await;
//! server.stop().await;
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use gateway_core::ir::Ir;
use gateway_core::status::Status;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Error, Gateway};

/// What the admin endpoint shows: the gateway (metrics, readiness) and the configuration and
/// status the embedder last published.
#[derive(Debug)]
pub struct AdminState {
    gateway: Gateway,
    ir: ArcSwapOption<Ir>,
    status: ArcSwapOption<Status>,
}

impl AdminState {
    /// The admin state of `gateway`, with nothing published yet.
    pub fn new(gateway: Gateway) -> Arc<AdminState> {
        Arc::new(AdminState {
            gateway,
            ir: ArcSwapOption::empty(),
            status: ArcSwapOption::empty(),
        })
    }

    /// Sets what `/config` and `/status` show: call it after each apply with the Ir that was
    /// applied and the status its compile produced.
    pub fn publish(&self, ir: Arc<Ir>, status: Arc<Status>) {
        self.ir.store(Some(ir));
        self.status.store(Some(status));
    }

    /// The answer to `method path`, for an embedder that mounts the admin paths into an HTTP
    /// server of its own (the query, if any, is ignored).
    pub fn respond(&self, method: &Method, path: &str) -> Response<String> {
        if method != Method::GET && method != Method::HEAD {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served\n".into(),
            );
            resp.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let path = path.split('?').next().unwrap_or_default();
        match path {
            "/metrics" => {
                let mut out = String::new();
                match self.gateway.metrics().encode(&mut out) {
                    Ok(()) => with_type(StatusCode::OK, crate::metrics::CONTENT_TYPE, out),
                    Err(_) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "metrics could not be encoded\n".into(),
                    ),
                }
            }
            "/ready" => {
                let readiness = self.gateway.readiness();
                let status = if readiness.is_ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                text(status, format!("{}\n", readiness.reason()))
            }
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/config" => match self.ir.load_full() {
                Some(ir) => match serde_json::to_string_pretty(&ir.summary()) {
                    Ok(mut json) => {
                        json.push('\n');
                        with_type(StatusCode::OK, "application/json", json)
                    }
                    Err(error) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("configuration could not be encoded: {error}\n"),
                    ),
                },
                None => not_published(),
            },
            "/status" => match self.status.load_full() {
                Some(status) => text(StatusCode::OK, status.to_table()),
                None => not_published(),
            },
            "/" => text(
                StatusCode::OK,
                "/metrics /ready /healthz /config /status\n".into(),
            ),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; paths: /metrics /ready /healthz /config /status\n".into(),
            ),
        }
    }
}

fn not_published() -> Response<String> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "no configuration published yet\n".into(),
    )
}

fn text(status: StatusCode, body: String) -> Response<String> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response<String> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// The admin endpoint served on its own socket (HTTP/1.1). Dropping it stops the server
/// too, without waiting.
#[derive(Debug)]
pub struct AdminServer {
    local: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `address` and serves the admin endpoint on it in a task of the current runtime
    /// until [`stop`](AdminServer::stop).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn bind(address: SocketAddr, state: Arc<AdminState>) -> Result<AdminServer, Error> {
        let bind_error = |source| Error::Bind { address, source };
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let stop = CancellationToken::new();
        let task = Some(tokio::spawn(serve(listener, state, stop.clone())));
        Ok(AdminServer { local, stop, task })
    }

    /// The address bound (differs from the one asked for when its port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, closes open admin connections and waits for the server task.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            // The task only ends by this cancellation; a panic in it has been reported
            // already.
            let _ = task.await;
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "admin endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = state
                    .respond(req.method(), req.uri().path())
                    .map(|body| Full::new(Bytes::from(body)));
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = stop.cancelled() => {}
                result = conn => if let Err(error) = result {
                    tracing::debug!(%error, "admin connection ended with an error");
                },
            }
        });
    }
}
