//! What some Go tests do beyond their manifests and cases (each is named in the test's note in
//! `cases.yaml`): objects they create in code, and checks they make after the cases.

use gateway_core::model::Snapshot;
use serde_json::Value;

use crate::check::{self, Target};
use crate::{Addresses, World};

/// Objects the Go test creates in code before sending requests.
pub(crate) fn create(test: &str, snapshot: &mut Snapshot) {
    if test == "TCPRouteMultipleRoutesAttachment" {
        // A newer route to the same listener, created after the older one was accepted; only
        // the older one may carry traffic. Its name sorts first, so only the creation times
        // make it the newer.
        let Some(older) = snapshot
            .tcp_routes
            .iter_mut()
            .find(|r| r.metadata.name == "tcproute-attach-older")
        else {
            return;
        };
        older.metadata.creation_timestamp = Some("2030-01-01T00:00:00Z".to_owned());
        let mut value = serde_json::to_value(&*older).expect("a TCPRoute serializes");
        value["metadata"]["name"] = Value::from("tcproute-attach-newer");
        value["metadata"]["creationTimestamp"] = Value::from("2030-01-01T00:00:01Z");
        value["spec"]["rules"][0]["backendRefs"][0]["name"] = Value::from("tcp-attach-backend-2");
        snapshot
            .tcp_routes
            .push(serde_json::from_value(value).expect("the newer TCPRoute"));
    }
}

/// Checks the Go test makes after its cases.
pub(crate) async fn after(
    world: &World,
    test: &conformance::TestCase,
    addresses: &Addresses,
) -> Result<(), String> {
    let Some(case) = test.cases.first() else {
        return Ok(());
    };
    let target = || check::target(world, test, case, addresses);
    match test.test.as_str() {
        "TCPRouteMultipleRoutesAttachment" => {
            let target = target()?;
            for i in 0..100 {
                let pod = check::tcp_pod(target).await?;
                if !pod.starts_with("tcp-attach-backend-1-") {
                    return Err(format!(
                        "connection {i} reached {pod}; only the older route may carry traffic"
                    ));
                }
            }
            Ok(())
        }
        "HTTPRouteRequestHeaderModifierBackendWeights" => {
            let target: Target = target()?;
            for i in 0..100 {
                let echo = check::get_echo(target, "/").await?;
                let pod = echo.get("pod").and_then(Value::as_str).unwrap_or("");
                let values: Vec<&str> = echo
                    .get("headers")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("backend"))
                    .flat_map(|(_, v)| v.as_array().into_iter().flatten())
                    .filter_map(Value::as_str)
                    .collect();
                match values.as_slice() {
                    [one] if pod.starts_with(one) => {}
                    other => {
                        return Err(format!(
                            "request {i}: pod {pod} saw Backend headers {other:?}; want exactly \
                             one, a prefix of the pod name"
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
