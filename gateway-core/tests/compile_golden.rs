//! Compile tests over manifests: the seed demo, and a golden suite (`golden/*.yaml` → the
//! expected Ir summary and Status in `golden/*.expected.yaml`).
//!
//! Regenerate the expected files after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p gateway-core --test compile_golden`, and review the diff.
#![allow(clippy::expect_used)] // test helpers: a broken fixture should fail loudly

use std::path::{Path, PathBuf};

use gateway_core::compile::{Options, compile};
use gateway_core::ir::{AppProtocol, Ir};
use gateway_core::model::{Condition, Resource, Snapshot};

/// Reads multi-document YAML into a snapshot, as the file source does (default namespace
/// `default`; cluster-scoped kinds lose a stray namespace).
fn load(text: &str) -> Snapshot {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).expect("test manifests are valid YAML");
    let mut snapshot = Snapshot::default();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let Some(mut resource) = Resource::from_json(doc).expect("known kinds parse") else {
            continue;
        };
        let namespaced = resource.kind().is_namespaced();
        let meta = resource.metadata_mut();
        if !namespaced {
            meta.namespace = None;
        } else if meta.namespace.is_none() {
            meta.namespace = Some("default".into());
        }
        snapshot.push(resource);
    }
    snapshot
}

fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    assert!(
        dir.is_dir(),
        "the shared folder (seed demo, conformance data) was expected at {}; clone the \
         project with ../shared beside it",
        dir.display()
    );
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn seed_snapshot() -> Snapshot {
    let seed = shared().join("seed-demo");
    let mut text = String::new();
    for file in ["gateway.yaml", "routes.yaml", "services.yaml"] {
        text.push_str(&read(&seed.join(file)));
        text.push_str("\n---\n");
    }
    text.push_str(&read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/selfsigned-tls.yaml"),
    ));
    load(&text)
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

#[test]
fn seed_demo_compiles_with_every_listener_programmed() {
    let snapshot = seed_snapshot();
    let (ir, status) = compile(&snapshot, &Options::default());
    assert!(status.all_accepted(), "{status:#?}");

    let gateway = status
        .gateway("platform", "main-gateway")
        .expect("our Gateway");
    assert!(condition(&gateway.status.conditions, "Accepted").is_true());
    assert!(condition(&gateway.status.conditions, "Programmed").is_true());
    let attached: Vec<(&str, i64)> = gateway
        .status
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.attached_routes))
        .collect();
    assert_eq!(
        attached,
        [
            ("http", 1),
            ("https", 1),
            ("tcp", 1),
            ("udp", 1),
            ("grpc", 1)
        ]
    );
    for listener in &gateway.status.listeners {
        for type_ in ["Accepted", "Programmed", "ResolvedRefs"] {
            let c = condition(&listener.conditions, type_);
            assert!(c.is_true(), "listener {} {type_}: {c:?}", listener.name);
            assert_eq!(c.reason, type_);
        }
    }
    // Every route is Accepted with resolved references, and written for the right parent.
    assert_eq!(status.routes.len(), 5);
    for route in &status.routes {
        assert_eq!(route.status.parents.len(), 1, "{}", route.key);
        let parent = &route.status.parents[0];
        assert_eq!(
            parent.controller_name,
            "gateway.envoyproxy.io/gatewayclass-controller"
        );
        assert_eq!(
            parent.parent_ref.group.as_deref(),
            Some("gateway.networking.k8s.io")
        );
        assert_eq!(parent.parent_ref.kind.as_deref(), Some("Gateway"));
        assert_eq!(parent.parent_ref.namespace.as_deref(), Some("platform"));
        assert!(
            condition(&parent.conditions, "Accepted").is_true(),
            "{}",
            route.key
        );
        assert!(
            condition(&parent.conditions, "ResolvedRefs").is_true(),
            "{}",
            route.key
        );
    }

    // The Ir: HTTP :80, TLS :443 and :50051, TCP :8080, UDP :8081.
    let binds: Vec<(u16, String)> = ir
        .binds
        .iter()
        .map(|b| (b.port, format!("{:?}", b.protocol)))
        .collect();
    assert_eq!(
        binds,
        [
            (80, "Http".to_owned()),
            (443, "Tls".to_owned()),
            (8080, "Tcp".to_owned()),
            (8081, "Udp".to_owned()),
            (50051, "Tls".to_owned()),
        ]
    );
    // GRPCRoute backends speak h2c although the Service says nothing about HTTP/2.
    let backends = service_backends(&ir);
    for expected in [
        (
            "demo/grpc-hello-service",
            50051,
            AppProtocol::H2c,
            "127.0.0.1:50052",
        ),
        (
            "demo/tcp-udp-service",
            8080,
            AppProtocol::Tcp,
            "127.0.0.1:9000",
        ),
        (
            "demo/tcp-udp-service",
            8081,
            AppProtocol::Udp,
            "127.0.0.1:9000",
        ),
    ] {
        assert!(
            backends.contains(&(
                expected.0.to_owned(),
                expected.1,
                expected.2,
                vec![expected.3.to_owned()]
            )),
            "{expected:?} in {backends:?}"
        );
    }
}

