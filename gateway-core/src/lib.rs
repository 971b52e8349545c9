//! The Gateway API model, its validation and compilation, and the request matching engine.
//!
//! Data flows one way: a [`ConfigSource`](source::ConfigSource) emits a [`Snapshot`](model::Snapshot);
//! [`compile`](compile::compile) turns it into an [`Ir`](ir::Ir) the data plane executes and a
//! [`Status`](status::Status) that says, with the upstream condition types and reasons, what was
//! accepted and what was not; the [`router`] answers, per request, which rule serves it.
//!
//! This crate does no I/O and has no networking or YAML dependency: adapters parse YAML or talk
//! to the API server, and hand the core Kubernetes-shaped objects.
//!
//! # Example: parse a manifest, compile it, match a request
//!
//! ```
//! use gateway_core::compile::{compile, Options};
//! use gateway_core::ir::{Backend, RuleAction};
//! use gateway_core::model::{Resource, Snapshot};
//! use gateway_core::router::{normalize_path, HttpRequest, HttpRouter};
//!
//! // Objects as the API server (or a YAML file turned into JSON values) gives them.
//! let manifests = serde_json::json!([
//!     {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
//!      "metadata": {"name": "example"}, "spec": {"controllerName": "example.com/gateway"}},
//!     {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
//!      "metadata": {"name": "web", "namespace": "shop"},
//!      "spec": {"gatewayClassName": "example",
//!               "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}},
//!     {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
//!      "metadata": {"name": "api", "namespace": "shop"},
//!      "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["shop.example.com"],
//!               "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
//!                          "backendRefs": [{"name": "api", "port": 80}]}]}},
//!     {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
//!      "spec": {"ports": [{"port": 80, "targetPort": 3000}]}},
//!     {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
//!      "metadata": {"name": "api-1", "namespace": "shop",
//!                   "labels": {"kubernetes.io/service-name": "api"}},
//!      "addressType": "IPv4", "ports": [{"port": 3000}],
//!      "endpoints": [{"addresses": ["10.0.0.7"]}]}
//! ]);
//! let mut snapshot = Snapshot::default();
//! for object in manifests.as_array().into_iter().flatten() {
//!     snapshot.extend(Resource::from_json(object.clone())?);
//! }
//!
//! let (ir, status) = compile(&snapshot, &Options::default());
//! assert!(status.all_healthy(), "{}", status.to_table());
//!
//! let router = HttpRouter::new(&ir.binds[0].listeners);
//! let path = normalize_path("/api/./orders//42")?; // → "/api/orders/42"
//! let headers: &[(&str, &str)] = &[("accept", "application/json")];
//! let hit = router
//!     .route(&HttpRequest {
//!         host: "Shop.Example.com:8080",
//!         path: &path,
//!         query: Some("page=2"),
//!         method: "GET",
//!         headers,
//!     })
//!     .expect("the api rule matches");
//! assert_eq!(hit.route.id.to_string(), "HTTPRoute shop/api");
//! let RuleAction::Forward(backends) = &hit.rule.action else { panic!("a forwarding rule") };
//! let Backend::Service(service) = &backends[0].backend else { panic!("a resolved Service") };
//! assert_eq!(service.endpoints[0].to_string(), "10.0.0.7:3000");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod compile;
pub mod ir;
pub mod model;
pub mod router;
pub mod source;
pub mod status;
pub mod validate;
