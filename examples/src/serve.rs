//! `gateway run`: compile every snapshot a [`ConfigSource`] emits and apply it to a
//! [`Gateway`] until told to stop, printing what is served and what is wrong.

// Progress lines for the person who started the gateway are this module's output; logs go
// through `tracing` to stderr.
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::compile::{Options, compile};
use gateway_core::ir::{BindProtocol, Ir, Transport};
use gateway_core::model::{Condition, Snapshot};
use gateway_core::source::ConfigSource;
use gateway_core::status::Status;
use gateway_file::LoadError;
use gateway_net::admin::AdminState;
use gateway_net::{ApplyReport, BoundSocket, Gateway, Metrics};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How [`serve`] compiles and reports.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Compile options (controller name, port offset, bind address…).
    pub compile: Options,
    /// Print the whole status table after every apply, not only the problems.
    pub print_status: bool,
    /// Print nothing on stdout (tests; logs still go through `tracing`).
    pub quiet: bool,
    /// The admin endpoint's state: every apply publishes its configuration and status there.
    pub admin: Option<Arc<AdminState>>,
    /// Where the progress lines go instead of stdout (tests); `quiet` still silences them.
    pub output: Option<Arc<Mutex<String>>>,
}

/// What the latest apply did, published after each snapshot.
#[derive(Clone, Debug)]
pub struct Applied {
    /// 1 for the first snapshot, then one more per applied snapshot.
    pub generation: u64,
    /// The compiled configuration being served.
    pub ir: Arc<Ir>,
    /// The status of every resource.
    pub status: Arc<Status>,
    /// What the data plane could not serve.
    pub report: ApplyReport,
    /// The sockets served after the apply.
    pub bound: Vec<BoundSocket>,
}

/// Compiles `snapshot` and applies it to `gateway`; the status has what the data plane could
/// not serve merged in ([`ApplyReport::merge_into`]). `None` when the runtime is shutting
/// down and runs no more blocking work.
///
/// Compiling and freeing the snapshot run on blocking threads: at thousands of routes they
/// take tens of milliseconds, which must not hold up a worker that serves traffic.
pub async fn apply_snapshot(
    gateway: &Gateway,
    snapshot: Snapshot,
    options: &Options,
) -> Option<(Ir, Status, ApplyReport)> {
    let options = options.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        let compiled = compile(&snapshot, &options);
        (compiled, snapshot)
    });
    let ((ir, mut status), snapshot) = match compiled.await {
        Ok(compiled) => compiled,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => return None,
    };
    let report = gateway.apply(&ir).await;
    // Freed once the new configuration serves, not before: at 10 000 routes freeing the
    // snapshot takes milliseconds that a new route would otherwise wait for.
    tokio::task::spawn_blocking(move || drop(snapshot));
    report.merge_into(&mut status);
    Some((ir, status, report))
}

/// Serves `source` with `gateway` until `shutdown` is cancelled or the source ends.
///
/// `prepare` may add to each snapshot before it is compiled (the seed demo adds a generated
/// certificate). Every apply is published on `applied`. An error from the source before the
/// first snapshot is returned (nothing is served yet, so the caller should say why and stop);
/// later errors are printed, counted as rejected configurations in the gateway's metrics,
/// and serving goes on with the last good configuration, as the [`ConfigSource`] contract
/// asks. The gateway is not shut down here: the caller drains it.
///
/// After each apply, the route counts of the status go to the gateway's metrics
/// ([`Metrics::record_status`]) and the configuration and status to `options.admin`.
///
/// # Errors
///
/// The source's error when its first snapshot cannot be read.
pub async fn serve<S, F>(
    source: S,
    gateway: Gateway,
    options: RunOptions,
    mut prepare: F,
    applied: watch::Sender<Option<Applied>>,
    shutdown: CancellationToken,
) -> Result<(), S::Error>
where
    S: ConfigSource,
    F: FnMut(&mut Snapshot) + Send,
{
    serve_with(
        source,
        gateway,
        options,
        move |snapshot: &mut Snapshot, _: &mut Options| prepare(snapshot),
        applied,
        shutdown,
    )
    .await
}

