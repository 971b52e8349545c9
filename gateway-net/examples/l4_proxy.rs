//! Serves the listeners of a manifest file on one current-thread runtime, for the L4
//! benchmark (`bench/l4.sh`): `l4_proxy MANIFEST.yaml`. Stops on SIGINT (Ctrl-C).
//! `GATEWAY_TCP_BUFFER=BYTES` overrides the largest TCP copy buffer, to measure its effect;
//! `GATEWAY_TCP_SPLICE=1` turns splice(2) on (`L4Limits::tcp_splice`, off by default), `0` off.

use std::path::Path;

use gateway_core::compile::{Options, compile};
use gateway_net::{Gateway, GatewayConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: l4_proxy MANIFEST.yaml")?;
    #[allow(clippy::disallowed_methods, reason = "startup, before the runtime")]
    let text = std::fs::read_to_string(&path)?;
    let snapshot = gateway_file::load_str(Path::new(&path), &text, &Default::default())?;
    let (ir, status) = compile(&snapshot, &Options::default());
    if !status.all_healthy() {
        eprintln!("{}", status.to_table());
    }
    // One thread, as the proxies it is compared with run one worker on one pinned core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut config = GatewayConfig::default();
        if let Some(size) = std::env::var("GATEWAY_TCP_BUFFER")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.l4.tcp_buffer_max = size;
        }
        if let Ok(value) = std::env::var("GATEWAY_TCP_SPLICE") {
            config.l4.tcp_splice = value != "0";
        }
        let gateway = Gateway::new(config);
        let report = gateway.apply(&ir).await;
        if !report.is_complete() {
            eprintln!("not everything is served: {report:?}");
        }
        for socket in gateway.bound().await {
            eprintln!("serving {:?} on {}", socket.protocol, socket.local);
        }
        let _ = tokio::signal::ctrl_c().await;
        gateway.shutdown().await;
    });
    Ok(())
}
