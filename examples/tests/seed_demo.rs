//! The seed demo end to end, with real clients, as the README runs it; `gateway check` on
//! the seed folder and on a broken one; hot reload under traffic.
//!
//! Tests named `dataplane_*` need the data plane (`gateway-net`'s HTTP, TLS and L4 modules).

#![allow(clippy::expect_used)] // test helpers: a broken fixture should fail loudly

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gateway_examples::check::{Checked, check};
use gateway_examples::grpc::{CallOptions, call_greeter, tls_client_config};
use gateway_examples::seed_demo::{self, SeedDemo, SeedDemoOptions};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const STEP: Duration = Duration::from_secs(10);

fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// Starts the demo on `config` with a random port offset, retrying when a shifted port is
/// taken. The offset keeps 50051 below 65536 and 80 above 1024.
async fn start_demo(config: &Path) -> SeedDemo {
    start_demo_with(config, None).await
}

/// Same, with the admin endpoint on `admin_address`.
async fn start_demo_with(config: &Path, admin_address: Option<SocketAddr>) -> SeedDemo {
    for _ in 0..20 {
        let offset = 11_000 + (random() % 4_400) as i32;
        let options = SeedDemoOptions {
            config: config.to_owned(),
            port_offset: offset,
            quiet: true,
            debounce: Some(Duration::from_millis(10)),
            admin_address,
            ..SeedDemoOptions::default()
        };
        let demo = match seed_demo::run(options).await {
            Ok(demo) => demo,
            Err(error) => panic!("the seed demo does not start: {error}"),
        };
        let applied = demo.applied().borrow().clone().expect("first apply");
        if applied.report.bind_failures.is_empty() {
            assert!(
                applied.report.is_complete(),
                "the data plane left listeners out: {:?}",
                applied.report
            );
            return demo;
        }
        demo.shutdown().await;
        // Let the backends' listeners close before the next attempt binds them again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no free port offset found in 20 attempts");
}

/// Runs curl and returns its stdout; fails clearly when curl is missing.
async fn curl(args: Vec<String>) -> String {
    let shown = args.join(" ");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10"])
            .args(&args)
            .output()
    })
    .await
    .expect("curl task");
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("these tests need the `curl` binary (apt-get install curl); .ci/run installs it")
        }
        Err(error) => panic!("cannot run curl: {error}"),
    };
    assert!(
        output.status.success(),
        "curl {shown} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_seed_demo_serves_every_row_of_the_seed_table() {
    // The seed's manifests verbatim; only the project's services file points the backends at
    // free ports, so the test runs beside a demo someone is running by hand.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_seed_with_free_backend_ports(dir.path());
    let demo = start_demo(dir.path()).await;
    let port = |name: &'static str| {
        let demo = &demo;
        async move {
            demo.port(name)
                .await
                .unwrap_or_else(|| panic!("listener {name} bound"))
        }
    };
    let (http, https, tcp, udp, grpc) = (
        port("http").await,
        port("https").await,
        port("tcp").await,
        port("udp").await,
        port("grpc").await,
    );

    // http: 301 to https://app.me/http-echo
    let response = curl(vec![
        "-i".into(),
        "-H".into(),
        "Host: app.me".into(),
        format!("http://127.0.0.1:{http}/http-echo"),
    ])
    .await;
    let status_line = response.lines().next().unwrap_or_default();
    assert!(status_line.contains(" 301"), "http: {response}");
    assert!(
        response
            .lines()
            .any(|l| l.to_ascii_lowercase().trim() == "location: https://app.me/http-echo"),
        "http: no `Location: https://app.me/http-echo` in\n{response}"
    );

    // https: 200 from http-echo over HTTP/1.1 and HTTP/2; other paths 404.
    let resolve = format!("app.me:{https}:127.0.0.1");
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let response = curl(vec![
            "-k".into(),
            flag.into(),
            "--resolve".into(),
            resolve.clone(),
            "-w".into(),
            "\n%{http_code} %{http_version}".into(),
            format!("https://app.me:{https}/http-echo"),
        ])
        .await;
        assert!(
            response.starts_with("Hello from http-echo"),
            "https {flag}: {response}"
        );
        assert!(
            response.ends_with(&format!("\n200 {version}")),
            "https {flag}: {response}"
        );
    }
    let response = curl(vec![
        "-k".into(),
        "--resolve".into(),
        resolve.clone(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
        format!("https://app.me:{https}/elsewhere"),
    ])
    .await;
    assert_eq!(response, "404", "https: another path");

    // tcp: a line comes back.
    let echoed = timeout(STEP, async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", tcp)).await?;
        stream.write_all(b"hello over tcp\n").await?;
        let mut buffer = vec![0u8; 15];
        stream.read_exact(&mut buffer).await?;
        Ok::<_, std::io::Error>(buffer)
    })
    .await
    .expect("tcp: timed out")
    .expect("tcp: echo");
    assert_eq!(echoed, b"hello over tcp\n");

    // udp: a datagram comes back (retried: UDP may drop).
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp bind");
    let mut echoed = None;
    for _ in 0..5 {
        socket
            .send_to(b"hello over udp", ("127.0.0.1", udp))
            .await
            .expect("udp send");
        let mut buffer = [0u8; 64];
        if let Ok(Ok((n, _))) = timeout(Duration::from_secs(1), socket.recv_from(&mut buffer)).await
        {
            echoed = Some(buffer[..n].to_vec());
            break;
        }
    }
    assert_eq!(
        echoed.as_deref(),
        Some(&b"hello over udp"[..]),
        "udp: no echo"
    );

    // grpc: reflection lists the service; SayHello answers, over TLS with authority app.me.
    let result = timeout(
        STEP,
        call_greeter(&CallOptions {
            address: SocketAddr::from(([127, 0, 0, 1], grpc)),
            authority: "app.me".into(),
            trusted_certificate_pem: demo.certificate_pem("grpc"),
            name: "test".into(),
        }),
    )
    .await
    .expect("grpc: timed out")
    .unwrap_or_else(|error| panic!("grpc: {error}"));
    assert!(
        result.services.iter().any(|s| s == "helloworld.Greeter"),
        "grpc reflection: {:?}",
        result.services
    );
    assert_eq!(result.greeting, "Hello test! (from grpc-hello-service)");

    demo.shutdown().await;
}

