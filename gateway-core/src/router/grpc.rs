//! GRPCRoute indexes.

use std::cmp::Reverse;

use crate::ir::{GrpcMatch, Listener, StringMatch};

use super::FastMap;
use super::host::HostTable;
use super::http::{Candidate, candidates, header_holds, route_hosts, route_ranks};

/// The GRPCRoutes of one listener that share one hostname (or the catch-all), split by which
/// of service and method are exact, so that exact names are found by hashing.
#[derive(Debug, Default)]
pub(super) struct GrpcBucket {
    /// Exact service, then exact method.
    both: FastMap<Box<str>, FastMap<Box<str>, Vec<Candidate>>>,
    /// Exact service; method absent or a regex.
    service: FastMap<Box<str>, Vec<Candidate>>,
    /// Exact method; service absent or a regex.
    method: FastMap<Box<str>, Vec<Candidate>>,
    /// Neither exact.
    rest: Vec<Candidate>,
}

fn exact(condition: Option<&StringMatch>) -> Option<&str> {
    match condition {
        Some(StringMatch::Exact(value)) => Some(value),
        _ => None,
    }
}

fn grpc_match<'l>(listener: &'l Listener, c: &Candidate) -> Option<&'l GrpcMatch> {
    listener
        .grpc_routes
        .get(c.route)?
        .rules
        .get(c.rule)?
        .matches
        .get(c.matched)
}

pub(super) fn build(listener: &Listener) -> HostTable<GrpcBucket> {
    let routes = &listener.grpc_routes;
    let ranks = route_ranks(routes.iter().map(|r| &r.order));
    let mut table: HostTable<GrpcBucket> = HostTable::new();
    for (r, route) in routes.iter().enumerate() {
        let rules = route.rules.iter().map(|u| u.matches.as_slice());
        for host in route_hosts(&route.hostnames) {
            let bucket = table.get_or_insert_with(host, GrpcBucket::default);
            for (candidate, matched) in candidates(r, &ranks, rules.clone()) {
                let service = exact(matched.service.as_ref());
                let method = exact(matched.method.as_ref());
                let list = match (service, method) {
                    (Some(s), Some(m)) => bucket
                        .both
                        .entry(s.into())
                        .or_default()
                        .entry(m.into())
                        .or_default(),
                    (Some(s), None) => bucket.service.entry(s.into()).or_default(),
                    (None, Some(m)) => bucket.method.entry(m.into()).or_default(),
                    (None, None) => &mut bucket.rest,
                };
                list.push(candidate);
            }
        }
    }
    // Within one list service and method ranks tie, so the rest of the key decides.
    let key = |c: &Candidate| {
        let headers = grpc_match(listener, c).map_or(0, |m| m.headers.len());
        (Reverse(headers), c.rank, c.rule, c.matched)
    };
    for bucket in table.values_mut() {
        let GrpcBucket {
            both,
            service,
            method,
            rest,
        } = bucket;
        let lists = both
            .values_mut()
            .flat_map(|by_method| by_method.values_mut())
            .chain(service.values_mut())
            .chain(method.values_mut())
            .chain(std::iter::once(rest));
        for list in lists {
            list.sort_by_key(key);
        }
    }
    table
}

impl GrpcBucket {
    /// The best match among the four lists: each list's first candidate whose conditions
    /// hold is that list's best, and the lists are compared by the full precedence key.
    pub(super) fn best<H: super::RequestHeaders + ?Sized>(
        &self,
        listener: &Listener,
        service: &str,
        method: &str,
        headers: &H,
    ) -> Option<Candidate> {
        let first = |list: &[Candidate]| {
            list.iter().copied().find_map(|c| {
                let m = grpc_match(listener, &c)?;
                let holds = m.service.as_ref().is_none_or(|s| s.matches(service))
                    && m.method.as_ref().is_none_or(|s| s.matches(method))
                    && m.headers.iter().all(|h| header_holds(headers, h));
                holds.then_some((c, m))
            })
        };
        let found = [
            self.both
                .get(service)
                .and_then(|by_method| by_method.get(method))
                .and_then(|list| first(list)),
            self.service.get(service).and_then(|list| first(list)),
            self.method.get(method).and_then(|list| first(list)),
            first(&self.rest),
        ];
        found
            .into_iter()
            .flatten()
            .max_by_key(|(c, m)| {
                (
                    exact(m.service.as_ref()).map_or(0, str::len),
                    exact(m.method.as_ref()).map_or(0, str::len),
                    m.headers.len(),
                    Reverse(c.rank),
                    Reverse(c.rule),
                    Reverse(c.matched),
                )
            })
            .map(|(c, _)| c)
    }
}
