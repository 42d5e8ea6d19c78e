//! Compiles the admin API's proto (`proto/api.proto`, Dex's gRPC API) with protox, a protobuf
//! compiler in Rust, so building needs no `protoc`; tonic generates the server (and a client,
//! for the tests and tools) and the descriptor set serves gRPC reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let descriptors = protox::compile(["api.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("api_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