#[test]
fn check_prints_every_seed_listener_programmed() {
    let folder = seed_demo::default_config_dir();
    let checked = check(&folder, None, "default");
    let table = checked.to_table(&folder);
    assert_eq!(checked.exit_code(), 0, "{table}");
    let Checked::Compiled { status, .. } = &checked else {
        panic!("does not load: {table}");
    };
    let listeners = &status.gateways[0].status.listeners;
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["http", "https", "tcp", "udp", "grpc"]);
    for listener in listeners {
        assert!(
            listener
                .conditions
                .iter()
                .any(|c| c.type_ == "Programmed" && c.is_true()),
            "listener {} not Programmed:\n{table}",
            listener.name
        );
        assert_eq!(listener.attached_routes, 1, "{table}");
        assert!(table.contains(&format!("Listener    {} (1 routes)", listener.name)));
    }
}

/// A copy of the seed folder (manifests only) in a temporary directory.
fn copy_seed(dir: &Path) {
    for entry in std::fs::read_dir(seed_demo::default_config_dir()).expect("seed folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}

#[test]
fn check_names_route_field_and_reason_of_a_broken_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_seed(dir.path());
    let routes = dir.path().join("routes.yaml");
    let text = std::fs::read_to_string(&routes).expect("routes");
    std::fs::write(
        &routes,
        text.replace("value: /http-echo", "value: http-echo"),
    )
    .expect("write");
    let checked = check(dir.path(), None, "default");
    let table = checked.to_table(dir.path());
    assert_ne!(checked.exit_code(), 0, "{table}");
    let problem = table
        .lines()
        .find(|l| l.contains("demo/https-server-route") && l.contains("UnsupportedValue"))
        .unwrap_or_else(|| panic!("no row names the route and reason:\n{table}"));
    assert!(
        problem.contains("Accepted") && problem.contains("False"),
        "{problem}"
    );
    assert!(
        table.contains("HTTPRoute demo/https-server-route: spec.rules[0].matches[0].path.value"),
        "no problem line names the field:\n{table}"
    );
}

#[test]
fn check_reports_a_manifest_that_does_not_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_seed(dir.path());
    std::fs::write(
        dir.path().join("broken.yaml"),
        "kind: Service\napiVersion: v1\nspec: [\n",
    )
    .expect("write");
    let checked = check(dir.path(), None, "default");
    assert_ne!(checked.exit_code(), 0);
    assert!(checked.to_table(dir.path()).contains("broken.yaml:3"));
}