/// [`serve`], with `prepare` also given the compile options for each snapshot (a copy of
/// `options.compile`), for what depends on the snapshot: the Kubernetes controller adds each
/// Gateway's load-balancer addresses there.
///
/// # Errors
///
/// The source's error when its first snapshot cannot be read.
pub async fn serve_with<S, F>(
    mut source: S,
    gateway: Gateway,
    options: RunOptions,
    mut prepare: F,
    applied: watch::Sender<Option<Applied>>,
    shutdown: CancellationToken,
) -> Result<(), S::Error>
where
    S: ConfigSource,
    F: FnMut(&mut Snapshot, &mut Options) + Send,
{
    let mut generation = 0u64;
    let mut previous: Vec<BoundSocket> = Vec::new();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = source.next() => next,
        };
        let mut snapshot = match next {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                // The source is done; keep serving what it last said until told to stop.
                shutdown.cancelled().await;
                return Ok(());
            }
            Err(error) if generation == 0 => return Err(error),
            Err(error) => {
                gateway.metrics().record_rejected_config();
                eprintln!("configuration source error (still serving the last good one): {error}");
                continue;
            }
        };
        let mut compile_options = options.compile.clone();
        prepare(&mut snapshot, &mut compile_options);
        let Some((ir, status, report)) = apply_snapshot(&gateway, snapshot, &compile_options).await
        else {
            return Ok(());
        };
        generation += 1;
        gateway.metrics().record_status(&status);
        let (ir, status) = (Arc::new(ir), Arc::new(status));
        if let Some(admin) = &options.admin {
            admin.publish(ir.clone(), status.clone());
        }
        let bound = gateway.bound().await;
        if !options.quiet {
            let text = describe_apply(
                generation,
                &previous,
                &bound,
                &report,
                &status,
                options.print_status,
            );
            match &options.output {
                // A test that panicked while holding the buffer poisons it; the text is
                // still worth having.
                Some(output) => output
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push_str(&text),
                None => print!("{text}"),
            }
        }
        tracing::info!(
            generation,
            complete = report.is_complete(),
            "configuration applied"
        );
        previous.clone_from(&bound);
        let replaced = applied.send_replace(Some(Applied {
            generation,
            ir,
            status,
            report,
            bound,
        }));
        // The previous configuration and status may be the last references to them: free
        // them off the worker too.
        tokio::task::spawn_blocking(move || drop(replaced));
    }
}

/// Counts every failed reload of a [`FileSource`](gateway_file::FileSource) (from its
/// `errors()` channel) as a rejected configuration in `metrics` and, with `print`, prints it,
/// until `shutdown`: the gateway keeps serving the last good configuration, and the person
/// editing the files needs to see why their change is not live.
///
/// Errors before the first apply are not counted or printed: they are the initial load's,
/// which [`serve`] returns to its caller.
pub fn print_reload_errors(
    mut errors: watch::Receiver<Option<Arc<LoadError>>>,
    applied: watch::Receiver<Option<Applied>>,
    metrics: Metrics,
    print: bool,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The source also sends "no error" after good loads; only a recovery is news.
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = errors.changed() => if changed.is_err() { return },
            }
            let current = errors.borrow_and_update().clone();
            if applied.borrow().is_none() {
                continue;
            }
            match current {
                Some(error) => {
                    failing = true;
                    metrics.record_rejected_config();
                    if print {
                        eprintln!(
                            "reload failed; still serving the last good configuration:\n{error}"
                        );
                    }
                }
                None if failing => {
                    failing = false;
                    if print {
                        eprintln!("configuration loads again");
                    }
                }
                None => {}
            }
        }
    })
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
///
/// # Errors
///
/// When the signal handlers cannot be installed.
pub async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

/// Parses a duration such as `30s`, `500ms`, `2m` or a plain number of seconds.
///
/// # Errors
///
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 30s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// The protocol of a bind as people write it.
pub fn protocol_name(protocol: BindProtocol) -> &'static str {
    match protocol {
        BindProtocol::Http => "HTTP",
        BindProtocol::Tls => "TLS",
        BindProtocol::Tcp => "TCP",
        BindProtocol::Udp => "UDP",
    }
}

/// `0.0.0.0:10080 (HTTP: platform/main-gateway http)`.
pub fn describe_socket(socket: &BoundSocket) -> String {
    let listeners: Vec<String> = socket
        .listeners
        .iter()
        .map(|l| {
            if l.parent.namespace.is_empty() {
                format!("{} {}", l.parent.name, l.name)
            } else {
                format!("{}/{} {}", l.parent.namespace, l.parent.name, l.name)
            }
        })
        .collect();
    let transport = match socket.transport {
        Transport::Udp if socket.protocol != BindProtocol::Udp => "/udp",
        _ => "",
    };
    format!(
        "{}{transport} ({}: {})",
        socket.local,
        protocol_name(socket.protocol),
        listeners.join(", ")
    )
}

