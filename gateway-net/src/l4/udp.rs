//! UDP listeners: a session per client address, each with its own connected upstream socket.
//!
//! The listener task receives every client datagram, finds or creates the client's session
//! and sends the datagram on the session's upstream socket without waiting (a full send
//! buffer drops it, as the network would). A task per session receives the upstream's
//! replies and sends them to the client from the listener socket, so the client sees
//! answers from the address it wrote to. No user-space queue sits between the two: a
//! session's memory is its small entry plus the kernel buffers of its upstream socket.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use gateway_core::ir::{self, ListenerId};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Pick, RouteStreams, SocketRoute, UdpStats, pick, socket_route};
use crate::listener::BindSignals;
use crate::report::ListenerIssue;
use crate::runtime::BindState;
use crate::shared::Shared;

/// The configuration of one UDP socket.
#[derive(Debug)]
pub(crate) struct UdpBindState {
    /// The listener served (for logs).
    listener: Option<ListenerId>,
    /// Its route's backends, and what ends the route's sessions when it is removed; `None`
    /// drops every datagram.
    route: Option<(Arc<[ir::WeightedBackend]>, RouteStreams)>,
}

impl UdpBindState {
    pub(crate) fn build(
        listeners: &[Arc<ir::Listener>],
        shared: &Arc<Shared>,
    ) -> (UdpBindState, Vec<ListenerIssue>) {
        let SocketRoute {
            listener,
            route,
            issues,
        } = socket_route(listeners, "UDP", &shared.l4);
        (UdpBindState { listener, route }, issues)
    }
}

/// Largest UDP payload there is (IPv6 without jumbograms allows 65 527); reply buffers are
/// this size plus one so that an oversized datagram is seen as such, not truncated.
const REPLY_BUFFER: usize = 65_536;

/// Replies a session task drains before yielding, so one busy upstream cannot starve the
/// other sessions on its worker thread.
const REPLY_BATCH: usize = 64;

thread_local! {
    // One reply buffer per worker thread rather than per session: 10 000 sessions with a
    // 64 KiB buffer each would hold 640 MB.
    static REPLY_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; REPLY_BUFFER]);
}