/// A copy of the seed folder whose services file sends each backend to a free port of its
/// own (the TCP and UDP echoes share one, as in the seed).
fn copy_seed_with_free_backend_ports(dir: &Path) {
    copy_seed(dir);
    let services = dir.join("services.yaml");
    let mut text = std::fs::read_to_string(&services).expect("services");
    for old in ["5678", "9000", "50052"] {
        text = text.replace(old, &free_port().to_string());
    }
    std::fs::write(&services, text).expect("write services");
}

/// A free loopback port for both TCP and UDP.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The demo's HTTPS route in one of the shapes the hot-reload test cycles through. Every
/// shape sends `/http-echo` to `http-echo` or `http-echo-b`.
fn https_route(i: usize) -> String {
    let head = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: https-server-route
  namespace: demo
spec:
  parentRefs:
  - name: main-gateway
    namespace: platform
    sectionName: https
  hostnames:
  - \"app.me\"
  rules:
";
    let echo = |backends: &str| {
        format!(
            "  - matches:
    - path:
        type: PathPrefix
        value: /http-echo
    backendRefs:
{backends}"
        )
    };
    let backend = |name: &str, weight: usize| {
        format!(
            "    - name: {name}\n      namespace: demo\n      port: 80\n      weight: {weight}\n"
        )
    };
    let unrelated = |n: usize| {
        format!(
            "  - matches:
    - path:
        type: Exact
        value: /unrelated-{n}
    backendRefs:
    - name: http-echo-b
      port: 80
"
        )
    };
    let rules = match i % 4 {
        0 => echo(&backend("http-echo", 1)),
        1 => echo(&backend("http-echo-b", 1)),
        2 => echo(&(backend("http-echo", i % 7 + 1) + &backend("http-echo-b", 3))),
        _ => unrelated(i) + &echo(&backend("http-echo-b", 1)) + &unrelated(i + 1),
    };
    format!("{head}{rules}")
}