fn describe_apply(
    generation: u64,
    previous: &[BoundSocket],
    bound: &[BoundSocket],
    report: &ApplyReport,
    status: &Status,
    print_status: bool,
) -> String {
    let mut out = String::new();
    if generation == 1 {
        let _ = writeln!(out, "configuration loaded");
    } else {
        let _ = writeln!(out, "configuration reloaded (generation {generation})");
    }
    let key = |s: &BoundSocket| (s.requested, s.transport);
    let before: BTreeSet<(SocketAddr, Transport)> = previous.iter().map(key).collect();
    let now: BTreeSet<(SocketAddr, Transport)> = bound.iter().map(key).collect();
    for socket in bound {
        if !before.contains(&key(socket)) {
            let _ = writeln!(out, "  listening on {}", describe_socket(socket));
        }
    }
    for socket in previous {
        if !now.contains(&key(socket)) {
            let _ = writeln!(out, "  stopped listening on {}", describe_socket(socket));
        }
    }
    for failure in &report.bind_failures {
        let listeners: Vec<String> = failure.listeners.iter().map(|l| l.to_string()).collect();
        let _ = write!(
            out,
            "  cannot listen on {} ({}): {}",
            failure.address,
            listeners.join(", "),
            failure.message
        );
        if failure.address.port() < 1024 && failure.message.contains("denied") {
            let _ = write!(
                out,
                " (ports below 1024 need privileges: try --port-offset 10000)"
            );
        }
        out.push('\n');
    }
    for issue in &report.listener_issues {
        let _ = writeln!(
            out,
            "  listener {} not served: {}",
            issue.listener, issue.message
        );
    }
    if print_status {
        out.push_str(&status.to_table());
    } else {
        let problems = status_problems(status);
        if !problems.is_empty() {
            let _ = writeln!(
                out,
                "  status problems (--print-status shows every condition):"
            );
            for problem in problems {
                let _ = writeln!(out, "    {problem}");
            }
        }
    }
    out
}

/// One line per condition that needs attention (as [`Status::all_healthy`] judges them), then
/// the compiler's diagnostics.
pub fn status_problems(status: &Status) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: String, conditions: &[Condition]| {
        for c in conditions {
            let bad = match c.type_.as_str() {
                "Accepted" | "Programmed" | "ResolvedRefs" => !c.is_true(),
                "PartiallyInvalid" => c.is_true(),
                _ => false,
            };
            if bad {
                out.push(format!(
                    "{what}: {}={} ({}): {}",
                    c.type_, c.status, c.reason, c.message
                ));
            }
        }
    };
    for class in &status.gateway_classes {
        check(class.key.to_string(), &class.status.conditions);
    }
    for gateway in &status.gateways {
        let name = gateway.key.to_string();
        check(name.clone(), &gateway.status.conditions);
        for listener in &gateway.status.listeners {
            check(
                format!("{name} listener {}", listener.name),
                &listener.conditions,
            );
        }
    }
    for route in &status.routes {
        for parent in &route.status.parents {
            let p = &parent.parent_ref;
            let mut target = format!("{} -> {}", route.key, p.name);
            if let Some(section) = &p.section_name {
                target.push_str(&format!("#{section}"));
            }
            check(target, &parent.conditions);
        }
    }
    out.extend(status.diagnostics.iter().map(|d| d.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn problems_name_the_object_condition_and_reason() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seed-demo");
        let snapshot = gateway_file::load(&dir, &Default::default()).unwrap();
        let (_, status) = compile(&snapshot, &Options::default());
        assert!(status_problems(&status).is_empty());
        // Out of range once shifted: the grpc listener (50051) is reported, the rest is fine.
        let options = Options {
            port_offset: 20_000,
            ..Options::default()
        };
        let (_, status) = compile(&snapshot, &options);
        let problems = status_problems(&status);
        assert!(!problems.is_empty());
        assert!(
            problems
                .iter()
                .all(|p| p.starts_with("Gateway platform/main-gateway listener grpc: ")),
            "{problems:?}"
        );
    }
}
