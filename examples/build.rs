//! Generates the seed demo's gRPC code from `proto/helloworld.proto` without a `protoc` binary:
//! protox parses the file in pure Rust, tonic-prost-build generates the messages, the server
//! and the client from that descriptor set, and the same descriptor set, encoded, is served by
//! the demo's reflection service.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/helloworld.proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(["helloworld.proto"], ["proto"])?;
    std::fs::write(
        out_dir.join("helloworld_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        // No tonic `transport` feature: the demo serves and connects through hyper itself.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