/// Sends GET /http-echo over TLS on one connection after another (10 requests each), until
/// `stop`; counts answers and returns every wrong one.
async fn hammer(
    https: u16,
    pem: Option<Vec<u8>>,
    http2: bool,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    seen_b: Arc<AtomicBool>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let alpn: &[&[u8]] = if http2 { &[b"h2"] } else { &[b"http/1.1"] };
    let config = Arc::new(tls_client_config(pem.as_deref(), alpn).expect("tls config"));
    while !stop.load(Ordering::Relaxed) {
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", https)).await?;
            let name = rustls::pki_types::ServerName::try_from("app.me")?;
            let tls = TokioIo::new(connector.connect(name, tcp).await?);
            let mut answers = Vec::new();
            if http2 {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), tls).await?;
                tokio::spawn(connection);
                for _ in 0..10 {
                    let request = http::Request::get(format!("https://app.me:{https}/http-echo"))
                        .body(Empty::<Bytes>::new())?;
                    let response = sender.send_request(request).await?;
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    answers.push((status, body));
                }
            } else {
                let (mut sender, connection) = hyper::client::conn::http1::handshake(tls).await?;
                tokio::spawn(connection);
                for _ in 0..10 {
                    let request = http::Request::get("/http-echo")
                        .header("host", "app.me")
                        .body(Empty::<Bytes>::new())?;
                    let response = sender.send_request(request).await?;
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    answers.push((status, body));
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(answers)
        };
        match timeout(STEP, attempt).await {
            Err(_) => failures.push("timed out".to_owned()),
            Ok(Err(error)) => failures.push(format!("error: {error}")),
            Ok(Ok(answers)) => {
                for (status, body) in answers {
                    let body = String::from_utf8_lossy(&body);
                    let first = body.lines().next().unwrap_or_default();
                    if status == 200
                        && (first == "Hello from http-echo" || first == "Hello from http-echo-b")
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if first.ends_with("-b") {
                            seen_b.store(true, Ordering::Relaxed);
                        }
                    } else {
                        failures.push(format!("{status}: {first}"));
                    }
                }
            }
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_hot_reload_keeps_requests_flowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_seed_with_free_backend_ports(dir.path());
    let services = dir.path().join("services.yaml");
    let mut text = std::fs::read_to_string(&services).expect("services");
    let b_port = free_port();
    text.push_str(&format!(
        "---
apiVersion: v1
kind: Service
metadata:
  name: http-echo-b
  namespace: demo
spec:
  ports:
    - port: 80
      targetPort: {b_port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: http-echo-b-local
  namespace: demo
  labels:
    kubernetes.io/service-name: http-echo-b
addressType: IPv4
ports:
  - port: {b_port}
    protocol: TCP
endpoints:
  - addresses: [\"127.0.0.1\"]
    conditions:
      ready: true
"
    ));
    std::fs::write(&services, text).expect("write services");
    // The HTTPS route moves to a file of its own, rewritten below.
    let routes = dir.path().join("routes.yaml");
    let text = std::fs::read_to_string(&routes).expect("routes");
    let mut documents: Vec<&str> = text.split("\n---\n").collect();
    documents.retain(|d| !d.contains("name: https-server-route"));
    std::fs::write(&routes, documents.join("\n---\n")).expect("write routes");
    let route_file = dir.path().join("https-route.yaml");
    std::fs::write(&route_file, https_route(0)).expect("write route");

    let stop_b = CancellationToken::new();
    gateway_examples::backends::http_echo(
        SocketAddr::from(([127, 0, 0, 1], b_port)),
        "http-echo-b".into(),
        stop_b.clone(),
    )
    .await
    .expect("backend b");
    let demo = start_demo(dir.path()).await;
    let https = demo.port("https").await.expect("https bound");
    let pem = demo.certificate_pem("https");

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let seen_b = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(hammer(
                https,
                pem.clone(),
                i % 2 == 1,
                stop.clone(),
                ok.clone(),
                seen_b.clone(),
            ))
        })
        .collect();

    let generation_before = demo.applied().borrow().as_ref().map_or(0, |a| a.generation);
    for i in 1..=100 {
        // Written beside and renamed over, as kubectl and ConfigMap mounts do: a reader
        // never sees half a file.
        let temp = dir.path().join(".https-route.yaml.tmp");
        std::fs::write(&temp, https_route(i)).expect("write");
        std::fs::rename(&temp, &route_file).expect("rename");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.expect("client task"));
    }
    let applied = demo.applied().borrow().clone().expect("applied");
    demo.shutdown().await;
    stop_b.cancel();

    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    let ok = ok.load(Ordering::Relaxed);
    eprintln!(
        "hot reload: {ok} requests answered 200 across {} reloads",
        applied.generation - generation_before
    );
    assert!(ok >= 100, "only {ok} requests answered");
    assert!(
        applied.generation >= generation_before + 10,
        "only {} reloads applied",
        applied.generation - generation_before
    );
    assert!(
        applied.status.all_healthy(),
        "{}",
        applied.status.to_table()
    );
    assert!(
        seen_b.load(Ordering::Relaxed),
        "no request reached http-echo-b: reloads not served"
    );
}

/// `GET path` on the admin endpoint: status and body.
async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = timeout(STEP, tokio::net::TcpStream::connect(admin))
        .await
        .expect("connect in time")
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    timeout(STEP, stream.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_seed_demo_serves_the_admin_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_seed_with_free_backend_ports(dir.path());
    let demo = start_demo_with(dir.path(), Some(SocketAddr::from(([127, 0, 0, 1], 0)))).await;
    let admin = demo.admin_address().expect("admin endpoint bound");
    let http = demo.port("http").await.expect("http listener");
    assert_eq!(
        admin_get(admin, "/ready").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(admin_get(admin, "/healthz").await.0, 200);

    for _ in 0..2 {
        let response = curl(vec![
            "-i".into(),
            "-H".into(),
            "Host: app.me".into(),
            format!("http://127.0.0.1:{http}/http-echo"),
        ])
        .await;
        assert!(response.starts_with("HTTP/1.1 301"), "{response}");
    }
    let (status, metrics) = admin_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let series = "gateway_http_requests_total{gateway=\"platform/main-gateway\",listener=\"http\",\
                  kind=\"HTTPRoute\",route=\"demo/http-to-https-redirect\",rule=\"0\",class=\"3xx\"} 2";
    assert!(
        metrics.lines().any(|l| l == series),
        "{series} not in:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "gateway_routes{kind=\"HTTPRoute\",state=\"accepted\"} 2"),
        "{metrics}"
    );

    let (status, config) = admin_get(admin, "/config").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&config).expect("JSON");
    let listeners: Vec<&str> = json["binds"]
        .as_array()
        .expect("binds")
        .iter()
        .flat_map(|b| b["listeners"].as_array().into_iter().flatten())
        .filter_map(|l| l["id"].as_str())
        .collect();
    for name in ["http", "https", "tcp", "udp", "grpc"] {
        assert!(
            listeners.iter().any(|l| l.ends_with(&format!("#{name}"))),
            "{name} not in {listeners:?}"
        );
    }
    let (status, table) = admin_get(admin, "/status").await;
    assert_eq!(status, 200);
    assert!(table.starts_with("KIND"), "{table}");
    assert!(table.contains("http-to-https-redirect"), "{table}");
    demo.shutdown().await;
}