/// One client's session.
struct Session {
    upstream: Arc<UdpSocket>,
    /// Cancelled when the session's route has been removed for a drain timeout: the session
    /// ends, and the client's next datagram opens one on the current route.
    gone: CancellationToken,
    /// Milliseconds since the listener's epoch of the last datagram either way.
    last: Arc<AtomicU64>,
    /// Ends the session's reply task.
    cancel: CancellationToken,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Serves a UDP socket until the bind is removed.
pub(crate) async fn run_udp(
    socket: UdpSocket,
    state: Arc<ArcSwap<BindState>>,
    signals: BindSignals,
    shared: Arc<Shared>,
) {
    let local = match socket.local_addr() {
        Ok(local) => local,
        Err(error) => {
            tracing::error!(%error, "UDP socket has no local address");
            signals.graceful.cancelled().await;
            return;
        }
    };
    let socket = Arc::new(socket);
    let stats = shared.l4.register_udp(local);
    let limits = &shared.config.l4;
    let epoch = Instant::now();
    let now_ms = move || u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    let idle_ms = u64::try_from(limits.udp_idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let max_sessions = limits.max_udp_sessions.max(1);
    let max_datagram = limits.max_datagram_size;
    // Expired sessions are found by a sweep a few times per idle period rather than by a
    // timer per session.
    let sweep_every =
        (limits.udp_idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut recency = Recency::default();
    let mut buf = vec![0u8; max_datagram.saturating_add(1).min(REPLY_BUFFER)];

    loop {
        let received = tokio::select! {
            biased;
            () = signals.graceful.cancelled() => break,
            _ = sweep.tick() => {
                let now = now_ms();
                let (mut removed, mut expired) = (0usize, 0usize);
                sessions.retain(|_, s| {
                    if s.gone.is_cancelled() {
                        removed += 1;
                        false
                    } else if now.saturating_sub(s.last.load(Ordering::Relaxed)) >= idle_ms {
                        expired += 1;
                        false
                    } else {
                        true
                    }
                });
                recency.forget_gone(&sessions);
                if expired > 0 || removed > 0 {
                    stats.sessions_expired.fetch_add(expired as u64, Ordering::Relaxed);
                    stats.sessions_route_removed.fetch_add(removed as u64, Ordering::Relaxed);
                    stats.sessions_active.store(sessions.len(), Ordering::Relaxed);
                    tracing::debug!(%local, expired, removed, "UDP sessions ended");
                }
                continue;
            }
            received = socket.recv_from(&mut buf) => received,
        };
        let (n, client) = match received {
            Ok(pair) => pair,
            Err(error) => {
                // Nothing a client sends can make an unconnected socket fail for long; log
                // and go on rather than end the listener.
                tracing::debug!(%local, %error, "UDP receive failed");
                continue;
            }
        };
        stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        if n > max_datagram {
            stats.dropped_too_large.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%client, "datagram over max_datagram_size; dropped");
            continue;
        }
        let Some(payload) = buf.get(..n) else {
            continue;
        };
        let now = now_ms();
        if sessions.get(&client).is_some_and(|s| s.gone.is_cancelled()) {
            sessions.remove(&client);
            stats.sessions_route_removed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%client, "UDP session of a removed route ended; opening one on the current route");
        }
        let upstream = match sessions.get(&client) {
            Some(session) => {
                session.last.store(now, Ordering::Relaxed);
                session.upstream.clone()
            }
            None => {
                let Some(session) =
                    open_session(&state, &shared, &socket, client, &stats, now, epoch).await
                else {
                    stats.dropped_rejected.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if sessions.len() >= max_sessions
                    && let Some(evicted) = recency.evict(&mut sessions)
                {
                    stats.sessions_evicted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(client = %evicted, "UDP session table full; evicted the least recently active");
                }
                let upstream = session.upstream.clone();
                recency.push(client, &session, now);
                sessions.insert(client, session);
                stats.sessions_created.fetch_add(1, Ordering::Relaxed);
                stats
                    .sessions_active
                    .store(sessions.len(), Ordering::Relaxed);
                upstream
            }
        };
        match upstream.try_send(payload) {
            Ok(_) => {
                stats.datagrams_upstream.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                stats.dropped_send_failed.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(%client, %error, "upstream send failed; datagram dropped");
            }
        }
    }
    // Dropping the sessions cancels their reply tasks.
    drop(sessions);
    stats.sessions_active.store(0, Ordering::Relaxed);
    shared.l4.unregister_udp(local);
    tracing::debug!(%local, "UDP listener stopped");
}

/// Finds the least recently active session without scanning the table: a client spraying new
/// source addresses at a full table costs O(log n) per eviction, not a pass over 10 000
/// sessions.
///
/// Every session has an entry in a min-heap keyed by the activity time it had when the entry
/// was made. The datagram path only stores a session's time (as before). An eviction takes the
/// smallest entry: a session that was active since gets a new entry with its new time instead
/// of being evicted; the first one found unchanged is quieter than every other session (each
/// is at least as recent as its own entry, which is not smaller), so it is the least recently
/// active. Each renewed entry stands for traffic since the previous one, so renewals cost at
/// most one heap push per datagram.
#[derive(Default)]
struct Recency {
    heap: BinaryHeap<Reverse<Entry>>,
}

/// A session's place in [`Recency`], ordered by time, then client.
struct Entry {
    at: u64,
    client: SocketAddr,
    last: Arc<AtomicU64>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.client) == (other.at, other.client)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.client).cmp(&(other.at, other.client))
    }
}

impl Entry {
    /// Whether the session this entry was made for is still the client's session.
    fn is_live(&self, sessions: &HashMap<SocketAddr, Session>) -> bool {
        sessions
            .get(&self.client)
            .is_some_and(|s| Arc::ptr_eq(&s.last, &self.last))
    }
}

