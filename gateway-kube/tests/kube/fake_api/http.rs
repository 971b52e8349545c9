//! The HTTP side: the accept loop, API path routing, and the verbs but WATCH.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::discovery;
use super::patch::PatchKind;
use super::store::{ApiError, Part, ResourceDef, rv_of};
use super::watch::{self, Filter};
use super::{RequestRecord, Shared, Verb};

/// Response bodies: whole JSON documents, or a watch stream.
pub(crate) type Body = BoxBody<Bytes, io::Error>;

/// Serves connections until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: try again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, request).await) }
            });
            // Connection errors (clients going away, dropped watches) end only that connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A parsed API path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) namespace: Option<String>,
    pub(crate) plural: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` paths.
pub(crate) fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    // `/api/v1/namespaces/{name}/status` is the Namespace's own subresource, not a resource.
    let namespaced = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    if plural.is_empty() || name.is_some_and(str::is_empty) {
        return None;
    }
    Some(Target {
        group: group.to_owned(),
        version: version.to_owned(),
        namespace,
        plural: plural.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

fn verb_of(method: &Method, target: Option<&Target>, query: &BTreeMap<String, String>) -> Verb {
    let named = target.is_some_and(|t| t.name.is_some());
    let watch = query.get("watch").is_some_and(|v| v == "true" || v == "1");
    match *method {
        Method::GET if named => Verb::Get,
        Method::GET if watch => Verb::Watch,
        Method::GET => Verb::List,
        Method::POST if !named => Verb::Create,
        Method::PUT if named => Verb::Update,
        Method::PATCH if named => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => Verb::Other,
    }
}

/// An object as served at `version`: its `apiVersion` names the requested version.
pub(crate) fn present(object: &Value, def: &ResourceDef, version: &str) -> Value {
    let mut object = object.clone();
    if let Value::Object(members) = &mut object {
        members.insert(
            "apiVersion".to_owned(),
            Value::String(def.api_version(version)),
        );
        members.insert("kind".to_owned(), Value::String(def.kind.clone()));
    }
    object
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(value.to_string()))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    json_response(error.code, &error.to_status())
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let latency = shared.controls().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query_text = request.uri().query().unwrap_or_default().to_owned();
    let query: BTreeMap<String, String> = form_urlencoded::parse(query_text.as_bytes())
        .into_owned()
        .collect();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let accept = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let client = request
        .headers()
        .get(super::CLIENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = parse_path(&path);
    let verb = verb_of(&method, target.as_ref(), &query);

    let injected = {
        let mut controls = shared.controls();
        controls
            .faults
            .iter_mut()
            .find(|fault| fault.remaining > 0 && fault.path == path && fault.verbs.contains(&verb))
            .map(|fault| {
                fault.remaining -= 1;
                fault.error()
            })
    };
    let response = match injected {
        Some(error) => error_response(&error),
        None => {
            let call = Call {
                path: &path,
                verb,
                query: &query,
                content_type: content_type.as_deref(),
                accept: accept.as_deref(),
            };
            route(&shared, &call, target, request.into_body())
                .await
                .unwrap_or_else(|error| error_response(&error))
        }
    };
    shared.controls().requests.push(RequestRecord {
        method: method.to_string(),
        verb,
        path,
        query: query_text,
        content_type,
        client,
        status: response.status().as_u16(),
    });
    response
}

async fn read_json(body: Incoming, content_type: Option<&str>) -> Result<Value, ApiError> {
    let bytes = body
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(value),
        // Server-side apply bodies may be YAML.
        Err(_) if content_type.is_some_and(|t| t.starts_with("application/apply-patch+yaml")) => {
            let text =
                std::str::from_utf8(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("invalid YAML body: {e}")))
        }
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    }
}

/// What a request asks, besides its target and body.
struct Call<'a> {
    path: &'a str,
    verb: Verb,
    query: &'a BTreeMap<String, String>,
    content_type: Option<&'a str>,
    accept: Option<&'a str>,
}

async fn route(
    shared: &Arc<Shared>,
    call: &Call<'_>,
    target: Option<Target>,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let &Call {
        path,
        verb,
        query,
        content_type,
        accept,
    } = call;
    let not_found = || ApiError::new(404, "the server could not find the requested resource");
    let Some(target) = target else {
        if path == "/version" {
            return Ok(json_response(
                200,
                &json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake", "platform": "linux/amd64"}),
            ));
        }
        let aggregated = accept.is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
        let document =
            discovery::document(&shared.store(), path, aggregated).ok_or_else(not_found)?;
        return Ok(json_response(200, &document));
    };
    let def = shared
        .store()
        .resource(&target.group, &target.plural)?
        .clone();
    let creating_at_cluster_scope =
        def.namespaced && target.namespace.is_none() && verb == Verb::Create;
    if (target.namespace.is_some() && !def.namespaced)
        || (def.namespaced && target.namespace.is_none() && target.name.is_some())
        || creating_at_cluster_scope
    {
        return Err(not_found());
    }
    let part = match target.subresource.as_deref() {
        None => Part::Main,
        Some("status") => Part::Status,
        Some(_) => return Err(not_found()),
    };
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let version = target.version.as_str();
    let metadata_only = accept.is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let respond = |status: u16, value: Value| {
        json_response(
            status,
            &if metadata_only {
                metadata_view(value)
            } else {
                value
            },
        )
    };
    match verb {
        Verb::Get => {
            let store = shared.store();
            let object = store
                .get(&def, &namespace, &name)
                .ok_or_else(|| ApiError::not_found(&def, &name))?;
            Ok(respond(200, present(object, &def, version)))
        }
        Verb::List => {
            let filter = Filter::new(def.clone(), version, target.namespace.clone(), query)?;
            Ok(respond(200, list(shared, &filter, query)?))
        }
        Verb::Watch => {
            let mut filter = Filter::new(def.clone(), version, target.namespace.clone(), query)?;
            filter.metadata_only = metadata_only;
            watch::start(shared, filter, query)
        }
        Verb::Create => {
            let object = read_json(body, content_type).await?;
            let created = shared.write(|store| store.create(&def, &namespace, object, false))?;
            Ok(respond(201, present(&created, &def, version)))
        }
        Verb::Update => {
            let object = read_json(body, content_type).await?;
            let precondition = rv_of(&object).to_owned();
            let updated = shared.write(|store| {
                store.update(&def, &namespace, &name, object, part, Some(&precondition))
            })?;
            Ok(respond(200, present(&updated, &def, version)))
        }
        Verb::Patch => {
            let kind = content_type
                .and_then(PatchKind::from_content_type)
                .ok_or_else(|| {
                    ApiError::new(
                        415,
                        format!("the patch content type {content_type:?} is not supported"),
                    )
                })?;
            let patch = read_json(body, content_type).await?;
            let (patched, created) =
                shared.write(|store| store.patch(&def, &namespace, &name, kind, &patch, part))?;
            Ok(respond(
                if created { 201 } else { 200 },
                present(&patched, &def, version),
            ))
        }
        Verb::Delete => {
            let options = read_json(body, content_type).await.unwrap_or(Value::Null);
            let precondition = options
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let deleted = shared
                .write(|store| store.delete(&def, &namespace, &name, precondition.as_deref()))?;
            Ok(respond(200, present(&deleted, &def, version)))
        }
        Verb::DeleteCollection => {
            let filter = Filter::new(def.clone(), version, target.namespace.clone(), query)?;
            let deleted = shared.write(|store| {
                let names: Vec<(String, String)> = store
                    .list(&def, filter.namespace.as_deref())
                    .into_iter()
                    .filter(|object| filter.matches(object))
                    .map(|object| {
                        let field = |f: &str| {
                            object
                                .pointer(f)
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned()
                        };
                        (field("/metadata/namespace"), field("/metadata/name"))
                    })
                    .collect();
                names
                    .iter()
                    .filter_map(|(ns, name)| store.delete(&def, ns, name, None).ok())
                    .map(|object| present(&object, &def, version))
                    .collect::<Vec<_>>()
            });
            let rv = shared.store().rv();
            Ok(respond(
                200,
                list_document(&def, version, rv, deleted, None, 0),
            ))
        }
        Verb::Other => Err(ApiError::new(405, "the method is not allowed on this path")),
    }
}

/// An object or list as served for `Accept: ...;as=PartialObjectMetadata[List]`: metadata only.
pub(crate) fn metadata_view(value: Value) -> Value {
    let Some(Value::Array(items)) = value.get("items") else {
        return json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": value.get("metadata").cloned().unwrap_or_else(|| json!({})),
        });
    };
    let items: Vec<Value> = items.iter().cloned().map(metadata_view).collect();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": value.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "items": items,
    })
}

fn list_document(
    def: &ResourceDef,
    version: &str,
    rv: u64,
    items: Vec<Value>,
    continue_token: Option<String>,
    remaining: usize,
) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = Value::String(token);
        metadata["remainingItemCount"] = Value::from(remaining);
    }
    json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(version),
        "metadata": metadata,
        "items": items,
    })
}

/// LIST: the current state (see the module docs for the resourceVersion semantics), paged by
/// `limit` and `continue`.
fn list(
    shared: &Shared,
    filter: &Filter,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let store = shared.store();
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(limit) => limit
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit `{limit}`")))?,
        None => 0,
    };
    let exact = query
        .get("resourceVersionMatch")
        .is_some_and(|m| m == "Exact");
    let requested_rv = query.get("resourceVersion").filter(|rv| !rv.is_empty());
    if let (true, Some(rv)) = (exact, requested_rv)
        && *rv != store.rv().to_string()
    {
        return Err(ApiError::expired(format!(
            "too old resource version: {rv} ({}); the fake lists only the newest state",
            store.rv()
        )));
    }
    // The continue token is `{rv}/{namespace}/{name}` of the last item served.
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let mut parts = token.splitn(3, '/');
            let (Some(rv), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(ApiError::bad_request(format!(
                    "invalid continue token `{token}`"
                )));
            };
            let rv: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid continue token `{token}`")))?;
            if rv < store.compacted() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some((ns.to_owned(), name.to_owned())))
        }
        None => (store.rv(), None),
    };
    let key = |object: &Value| {
        let field = |f: &str| {
            object
                .pointer(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        (field("/metadata/namespace"), field("/metadata/name"))
    };
    let matching: Vec<&Value> = store
        .list(&filter.def, filter.namespace.as_deref())
        .into_iter()
        .filter(|object| after.as_ref().is_none_or(|after| key(object) > *after))
        .filter(|object| filter.matches(object))
        .collect();
    let page = if limit == 0 {
        matching.len()
    } else {
        limit.min(matching.len())
    };
    let remaining = matching.len() - page;
    let continue_token = match (remaining, page.checked_sub(1).and_then(|i| matching.get(i))) {
        (1.., Some(last)) => {
            let (ns, name) = key(last);
            Some(format!("{list_rv}/{ns}/{name}"))
        }
        _ => None,
    };
    let items = matching[..page]
        .iter()
        .map(|o| present(o, &filter.def, &filter.version))
        .collect();
    Ok(list_document(
        &filter.def,
        &filter.version,
        list_rv,
        items,
        continue_token,
        remaining,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let target =
            parse_path("/apis/gateway.networking.k8s.io/v1/namespaces/ns/gateways/gw/status")
                .expect("valid");
        assert_eq!(target.group, "gateway.networking.k8s.io");
        assert_eq!(target.namespace.as_deref(), Some("ns"));
        assert_eq!(target.plural, "gateways");
        assert_eq!(target.name.as_deref(), Some("gw"));
        assert_eq!(target.subresource.as_deref(), Some("status"));
        let target = parse_path("/api/v1/namespaces/ns").expect("valid");
        assert_eq!(
            (target.plural.as_str(), target.name.as_deref()),
            ("namespaces", Some("ns"))
        );
        let target = parse_path("/api/v1/namespaces/ns/status").expect("valid");
        assert_eq!(target.subresource.as_deref(), Some("status"));
        let target = parse_path("/api/v1/namespaces/ns/services").expect("valid");
        assert_eq!((target.plural.as_str(), target.name), ("services", None));
        let target =
            parse_path("/apis/gateway.networking.k8s.io/v1/gatewayclasses/gc").expect("valid");
        assert_eq!(
            (target.namespace, target.name.as_deref()),
            (None, Some("gc"))
        );
        assert_eq!(parse_path("/healthz"), None);
        assert_eq!(parse_path("/api/v1/namespaces/ns/services/a/b/c"), None);
    }
}
