//! Compile is total: any set of objects (a stream of JSON documents, one per line) compiles
//! without panicking, under a class that accepts them all.
#![no_main]

use gateway_core::compile::{Options, compile};
use gateway_core::model::{Resource, Snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut snapshot = Snapshot::default();
    for value in serde_json::Deserializer::from_slice(data)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
    {
        if let Ok(Some(resource)) = Resource::from_json(value) {
            snapshot.push(resource);
        }
    }
    let (ir, _status) = compile(&snapshot, &Options::default());
    let _ = ir.summary();
});