impl Recency {
    fn push(&mut self, client: SocketAddr, session: &Session, now: u64) {
        self.heap.push(Reverse(Entry {
            at: now,
            client,
            last: session.last.clone(),
        }));
    }

    /// Removes the least recently active session and returns its client.
    fn evict(&mut self, sessions: &mut HashMap<SocketAddr, Session>) -> Option<SocketAddr> {
        // Sessions active while the scan runs could keep renewing; past one round over the
        // heap the smallest one goes, active or not.
        let mut budget = self.heap.len().saturating_mul(2);
        while let Some(Reverse(mut entry)) = self.heap.pop() {
            if !entry.is_live(sessions) {
                // Expired, or replaced by a newer session of the same client.
                continue;
            }
            let seen = entry.last.load(Ordering::Relaxed);
            if seen > entry.at && budget > 0 {
                budget -= 1;
                entry.at = seen;
                self.heap.push(Reverse(entry));
                continue;
            }
            sessions.remove(&entry.client);
            return Some(entry.client);
        }
        None
    }

    /// Drops the entries of sessions that are gone once they outnumber the live ones, so the
    /// heap stays within about twice the table.
    fn forget_gone(&mut self, sessions: &HashMap<SocketAddr, Session>) {
        if self.heap.len() > sessions.len().saturating_mul(2).saturating_add(64) {
            self.heap.retain(|Reverse(entry)| entry.is_live(sessions));
        }
    }
}

/// Creates a session for a new client with the current route, or `None` if the route rejects
/// it (invalid backend, no endpoint, no route) or the upstream socket cannot be made.
async fn open_session(
    state: &ArcSwap<BindState>,
    shared: &Arc<Shared>,
    listener: &Arc<UdpSocket>,
    client: SocketAddr,
    stats: &Arc<UdpStats>,
    now: u64,
    epoch: Instant,
) -> Option<Session> {
    let current = state.load();
    let BindState::Udp(udp) = &**current else {
        tracing::error!("a non-UDP configuration on a UDP socket; datagram dropped");
        return None;
    };
    let Some((backends, streams)) = &udp.route else {
        tracing::debug!(%client, listener = ?udp.listener, "no UDPRoute; datagram dropped");
        return None;
    };
    let endpoint = match pick(backends, shared.l4.next_pick()) {
        Pick::Endpoint(endpoint, _) => endpoint,
        Pick::Invalid(reason) => {
            tracing::debug!(%client, reason, "invalid backend chosen; datagram dropped");
            return None;
        }
        Pick::NoEndpoint => {
            tracing::debug!(%client, "no ready endpoint; datagram dropped");
            return None;
        }
    };
    let upstream = match connect_upstream(endpoint).await {
        Ok(upstream) => Arc::new(upstream),
        Err(error) => {
            tracing::debug!(%client, %endpoint, %error, "cannot open an upstream UDP socket");
            return None;
        }
    };
    let last = Arc::new(AtomicU64::new(now));
    // Cancelled when the session is dropped: expired, evicted, or the listener stopped.
    let gone = streams.gone.clone();
    let cancel = spawn_replies(shared, listener, client, &upstream, &last, stats, epoch);
    tracing::debug!(%client, %endpoint, "UDP session opened");
    Some(Session {
        upstream,
        gone,
        last,
        cancel,
    })
}

/// Spawns the reply task of a session and returns the token that ends it.
fn spawn_replies(
    shared: &Arc<Shared>,
    listener: &Arc<UdpSocket>,
    client: SocketAddr,
    upstream: &Arc<UdpSocket>,
    last: &Arc<AtomicU64>,
    stats: &Arc<UdpStats>,
    epoch: Instant,
) -> CancellationToken {
    let cancel = CancellationToken::new();
    shared.tracker.spawn(reply_task(
        upstream.clone(),
        listener.clone(),
        client,
        last.clone(),
        cancel.clone(),
        stats.clone(),
        epoch,
        shared.config.l4.max_datagram_size,
    ));
    cancel
}