/// Every Service backend the Ir forwards to: `namespace/name`, port, protocol, endpoints.
fn service_backends(ir: &Ir) -> Vec<(String, u16, AppProtocol, Vec<String>)> {
    ir.service_backends()
        .map(|s| {
            (
                format!("{}/{}", s.service.namespace, s.service.name),
                s.port,
                s.protocol,
                s.endpoints.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

#[test]
fn seed_demo_port_offset_moves_binds_not_listeners() {
    let snapshot = seed_snapshot();
    let options = Options {
        port_offset: 10000,
        ..Options::default()
    };
    let (ir, _) = compile(&snapshot, &options);
    let ports: Vec<(u16, u16)> = ir
        .binds
        .iter()
        .map(|b| (b.port, b.listeners[0].port))
        .collect();
    assert_eq!(
        ports,
        [
            (10080, 80),
            (10443, 443),
            (18080, 8080),
            (18081, 8081),
            (60051, 50051)
        ]
    );
}

#[test]
fn seed_demo_without_certificate_reports_the_listeners() {
    let seed = shared().join("seed-demo");
    let mut text = String::new();
    for file in ["gateway.yaml", "routes.yaml", "services.yaml"] {
        text.push_str(&read(&seed.join(file)));
        text.push_str("\n---\n");
    }
    let (ir, status) = compile(&load(&text), &Options::default());
    let gateway = status
        .gateway("platform", "main-gateway")
        .expect("our Gateway");
    let https = &gateway.status.listeners[1];
    let resolved = condition(&https.conditions, "ResolvedRefs");
    assert!(!resolved.is_true());
    assert_eq!(resolved.reason, "InvalidCertificateRef");
    assert!(
        resolved.message.contains("platform/selfsigned-tls"),
        "{resolved:?}"
    );
    assert!(!condition(&https.conditions, "Programmed").is_true());
    // Routes still attach to it and are counted.
    assert_eq!(https.attached_routes, 1);
    // The other listeners keep serving.
    let ports: Vec<u16> = ir.binds.iter().map(|b| b.port).collect();
    assert_eq!(ports, [80, 8080, 8081]);
    // A listener without a usable certificate is Accepted but not Programmed, so the Gateway
    // stays Accepted; `all_healthy` is what tooling checks.
    assert!(condition(&gateway.status.conditions, "Accepted").is_true());
    assert!(status.all_accepted());
    assert!(!status.all_healthy());
}

/// Status in a reviewable form: one line per condition, `Type=Status/Reason: message (gen N)`.
fn compact_status(status: &gateway_core::status::Status) -> serde_json::Value {
    use serde_json::json;
    let conditions = |cs: &[Condition]| -> Vec<String> {
        cs.iter()
            .map(|c| {
                let mut line = format!("{}={}/{}", c.type_, c.status, c.reason);
                if !c.message.is_empty() {
                    line.push_str(&format!(": {}", c.message));
                }
                if let Some(g) = c.observed_generation {
                    line.push_str(&format!(" (gen {g})"));
                }
                line
            })
            .collect()
    };
    json!({
        "gatewayClasses": status.gateway_classes.iter().map(|c| json!({
            "class": c.key.to_string(),
            "conditions": conditions(&c.status.conditions),
        })).collect::<Vec<_>>(),
        "gateways": status.gateways.iter().map(|g| json!({
            "gateway": g.key.to_string(),
            "addresses": g.status.addresses.iter().map(|a| a.value.clone()).collect::<Vec<_>>(),
            "conditions": conditions(&g.status.conditions),
            "listeners": g.status.listeners.iter().map(|l| json!({
                "name": l.name,
                "attachedRoutes": l.attached_routes,
                "supportedKinds": l.supported_kinds.iter().map(|k| k.kind.clone()).collect::<Vec<_>>(),
                "conditions": conditions(&l.conditions),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "routes": status.routes.iter().map(|r| json!({
            "route": r.key.to_string(),
            "parents": r.status.parents.iter().map(|p| json!({
                "parentRef": format!(
                    "{}/{} {}/{}{}{}",
                    p.parent_ref.group.as_deref().unwrap_or("?"),
                    p.parent_ref.kind.as_deref().unwrap_or("?"),
                    p.parent_ref.namespace.as_deref().unwrap_or("?"),
                    p.parent_ref.name,
                    p.parent_ref.section_name.as_deref().map(|s| format!("#{s}")).unwrap_or_default(),
                    p.parent_ref.port.map(|s| format!(":{s}")).unwrap_or_default(),
                ),
                "controller": p.controller_name,
                "conditions": conditions(&p.conditions),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "diagnostics": status.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// Runs every `golden/*.yaml` case through compile and compares with its expected file.
#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && !p.to_string_lossy().ends_with(".expected.yaml")
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no golden cases in {}", dir.display());
    let mut failures = Vec::new();
    for input in &inputs {
        let mut text = read(input);
        // Cases may ask for the shared test certificate.
        if text.contains("# needs: selfsigned-tls") {
            text.push_str("\n---\n");
            text.push_str(&read(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/selfsigned-tls.yaml"),
            ));
        }
        let options = Options {
            controller_name: Some("example.com/gateway".into()),
            ..Options::default()
        };
        let (ir, status) = compile(&load(&text), &options);
        let actual = serde_json::json!({ "ir": ir.summary(), "status": compact_status(&status) });
        let rendered = serde_saphyr::to_string(&actual).expect("serialisable");
        let expected_path = input.with_extension("expected.yaml");
        if update {
            std::fs::write(&expected_path, &rendered).expect("writable golden file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != rendered {
            failures.push(format!(
                "{}: output differs from {} (rerun with UPDATE_GOLDEN=1 and review the diff)\n--- actual ---\n{rendered}",
                input.display(),
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The repository's copy of the seed demo keeps the seed's manifests byte for byte.
#[test]
fn repository_seed_demo_is_verbatim() {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-demo");
    let seed = shared().join("seed-demo");
    for file in ["gateway.yaml", "routes.yaml"] {
        assert_eq!(
            read(&ours.join(file)),
            read(&seed.join(file)),
            "examples/seed-demo/{file} differs from the seed's"
        );
    }
}
