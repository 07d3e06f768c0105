//! Checks of the code base itself: every Rust module starts with a `//!`
//! paragraph saying why it exists, no placeholder macros are left, no span
//! is entered with a guard, and `protocol` stays free of I/O.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "node_modules" && name != ".git" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn every_module_says_why_it_exists() {
    let mut files = Vec::new();
    for krate in ["protocol/src", "transport/src", "vm-agent/src", "hub/src", "bench/src", "protocol/build.rs"] {
        let p = workspace().join(krate);
        if p.is_file() {
            files.push(p);
        } else {
            rust_files(&p, &mut files);
        }
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> =
        files.iter().filter(|f| !std::fs::read_to_string(f).unwrap().trim_start().starts_with("//!")).collect();
    assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
}

#[test]
fn no_placeholders_left() {
    let mut files = Vec::new();
    rust_files(&workspace(), &mut files);
    let banned = [concat!("todo", "!("), concat!("unimplemented", "!("), concat!("#[", "ignore]")];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for b in banned {
            assert!(!text.contains(b), "{} contains {b}", f.display());
        }
    }
}

#[test]
fn every_crate_is_in_the_code_map() {
    let arch = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    for krate in ["protocol/", "transport/", "vm-agent/", "hub/", "bench/", "web/", "migrations/", "infra/"] {
        assert!(arch.contains(krate), "ARCHITECTURE.md does not mention {krate}");
    }
}

/// A span's `enter()` guard held across an `.await` stays on the thread
/// while the task is suspended, so whatever else runs there (another
/// project's request, on a single-threaded data-plane runtime) logs under
/// it. Futures carry their span with `.instrument(span)` or `#[instrument]`.
/// A tokio runtime is entered as `Handle::enter(&handle)`, which reads as
/// what it is.
#[test]
fn no_span_is_entered_with_a_guard() {
    let mut files = Vec::new();
    for dir in ["hub/src", "vm-agent/src"] {
        rust_files(&workspace().join(dir), &mut files);
    }
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains(concat!(".enter", "()")) || line.contains(concat!(".entered", "()")) {
                found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "use .instrument(span) instead of entering a span:\n{}", found.join("\n"));
}

/// `protocol` is the wire contract: messages, framing and validation, which
/// both ends and the tests use without a socket. Sockets, QUIC and the
/// runtime belong to `transport` (or to the ends themselves).
#[test]
fn protocol_does_no_io() {
    let manifest = std::fs::read_to_string(workspace().join("protocol/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for io in ["tokio.", "tokio =", "quinn", "nix", "libc", "socket2", "rustls", "reqwest", "hyper"] {
        assert!(!deps.contains(io), "protocol depends on {io}: move that code to transport/");
    }
    let mut files = Vec::new();
    rust_files(&workspace().join("protocol/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for io in ["std::net", "std::fs", "std::process", "tokio::", "UdpSocket", "TcpStream"] {
            assert!(!text.contains(io), "{} uses {io}: protocol does no I/O", f.display());
        }
    }
}
