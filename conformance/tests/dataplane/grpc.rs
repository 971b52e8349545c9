//! The upstream gRPC echo service (`gateway_api_conformance.echo_basic.grpcecho.GrpcEcho`),
//! server and client, with prost-derived messages and tonic's server and client cores.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tonic::Status;
use tonic_prost::ProstCodec;

use crate::pods::Identity;

/// The service's full name.
pub(crate) const SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";

/// `EchoRequest {}`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EchoRequest {}

/// `EchoResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EchoResponse {
    #[prost(message, optional, tag = "1")]
    pub(crate) assertions: Option<Assertions>,
    #[prost(message, optional, tag = "2")]
    pub(crate) request: Option<EchoRequest>,
}

/// `Assertions`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Assertions {
    #[prost(string, tag = "1")]
    pub(crate) fully_qualified_method: String,
    #[prost(message, repeated, tag = "2")]
    pub(crate) headers: Vec<Header>,
    #[prost(string, tag = "3")]
    pub(crate) authority: String,
    #[prost(message, optional, tag = "4")]
    pub(crate) context: Option<GrpcContext>,
}

/// `Header`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Header {
    #[prost(string, tag = "1")]
    pub(crate) key: String,
    #[prost(string, tag = "2")]
    pub(crate) value: String,
}

/// `Context`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GrpcContext {
    #[prost(string, tag = "1")]
    pub(crate) namespace: String,
    #[prost(string, tag = "2")]
    pub(crate) ingress: String,
    #[prost(string, tag = "3")]
    pub(crate) service_name: String,
    #[prost(string, tag = "4")]
    pub(crate) pod: String,
}

/// Answers one unary call with what it saw.
#[derive(Clone)]
struct Echo(Assertions);

impl tower_service::Service<tonic::Request<EchoRequest>> for Echo {
    type Response = tonic::Response<EchoResponse>;
    type Error = Status;
    type Future = Ready<Result<tonic::Response<EchoResponse>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<EchoRequest>) -> Self::Future {
        ready(Ok(tonic::Response::new(EchoResponse {
            assertions: Some(self.0.clone()),
            request: Some(req.into_inner()),
        })))
    }
}

/// Serves GrpcEcho over h2c on a fresh port of 127.0.0.1, or over TLS (ALPN h2) with `tls`
/// (the echo server's 8443 port); returns the port.
pub(crate) async fn serve(identity: Identity, tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let identity = identity.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let identity = identity.clone();
                    async move {
                        let method = req.uri().path().to_owned();
                        let assertions = Assertions {
                            fully_qualified_method: method.clone(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(k, v)| Header {
                                    key: k.as_str().to_owned(),
                                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                })
                                .collect(),
                            authority: req
                                .uri()
                                .authority()
                                .map(|a| a.as_str().to_owned())
                                .unwrap_or_default(),
                            context: Some(GrpcContext {
                                namespace: identity.namespace.clone(),
                                ingress: String::new(),
                                service_name: identity.service.clone(),
                                pod: identity.pod.clone(),
                            }),
                        };
                        let mut grpc =
                            tonic::server::Grpc::new(
                                ProstCodec::<EchoResponse, EchoRequest>::default(),
                            );
                        let echo = format!("/{SERVICE}/Echo");
                        let echo_two = format!("/{SERVICE}/EchoTwo");
                        let resp = if method == echo || method == echo_two {
                            grpc.unary(Echo(assertions), req).await
                        } else {
                            Status::unimplemented(format!("{method} is not implemented"))
                                .into_http()
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    port
}

/// hyper's HTTP/2 client handle as the tower service tonic's client drives.
pub(crate) struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<Request<tonic::body::Body>> for H2 {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// The gRPC status name grpc-go prints (`OK`, `UNIMPLEMENTED`, …).
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One unary call over a new h2c connection to `address`, with `:authority` = `authority` and
/// the given metadata; the final status, and the response when OK.
pub(crate) async fn call(
    address: std::net::SocketAddr,
    authority: &str,
    method: &str,
    metadata: &conformance::Headers,
) -> Result<(tonic::Code, Option<EchoResponse>), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect {address}: {e}"))?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    let origin: http::Uri = format!("http://{authority}")
        .parse()
        .map_err(|e| format!("authority {authority:?}: {e}"))?;
    let mut client = tonic::client::Grpc::with_origin(H2(sender), origin);
    client
        .ready()
        .await
        .map_err(|e| format!("grpc client not ready: {e}"))?;
    let mut request = tonic::Request::new(EchoRequest {});
    for (k, v) in metadata {
        let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| format!("metadata key {k:?}: {e}"))?;
        let value = v
            .parse()
            .map_err(|e| format!("metadata value {v:?}: {e}"))?;
        request.metadata_mut().insert(key, value);
    }
    let path: http::uri::PathAndQuery = method
        .parse()
        .map_err(|e| format!("method {method:?}: {e}"))?;
    match client
        .unary::<EchoRequest, EchoResponse, _>(request, path, ProstCodec::default())
        .await
    {
        Ok(response) => Ok((tonic::Code::Ok, Some(response.into_inner()))),
        Err(status) => Ok((status.code(), None)),
    }
}
