//! The seed demo's gRPC service (`helloworld.Greeter` with server reflection) and a small
//! client that calls it through the gateway, so a newcomer needs no `grpcurl`.
//!
//! Both sides run over hyper directly rather than tonic's `transport` feature, which keeps
//! axum and tower's balancing stack out of the build.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::body::Body;
use tonic::codegen::tokio_stream;

use self::helloworld::greeter_client::GreeterClient;
use self::helloworld::greeter_server::{Greeter, GreeterServer};
use self::helloworld::{HelloReply, HelloRequest};

/// Code generated from `proto/helloworld.proto` by `build.rs`.
pub mod helloworld {
    #![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/helloworld.rs"));
}

/// The encoded `FileDescriptorSet` of `proto/helloworld.proto`, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/helloworld_descriptor.bin"));

/// An error of the demo's gRPC client or server setup.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `helloworld.Greeter`, answering `Hello NAME! (from BACKEND)`.
#[derive(Clone, Debug)]
pub struct HelloService {
    backend: String,
}

impl HelloService {
    /// A greeter that names `backend` in its replies.
    pub fn new(backend: String) -> Self {
        HelloService { backend }
    }
}

#[tonic::async_trait]
impl Greeter for HelloService {
    async fn say_hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        let name = &request.get_ref().name;
        Ok(tonic::Response::new(HelloReply {
            message: format!("Hello {name}! (from {})", self.backend),
        }))
    }
}

/// A response future of [`router`].
pub type ResponseFuture = Pin<Box<dyn Future<Output = http::Response<Body>> + Send>>;

/// The demo's gRPC services behind one function of a request: `helloworld.Greeter` and
/// server reflection v1 and v1alpha (grpcurl and other tools use either).
///
/// # Errors
///
/// When the embedded descriptor set does not decode (a build problem).
pub fn router(
    greeter: HelloService,
) -> Result<
    impl Fn(http::Request<Incoming>) -> ResponseFuture + Clone + Send + Sync + 'static,
    BoxError,
> {
    let greeter = GreeterServer::new(greeter);
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(move |request: http::Request<Incoming>| -> ResponseFuture {
        let path = request.uri().path();
        if path.starts_with("/helloworld.Greeter/") {
            Box::pin(call(greeter.clone(), request))
        } else if path.starts_with("/grpc.reflection.v1.ServerReflection/") {
            Box::pin(call(reflection_v1.clone(), request))
        } else if path.starts_with("/grpc.reflection.v1alpha.ServerReflection/") {
            Box::pin(call(reflection_v1alpha.clone(), request))
        } else {
            let status = tonic::Status::unimplemented(format!("no service for {path}"));
            Box::pin(async move { status.into_http() })
        }
    })
}

async fn call<S>(mut service: S, request: http::Request<Incoming>) -> http::Response<Body>
where
    S: tower_service::Service<
            http::Request<Incoming>,
            Response = http::Response<Body>,
            Error = Infallible,
        >,
{
    // The generated services are always ready; polling keeps to the tower contract anyway.
    if let Err(never) = std::future::poll_fn(|cx| service.poll_ready(cx)).await {
        match never {}
    }
    match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// How to reach the gateway's gRPC listener.
#[derive(Clone, Debug)]
pub struct CallOptions {
    /// The listener's address (`127.0.0.1:60051` with the demo's default offset).
    pub address: SocketAddr,
    /// The `:authority` and SNI name (`app.me`: the GRPCRoute's hostname).
    pub authority: String,
    /// The certificate (PEM) the server must present. `None` accepts any certificate: for
    /// the demo only, never for real traffic.
    pub trusted_certificate_pem: Option<Vec<u8>>,
    /// The name sent in `HelloRequest`.
    pub name: String,
}

/// What [`call_greeter`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallResult {
    /// The services reflection lists.
    pub services: Vec<String>,
    /// `HelloReply.message`.
    pub greeting: String,
}

/// Lists the services by reflection and calls `helloworld.Greeter/SayHello`, over TLS.
///
/// # Errors
///
/// Connection, TLS, HTTP/2 or gRPC errors.
pub async fn call_greeter(options: &CallOptions) -> Result<CallResult, BoxError> {
    let channel = connect(options).await?;
    let origin: http::Uri = format!("https://{}", options.authority).parse()?;

    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::with_origin(
            channel.clone(),
            origin.clone(),
        );
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: options.authority.clone(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let mut services = Vec::new();
    while let Some(response) = responses.message().await? {
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                services.extend(list.service.into_iter().map(|s| s.name));
            }
            Some(MessageResponse::ErrorResponse(error)) => {
                return Err(format!("reflection error: {}", error.error_message).into());
            }
            _ => {}
        }
    }

    let mut greeter = GreeterClient::with_origin(channel, origin);
    let reply = greeter
        .say_hello(HelloRequest {
            name: options.name.clone(),
        })
        .await?;
    Ok(CallResult {
        services,
        greeting: reply.into_inner().message,
    })
}

/// An HTTP/2 connection over TLS, as a tower service for tonic's generated clients.
#[derive(Clone, Debug)]
struct H2Channel(hyper::client::conn::http2::SendRequest<Body>);

impl tower_service::Service<http::Request<Body>> for H2Channel {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// A TLS client configuration that trusts exactly `pinned_pem` (the demo's self-signed
/// certificate), or, with `None`, any certificate (demo only), offering `alpn`.
///
/// # Errors
///
/// When `pinned_pem` holds no PEM certificate.
pub fn tls_client_config(
    pinned_pem: Option<&[u8]>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pinned = match pinned_pem {
        Some(pem) => Some(CertificateDer::from_pem_slice(pem)?.into_owned()),
        None => None,
    };
    let verifier = Arc::new(DemoVerifier {
        pinned,
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

async fn connect(options: &CallOptions) -> Result<H2Channel, BoxError> {
    let config = tls_client_config(options.trusted_certificate_pem.as_deref(), &[b"h2"])?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(options.address).await?;
    let server_name = ServerName::try_from(options.authority.clone())?;
    let tls = connector.connect(server_name, tcp).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the gateway did not negotiate HTTP/2 (ALPN h2) on the gRPC listener".into());
    }
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "gRPC client connection ended");
        }
    });
    Ok(H2Channel(sender))
}

/// Accepts exactly the demo's certificate (a self-signed certificate cannot be checked
/// against a CA), or, without one, any certificate: the demo's explicit "insecure" mode. The
/// handshake signature is always verified, so the server holds the certificate's key.
#[derive(Debug)]
struct DemoVerifier {
    pinned: Option<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DemoVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(pinned) if pinned.as_ref() != end_entity.as_ref() => Err(rustls::Error::General(
                "the server's certificate is not the demo certificate".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