/// The rows `Status::to_table` prints for the listener `name` of a Gateway: its own row (the
/// first condition) and the rows under it that name no object (its other conditions). Lines
/// before the table's header are skipped.
fn listener_rows<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    // `serve` prints its progress lines before the table.
    let mut lines = table.lines().skip_while(|l| !l.starts_with("KIND "));
    let header = lines.next().unwrap_or_default();
    let column = header
        .find("CONDITION")
        .unwrap_or_else(|| panic!("no header:\n{table}"));
    let own = format!("{name} (");
    let mut rows = Vec::new();
    for line in lines {
        let object = line.get(..column).unwrap_or(line);
        if rows.is_empty() {
            if object.trim_start().starts_with("Listener") && object.contains(&own) {
                rows.push(line);
            }
        } else if object.trim().is_empty() && !line.trim().is_empty() {
            rows.push(line);
        } else {
            break;
        }
    }
    assert!(!rows.is_empty(), "no rows for listener {name}:\n{table}");
    rows
}

/// The row of `condition` among `rows`, split into CONDITION, STATUS, REASON (and the start
/// of the message).
fn condition_row<'a>(rows: &[&'a str], condition: &str) -> Vec<&'a str> {
    rows.iter()
        .map(|row| {
            // Object columns first when the row names the listener.
            let words: Vec<&str> = row.split_whitespace().collect();
            match words.iter().position(|w| *w == condition) {
                Some(i) => words[i..].to_vec(),
                None => Vec::new(),
            }
        })
        .find(|words| !words.is_empty())
        .unwrap_or_else(|| panic!("no {condition} row in:\n{}", rows.join("\n")))
}

/// The condition `type_` of listener `listener` of Gateway `default/edge`.
fn listener_condition(
    status: &gateway_core::status::Status,
    listener: &str,
    type_: &str,
) -> (String, String) {
    let gateway = status
        .gateway("default", "edge")
        .unwrap_or_else(|| panic!("no status for default/edge:\n{}", status.to_table()));
    let listener_status = gateway
        .status
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .unwrap_or_else(|| panic!("no listener {listener}:\n{}", status.to_table()));
    let condition = listener_status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("listener {listener} has no {type_}:\n{}", status.to_table()));
    (condition.status.clone(), condition.reason.clone())
}

