//! A minimal gateway for `bench/http.sh`: serves the manifests of the file given as the first
//! argument. `GATEWAY_THREADS` sets the runtime's worker threads (default 1);
//! `GATEWAY_RUNTIME=current` uses a current-thread runtime instead of the work-stealing one.
#![allow(clippy::print_stdout)] // a command-line tool

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: bench_gateway <manifests.yaml>")?;
    #[allow(clippy::disallowed_methods, reason = "startup, before the runtime")]
    let yaml = std::fs::read_to_string(&path)?;
    let snapshot = gateway_file::load_str(Path::new(&path), &yaml, &Default::default())?;
    let (ir, status) = gateway_core::compile::compile(&snapshot, &Default::default());
    if !status.all_healthy() {
        return Err(format!("manifests are not healthy:\n{}", status.to_table()).into());
    }
    let threads = std::env::var("GATEWAY_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let mut builder = if std::env::var("GATEWAY_RUNTIME").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async {
        let gateway = gateway_net::Gateway::new(Default::default());
        let report = gateway.apply(&ir).await;
        if !report.is_complete() {
            return Err(format!("{report:?}"));
        }
        println!("serving {path}");
        std::future::pending::<()>().await;
        Ok(())
    })?;
    Ok(())
}
