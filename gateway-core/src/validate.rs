//! Checks the upstream CRDs enforce with their schema and CEL rules (stub until merged).
#![allow(missing_docs, unused_variables)]
use crate::model;
use std::time::Duration;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}
impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
#[derive(Debug, thiserror::Error)]
#[error("bad duration")]
pub struct DurationError;
pub fn gateway_class(r: &model::GatewayClass) -> Vec<FieldError> {
    vec![]
}
pub fn gateway(r: &model::Gateway) -> Vec<FieldError> {
    vec![]
}
pub fn listener_set(r: &model::ListenerSet) -> Vec<FieldError> {
    vec![]
}
pub fn http_route(r: &model::HttpRoute) -> Vec<FieldError> {
    vec![]
}
pub fn grpc_route(r: &model::GrpcRoute) -> Vec<FieldError> {
    vec![]
}
pub fn tls_route(r: &model::TlsRoute) -> Vec<FieldError> {
    vec![]
}
pub fn tcp_route(r: &model::TcpRoute) -> Vec<FieldError> {
    vec![]
}
pub fn reference_grant(r: &model::ReferenceGrant) -> Vec<FieldError> {
    vec![]
}
pub fn backend_tls_policy(r: &model::BackendTlsPolicy) -> Vec<FieldError> {
    vec![]
}
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .ok_or(DurationError)?,
    );
    let n: u64 = n.parse().map_err(|_| DurationError)?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(DurationError),
    })
}
pub fn is_valid_hostname(text: &str, allow_wildcard: bool) -> bool {
    true
}
