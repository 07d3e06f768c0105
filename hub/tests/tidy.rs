//! Checks of the code base itself: every Rust module starts with a `//!`
//! paragraph saying why it exists, no placeholder macros are left, no span
//! is entered with a guard, `protocol` stays free of I/O, the hub's layers
//! depend one way, `pb` stays inside the hub's `tunnel`, the API's
//! handlers take narrow state, not the whole `Hub`, and SQL stays in `db`.

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

/// Every Rust file below `dir` of the workspace: its path relative to
/// `dir`, and its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let root = workspace().join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .map(|f| (f.strip_prefix(&root).unwrap().to_path_buf(), std::fs::read_to_string(&f).unwrap()))
        .collect()
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

/// The hub's layers, lowest first: each top-level module of `hub/src` and
/// the layer it belongs to. A module may use its own layer and the ones
/// below it, never one above: the data plane (HTTP listener, data-plane
/// threads, tunnels, previews) knows nothing of the SSH jump host or the
/// control plane, and reports to them through traits they implement
/// (`tunnel::Observer`, `tunnel::Wake`). A new module must be placed here.
const LAYERS: [(&str, &[&str]); 4] = [
    ("core", &["auth", "db", "domain", "error", "events", "metrics", "pg", "rate", "secrets", "tls"]),
    ("data plane", &["dataplane", "http", "preview", "tunnel"]),
    ("ssh", &["ssh"]),
    (
        "control plane",
        &[
            "accounts",
            "api",
            "billing",
            "compute",
            "config",
            "idle",
            "observer",
            "plans",
            "projects",
            "reconcile",
            "site",
            "usage",
            "main",
            "lib",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// The top-level modules a file names: `crate::x`, `crate::{x, y::z}` and
/// the crate root's `Hub` (and `aether_hub::x` from the binary).
fn modules_used(text: &str) -> std::collections::BTreeSet<String> {
    let mut used = std::collections::BTreeSet::new();
    for prefix in ["crate::", "aether_hub::"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // Names at the group's first level.
                let (mut depth, mut start) = (0, 0);
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            used.extend(first_segment(&group[start..j]));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            used.extend(first_segment(&group[start..j]));
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
            } else {
                used.extend(first_segment(rest));
            }
        }
    }
    used
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name != "self").then_some(name)
}

#[test]
fn the_hubs_layers_depend_one_way() {
    let src = workspace().join("hub/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&src).unwrap().components().next().unwrap().as_os_str().to_string_lossy().into_owned())
        .map(|m| m.trim_end_matches(".rs").to_owned())
        .collect();
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs");
        let Some(mine) = layer_of(module) else {
            wrong.push(format!("{}: module `{module}` is in no layer (add it to LAYERS)", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        // Tests inside a file may reach further than its code.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for used in modules_used(code) {
            // Anything else `crate::` names is an item of the crate's root.
            let used = if modules.contains(&used) { used } else { "lib".to_owned() };
            match layer_of(&used) {
                Some(theirs) if theirs > mine => wrong.push(format!(
                    "{}: the {} uses `{used}` of the {}",
                    rel.display(),
                    LAYERS[mine].0,
                    LAYERS[theirs].0
                )),
                Some(_) => {}
                None => wrong.push(format!("{}: uses `{used}`, which is in no layer", rel.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_layer_check_sees_every_form_of_use() {
    let used = modules_used("use crate::{api::AppState, db::{Db, X}, Hub};\nfn f() { crate::projects::start() }");
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["Hub", "api", "db", "projects"]);
}

/// The protocol's generated `pb` types stay inside the hub's `tunnel`
/// module, whose typed clients (`tunnel::fs`, `pty`, `tcp`) the rest uses.
#[test]
fn pb_types_stay_inside_the_tunnel() {
    for (rel, text) in sources("hub/src") {
        if rel.starts_with("tunnel") || rel == Path::new("tunnel.rs") {
            continue;
        }
        assert!(!text.contains("pb::"), "{} uses `pb`: add a typed client to `tunnel`", rel.display());
    }
}

/// Whether a line of `hub/src/api` names the whole hub: `Hub` or its
/// `AppState` alias as a word.
fn names_the_hub(line: &str) -> bool {
    let words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
    words.into_iter().any(|w| w == "Hub" || w == "AppState")
}

#[test]
fn handlers_take_narrow_state() {
    for (rel, text) in sources("hub/src/api") {
        // The router is assembled there, from the whole hub.
        if rel == Path::new("mod.rs") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            // Each area's state is made from the hub in one `FromRef`, and
            // only there.
            let allowed = line.starts_with("use ")
                || line.starts_with("//")
                || line.starts_with("impl FromRef<AppState> for ")
                || line.starts_with("impl FromRef<super::AppState> for ")
                || line.starts_with("fn from_ref(hub: &AppState)")
                || line.starts_with("fn from_ref(hub: &super::AppState)");
            assert!(
                allowed || !names_the_hub(line),
                "api/{}:{} takes the whole hub: give the handler its area's narrow state\n{line}",
                rel.display(),
                n + 1
            );
        }
    }
    assert!(names_the_hub("State(hub): State<AppState>,") && names_the_hub("hub: &crate::Hub"));
    assert!(!names_the_hub("State(s): State<HubState>") && !names_the_hub("github"));
}

#[test]
fn sql_lives_in_db() {
    for (rel, text) in sources("hub/src") {
        if rel.starts_with("db") {
            continue;
        }
        for needle in ["sqlx::query", "query_as(", "query_scalar("] {
            assert!(!text.contains(needle), "{} runs SQL ({needle}): put it in `db`", rel.display());
        }
    }
}
