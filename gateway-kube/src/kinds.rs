//! The kinds the gateway watches, their API paths, and which version a cluster serves.

use gateway_core::model::ResourceKind;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

/// The kinds watched as whole collections: every kind but Secrets and ConfigMaps, which are
/// watched one by one, for the objects Gateways and BackendTLSPolicies name (see
/// [`crate::SecretSelection`]), and Events, watched only by a source that provisions
/// Services, and only those of [`SERVICE_WARNINGS`].
pub(crate) fn watched() -> impl Iterator<Item = ResourceKind> {
    ResourceKind::ALL.into_iter().filter(|kind| {
        !matches!(
            kind,
            ResourceKind::Secret | ResourceKind::ConfigMap | ResourceKind::Event
        )
    })
}

/// The field selector of the Events watch: warnings about Services, where load balancers
/// report what they could not do (the API server filters; these are rare).
pub(crate) const SERVICE_WARNINGS: &str = "involvedObject.kind=Service,type=Warning";

/// Whether a cluster may lack the kind's CRD without anything being wrong: the experimental
/// and recently graduated kinds. A missing CRD of any other kind is logged as an error, but
/// is read the same way (as "none of them"), so a partial install still serves.
pub(crate) fn is_optional(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::ListenerSet
            | ResourceKind::TlsRoute
            | ResourceKind::TcpRoute
            | ResourceKind::UdpRoute
            | ResourceKind::BackendTlsPolicy
            | ResourceKind::GrpcRoute
    )
}

/// The resource name in API paths (`httproutes`, `gatewayclasses`, `backendtlspolicies`).
pub(crate) fn plural(kind: ResourceKind) -> String {
    let lower = kind.as_str().to_ascii_lowercase();
    // "policy" → "policies", but "gateway" → "gateways": a `y` after a vowel stays.
    let consonant_y = lower.ends_with('y')
        && !matches!(
            lower.as_bytes().get(lower.len().wrapping_sub(2)),
            Some(b'a' | b'e' | b'i' | b'o' | b'u')
        );
    if consonant_y {
        format!("{}ies", &lower[..lower.len() - 1])
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// The API resource of `kind` in `version`.
pub(crate) fn api_resource(kind: ResourceKind, version: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(kind.group(), version, kind.as_str());
    ApiResource::from_gvk_with_plural(&gvk, &plural(kind))
}

/// An API handle for every object of `ar` (all namespaces for namespaced kinds).
pub(crate) fn api_all(client: &kube::Client, ar: &ApiResource) -> Api<DynamicObject> {
    Api::all_with(client.clone(), ar)
}

/// An API handle for one object's collection: its namespace, or the cluster.
pub(crate) fn api_for(
    client: &kube::Client,
    kind: ResourceKind,
    namespace: &str,
    ar: &ApiResource,
) -> Api<DynamicObject> {
    if kind.is_namespaced() {
        Api::namespaced_with(client.clone(), namespace, ar)
    } else {
        Api::all_with(client.clone(), ar)
    }
}

/// Whether an API error is a 404 (an unknown resource, or a missing object).
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Whether an API error is a 409 (a stale `resourceVersion`, or an object that exists).
pub(crate) fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Finds the version of `kind` the cluster serves: the first of [`ResourceKind::versions`]
/// (newest first) whose list does not answer 404. `Ok(None)` when none is served (the CRD is
/// not installed).
///
/// Probing with a one-item list, rather than API discovery, needs no permission beyond the
/// `list` the watch needs anyway.
pub(crate) async fn resolve(
    client: &kube::Client,
    kind: ResourceKind,
) -> Result<Option<ApiResource>, kube::Error> {
    let versions = kind.versions();
    if kind.group().is_empty() {
        // Core kinds are served as v1 by every cluster.
        return Ok(Some(api_resource(kind, versions[0])));
    }
    for version in versions {
        let ar = api_resource(kind, version);
        match api_all(client, &ar)
            .list(&ListParams::default().limit(1))
            .await
        {
            Ok(_) => return Ok(Some(ar)),
            Err(error) if is_not_found(&error) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_match_the_crds() {
        let got: Vec<String> = ResourceKind::ALL.into_iter().map(plural).collect();
        assert_eq!(
            got,
            [
                "gatewayclasses",
                "gateways",
                "listenersets",
                "httproutes",
                "grpcroutes",
                "tlsroutes",
                "tcproutes",
                "udproutes",
                "referencegrants",
                "backendtlspolicies",
                "secrets",
                "configmaps",
                "services",
                "endpointslices",
                "namespaces",
                "events",
            ]
        );
    }

    #[test]
    fn api_resources_use_the_kind_group() {
        let ar = api_resource(ResourceKind::HttpRoute, "v1");
        assert_eq!(ar.api_version, "gateway.networking.k8s.io/v1");
        assert_eq!(ar.plural, "httproutes");
        let ar = api_resource(ResourceKind::EndpointSlice, "v1");
        assert_eq!(ar.api_version, "discovery.k8s.io/v1");
        let ar = api_resource(ResourceKind::Service, "v1");
        assert_eq!(ar.api_version, "v1");
        assert_eq!(ar.group, "");
    }
}
