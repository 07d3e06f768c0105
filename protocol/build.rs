//! Compiles `proto/tunnel.proto` with protox (pure Rust, no protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tunnel.proto");
    let fds = protox::compile(["proto/tunnel.proto"], ["proto"])?;
    prost_build::Config::new()
        // Bulk terminal bytes are shared, not copied; other bytes are Vec<u8>.
        .bytes([".aether.tunnel.v1.PtyServer.output", ".aether.tunnel.v1.PtyClient.input"])
        .compile_fds(fds)?;
    Ok(())
}