/// A socket connected to `endpoint`, so the kernel filters replies from anyone else.
async fn connect_upstream(endpoint: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = if endpoint.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    socket.connect(endpoint).await?;
    // Sends never wait (`try_send`), and tokio only knows a socket is writable once the
    // reactor has seen it so: wait for that once, here, so the first datagram is not dropped.
    tokio::time::timeout(Duration::from_secs(1), socket.writable())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream socket not writable"))??;
    Ok(socket)
}

/// Sends the upstream's replies to the client from the listener socket until cancelled.
#[allow(clippy::too_many_arguments)] // plain task state; a struct would only rename it
async fn reply_task(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    cancel: CancellationToken,
    stats: Arc<UdpStats>,
    epoch: Instant,
    max_datagram: usize,
) {
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            ready = upstream.readable() => {
                if let Err(error) = ready {
                    tracing::debug!(%client, %error, "upstream socket failed; ending session");
                    break;
                }
            }
        }
        REPLY_BUF.with_borrow_mut(|buf| {
            for _ in 0..REPLY_BATCH {
                let n = match upstream.try_recv(buf) {
                    Ok(n) => n,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) => {
                        // ICMP port unreachable and the like: the backend may come back, so
                        // the session stays until it expires.
                        stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::trace!(%client, %error, "upstream error");
                        break;
                    }
                };
                let Some(reply) = buf.get(..n).filter(|_| n <= max_datagram) else {
                    stats.dropped_too_large.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                last.store(now, Ordering::Relaxed);
                match listener.try_send_to(reply, client) {
                    Ok(_) => {
                        stats.datagrams_out.fetch_add(1, Ordering::Relaxed);
                        stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(error) => {
                        stats.dropped_send_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::trace!(%client, %error, "reply send failed; dropped");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a scan of the whole table (the reference), over random traffic, new clients,
    /// evictions and expiries: the queue always evicts the least recently active session.
    #[tokio::test]
    async fn recency_evicts_what_a_full_scan_would() {
        let upstream = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let session = |now: u64| Session {
            upstream: upstream.clone(),
            gone: CancellationToken::new(),
            last: Arc::new(AtomicU64::new(now)),
            cancel: CancellationToken::new(),
        };
        let client = |n: u16| SocketAddr::from(([127, 0, 0, 1], n));
        let mut rng = fastrand::Rng::with_seed(7);
        let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
        let mut recency = Recency::default();
        // Strictly increasing times, so the least recently active session is unique.
        let mut now = 0u64;
        let mut evictions = 0;
        for _ in 0..20_000 {
            now += 1;
            match rng.u8(0..10) {
                // Traffic on a random existing session.
                0..=5 => {
                    let key = client(rng.u16(1..300));
                    if let Some(s) = sessions.get(&key) {
                        s.last.store(now, Ordering::Relaxed);
                    }
                }
                // A new client; the table holds at most 100.
                6..=8 => {
                    let key = client(rng.u16(1..300));
                    if sessions.contains_key(&key) {
                        continue;
                    }
                    if sessions.len() >= 100 {
                        let oldest = sessions
                            .iter()
                            .min_by_key(|(_, s)| s.last.load(Ordering::Relaxed))
                            .map(|(c, _)| *c);
                        assert_eq!(recency.evict(&mut sessions), oldest);
                        evictions += 1;
                    }
                    let new = session(now);
                    recency.push(key, &new, now);
                    sessions.insert(key, new);
                }
                // The expiry sweep: sessions quiet for 500 ticks go.
                _ => {
                    sessions.retain(|_, s| now - s.last.load(Ordering::Relaxed) < 500);
                    recency.forget_gone(&sessions);
                }
            }
            assert!(recency.heap.len() <= sessions.len() * 2 + 64 + 1);
        }
        assert!(evictions > 1000, "only {evictions} evictions exercised");
    }
}