const GATEWAY_CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: test}
spec: {controllerName: example.com/gateway-test}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_print_status_says_port_unavailable_for_a_taken_port() {
    // Held for the whole test: the gateway cannot bind it.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the taken port");
    let taken = holder.local_addr().expect("addr").port();
    let free = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("gateway.yaml"),
        format!(
            "{GATEWAY_CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: default}}
spec:
  gatewayClassName: test
  addresses: [{{type: IPAddress, value: 127.0.0.1}}]
  listeners:
  - {{name: taken, protocol: HTTP, port: {taken}}}
  - {{name: free, protocol: HTTP, port: {free}}}
"
        ),
    )
    .expect("write manifest");

    let source = gateway_file::FileSource::new(dir.path()).expect("file source");
    let gateway = gateway_net::Gateway::new(gateway_net::GatewayConfig::default());
    let output = Arc::new(std::sync::Mutex::new(String::new()));
    let options = gateway_examples::serve::RunOptions {
        print_status: true,
        output: Some(output.clone()),
        ..Default::default()
    };
    let (sender, mut applied) = tokio::sync::watch::channel(None);
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(gateway_examples::serve::serve(
        source,
        gateway.clone(),
        options,
        |_: &mut _| {},
        sender,
        shutdown.clone(),
    ));
    let first = timeout(STEP, applied.wait_for(Option::is_some))
        .await
        .expect("first apply in time")
        .expect("serve still running")
        .clone()
        .expect("first apply");
    shutdown.cancel();
    serving
        .await
        .expect("serving task")
        .expect("the manifest loads");
    gateway.shutdown().await;
    drop(holder);

    let text = output
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(text.starts_with("configuration loaded\n"), "{text}");
    assert!(
        text.contains(&format!("cannot listen on 127.0.0.1:{taken}")),
        "no `cannot listen` line for port {taken}:\n{text}"
    );
    assert!(
        text.contains(&format!("listening on 127.0.0.1:{free}")),
        "no `listening on` line for port {free}:\n{text}"
    );
    let rows = listener_rows(&text, "taken");
    assert_eq!(
        condition_row(&rows, "Accepted")[..3],
        ["Accepted", "False", "PortUnavailable"],
        "{text}"
    );
    assert_eq!(
        condition_row(&rows, "Programmed")[..2],
        ["Programmed", "False"],
        "{text}"
    );
    let rows = listener_rows(&text, "free");
    for condition in ["Accepted", "Programmed"] {
        assert_eq!(
            condition_row(&rows, condition)[..2],
            [condition, "True"],
            "{text}"
        );
    }

    // The status published on the watch channel says the same.
    let status = &first.status;
    assert_eq!(first.generation, 1);
    assert_eq!(
        listener_condition(status, "taken", "Accepted"),
        ("False".to_owned(), "PortUnavailable".to_owned()),
        "{text}"
    );
    assert_eq!(
        listener_condition(status, "taken", "Programmed").0,
        "False",
        "{text}"
    );
    for condition in ["Accepted", "Programmed"] {
        assert_eq!(
            listener_condition(status, "free", condition).0,
            "True",
            "{text}"
        );
    }
    assert!(
        first
            .report
            .bind_failures
            .iter()
            .any(|f| f.address.port() == taken),
        "{:?}",
        first.report
    );
}

#[test]
fn check_reports_a_certificate_the_tls_stack_refuses() {
    let certificate =
        rcgen::generate_simple_self_signed(vec!["a.example.com".into()]).expect("certificate");
    let other = rcgen::generate_simple_self_signed(vec!["b.example.com".into()])
        .expect("other certificate");
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |key_pem: &str| {
        std::fs::write(
            dir.path().join("gateway.yaml"),
            format!(
                "{GATEWAY_CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: default}}
spec:
  gatewayClassName: test
  listeners:
  - name: https
    protocol: HTTPS
    port: 8443
    hostname: a.example.com
    tls:
      mode: Terminate
      certificateRefs:
      - {{kind: Secret, name: pair}}
---
apiVersion: v1
kind: Secret
metadata: {{name: pair, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}",
                indent(&certificate.cert.pem()),
                indent(key_pem)
            ),
        )
        .expect("write manifest");
    };

    // The control: with its own key the same manifest is healthy.
    write(&certificate.signing_key.serialize_pem());
    let checked = check(dir.path(), None, "default");
    assert_eq!(checked.exit_code(), 0, "{}", checked.to_table(dir.path()));

    // The key of another certificate: it parses, but rustls refuses the pair.
    write(&other.signing_key.serialize_pem());
    let checked = check(dir.path(), None, "default");
    let table = checked.to_table(dir.path());
    assert_eq!(checked.exit_code(), 1, "{table}");
    let Checked::Compiled { status, .. } = &checked else {
        panic!("does not load: {table}");
    };
    assert_eq!(
        listener_condition(status, "https", "ResolvedRefs"),
        ("False".to_owned(), "InvalidCertificateRef".to_owned()),
        "{table}"
    );
    assert_eq!(
        listener_condition(status, "https", "Programmed").0,
        "False",
        "{table}"
    );
    let rows = listener_rows(&table, "https");
    assert_eq!(
        condition_row(&rows, "ResolvedRefs")[..3],
        ["ResolvedRefs", "False", "InvalidCertificateRef"],
        "{table}"
    );
}
