//! The seed demo's backends, served in the gateway's process: an HTTP echo, a TCP echo, a
//! UDP echo and a gRPC `helloworld.Greeter` with server reflection.
//!
//! Each function binds its socket before returning (so a port clash is reported at once),
//! then serves on the current Tokio runtime until `shutdown` is cancelled.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::grpc::{self, HelloService};

/// An HTTP/1.1 and h2c server answering every request with `Hello from NAME` and the
/// request's method, path, version and headers. Returns the bound address.
///
/// # Errors
///
/// When `address` cannot be bound.
pub async fn http_echo(
    address: SocketAddr,
    name: String,
    shutdown: CancellationToken,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let name: std::sync::Arc<str> = name.into();
    tokio::spawn(accept_loop(listener, shutdown, move |stream| {
        let name = name.clone();
        async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let body = echo_body(&name, &request);
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/plain; charset=utf-8")
                            .header("x-backend", "http-echo")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap_or_default(),
                    )
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }));
    Ok(local)
}

fn echo_body(name: &str, request: &Request<Incoming>) -> String {
    let mut body = format!(
        "Hello from {name}\n{} {} {:?}\n",
        request.method(),
        request.uri(),
        request.version()
    );
    for (header, value) in request.headers() {
        body.push_str(&format!(
            "{header}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    body
}

/// A TCP server writing back every byte it reads. Returns the bound address.
///
/// # Errors
///
/// When `address` cannot be bound.
pub async fn tcp_echo(address: SocketAddr, shutdown: CancellationToken) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    tokio::spawn(accept_loop(listener, shutdown, |mut stream| async move {
        let (mut read, mut write) = stream.split();
        let _ = tokio::io::copy(&mut read, &mut write).await;
    }));
    Ok(local)
}

/// A UDP server sending every datagram back to its sender. Returns the bound address.
///
/// # Errors
///
/// When `address` cannot be bound.
pub async fn udp_echo(address: SocketAddr, shutdown: CancellationToken) -> io::Result<SocketAddr> {
    let socket = UdpSocket::bind(address).await?;
    let local = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65_536];
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = socket.recv_from(&mut buffer) => received,
            };
            match received {
                Ok((n, peer)) => {
                    let _ = socket.send_to(&buffer[..n], peer).await;
                }
                Err(error) => tracing::debug!(%error, "udp echo: receive failed"),
            }
        }
    });
    Ok(local)
}

/// A gRPC server (HTTP/2 without TLS, as a Kubernetes Pod behind the gateway would serve it)
/// with `helloworld.Greeter` and server reflection (v1 and v1alpha). Returns the bound address.
///
/// # Errors
///
/// When `address` cannot be bound.
pub async fn grpc_greeter(
    address: SocketAddr,
    name: String,
    shutdown: CancellationToken,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let router = grpc::router(HelloService::new(name)).map_err(io::Error::other)?;
    tokio::spawn(accept_loop(listener, shutdown, move |stream| {
        let router = router.clone();
        async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = router(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }));
    Ok(local)
}

async fn accept_loop<F, Fut>(listener: TcpListener, shutdown: CancellationToken, serve: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let connection = serve(stream);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = connection => {}
                    }
                });
            }
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "backend accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
