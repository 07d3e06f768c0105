//! The OpenAPI document against the contract: every route the contract
//! (docs/contract/API.md, a verbatim copy of the project's design) names
//! under `/api` is in the document the code generates, with its method;
//! every route of the document is in the contract or in `BEYOND_CONTRACT`;
//! the web app's copy of the document is the generated one; and the hub
//! serves it at `/api/openapi.json` to anyone.

mod support;

use aether_hub::api::openapi;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use support::TestHub;

/// A route: an upper-case method and a path template (`/api/me/sessions/{id}`).
type Route = (String, String);

/// Routes the hub serves beyond the contract, each for a reason.
const BEYOND_CONTRACT: &[(&str, &str)] = &[
    // This document.
    ("GET", "/api/openapi.json"),
    // Mails the verification link again (the profile page's "resend").
    ("POST", "/api/me/verify-email"),
    // Starts an email change: a link mailed to the new address confirms it.
    ("POST", "/api/me/email"),
    // One agent, and its SSH settings again (the create answer has them once).
    ("GET", "/api/projects/{id}/agents/{agent_id}"),
    ("GET", "/api/projects/{id}/agents/{agent_id}/ssh"),
    // The usage page's monthly roll-ups of compute and of disk GB-hours.
    ("GET", "/api/billing/usage/monthly"),
    ("GET", "/api/billing/storage/monthly"),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The contract's routes outside `/api/` that the document describes.
const SERVICE: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// A path the document describes: the API's, or a service route.
fn documented(path: &str) -> bool {
    path.starts_with("/api/") || SERVICE.contains(&path)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn without_query(path: &str) -> String {
    path.split(['?', '[']).next().unwrap_or(path).to_owned()
}

/// The `` `code` `` spans of a line of Markdown.
fn code_spans(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// The routes a contract names: the rows of its route tables (`GET (WS)`
/// counts as `GET`; a path cell may name two paths) and any `` `METHOD
/// /path` `` in its text (such as the terminal's WebSocket). Paths under
/// `/api/`, and the service routes (`SERVICE`); not the web app's pages.
fn contract_routes(md: &str) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for line in md.lines() {
        for c in code_spans(line) {
            if let Some((method, path)) = c.split_once(' ')
                && METHODS.contains(&method)
                && documented(path)
            {
                routes.insert((method.to_owned(), without_query(path)));
            }
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !line.starts_with('|') {
            continue;
        }
        let method = cells[1].split_whitespace().next().unwrap_or_default();
        if !METHODS.contains(&method) {
            continue;
        }
        for c in code_spans(cells[2]) {
            if documented(c) {
                routes.insert((method.to_owned(), without_query(c)));
            }
        }
    }
    routes
}

/// The routes of an OpenAPI document.
fn document_routes(doc: &Value) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// What is wrong between a contract and a document: contract routes the
/// document lacks, and document routes neither in the contract nor allowed.
fn mismatches(contract: &BTreeSet<Route>, doc: &BTreeSet<Route>) -> (Vec<Route>, Vec<Route>) {
    let allowed: BTreeSet<Route> = BEYOND_CONTRACT.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let missing = contract.difference(doc).cloned().collect();
    let extra = doc.iter().filter(|r| !contract.contains(*r) && !allowed.contains(*r)).cloned().collect();
    (missing, extra)
}

fn vendored_contract() -> String {
    std::fs::read_to_string(repo().join("docs/contract/API.md")).expect("docs/contract/API.md")
}

fn generated() -> Value {
    serde_json::from_str(openapi::json()).expect("the document is JSON")
}

#[test]
fn every_contract_route_is_documented_and_nothing_else() {
    let contract = contract_routes(&vendored_contract());
    // The parser sees the whole contract: its tables, both paths of a
    // two-path cell, and routes named in its text.
    assert!(contract.len() >= 45, "only {} routes parsed from the contract", contract.len());
    for r in [
        ("GET", "/api/projects/{id}/files/watch"),
        ("DELETE", "/api/me/sessions"),
        ("GET", "/api/projects/{id}/terminal"),
        ("POST", "/api/billing/webhook"),
        ("GET", "/readyz"),
    ] {
        assert!(contract.contains(&(r.0.to_owned(), r.1.to_owned())), "{r:?} not parsed from the contract");
    }
    let doc = document_routes(&generated());
    let (missing, extra) = mismatches(&contract, &doc);
    assert!(missing.is_empty(), "contract routes missing from the OpenAPI document: {missing:?}");
    assert!(extra.is_empty(), "routes neither in the contract nor in BEYOND_CONTRACT: {extra:?}");
    for (m, p) in BEYOND_CONTRACT {
        assert!(doc.contains(&(m.to_string(), p.to_string())), "BEYOND_CONTRACT names {m} {p}, which is gone");
    }
}

#[test]
fn a_route_removed_from_the_code_is_caught() {
    let contract = contract_routes(&vendored_contract());
    let mut doc = generated();
    doc["paths"].as_object_mut().unwrap().remove("/api/projects/{id}/ports/{port}/open");
    doc["paths"]["/api/projects/{id}"].as_object_mut().unwrap().remove("patch");
    let (missing, _) = mismatches(&contract, &document_routes(&doc));
    assert_eq!(
        missing,
        vec![
            ("PATCH".to_owned(), "/api/projects/{id}".to_owned()),
            ("POST".to_owned(), "/api/projects/{id}/ports/{port}/open".to_owned()),
        ]
    );
}

#[test]
fn the_vendored_contract_is_the_design() {
    let here = vendored_contract();
    let mut compared = 0;
    for design in [repo().join("../shared/design/API.md"), PathBuf::from("/work/shared/design/API.md")] {
        if let Ok(original) = std::fs::read_to_string(&design) {
            assert!(here == original, "docs/contract/API.md differs from {}: copy it again", design.display());
            compared += 1;
        }
    }
    // A clean clone (CI) has no design folder beside it: then the copy stands.
    eprintln!("compared with {compared} design copies");
}

/// `AETHER_UPDATE_OPENAPI=1` writes the web app's copy; otherwise it must
/// equal the generated document, so the web app's types can't drift.
#[test]
fn the_web_apps_copy_is_current() {
    let path = repo().join("web/src/api/openapi.json");
    let want = format!("{}\n", openapi::json());
    if std::env::var_os("AETHER_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).expect("writing web/src/api/openapi.json");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "web/src/api/openapi.json is stale: run `AETHER_UPDATE_OPENAPI=1 cargo nextest run -p aether-hub --test openapi` \
         then `cd web && npm run gen:api`"
    );
}

#[test]
fn schemas_name_the_contracts_fields() {
    let doc = generated();
    let schema = |name: &str| -> BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}"))
            .keys()
            .cloned()
            .collect()
    };
    let fields = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert!(schema("Project").is_superset(&fields(&[
        "id",
        "name",
        "description",
        "status",
        "created_at",
        "updated_at",
        "last_accessed_at",
        "base_image",
        "env_vars"
    ])));
    assert!(schema("Usage").is_superset(&fields(&[
        "plan",
        "period_start",
        "period_end",
        "compute_seconds_used",
        "compute_seconds_limit",
        "storage_gb_used",
        "storage_gb_limit",
        "projects_used",
        "projects_limit",
        "by_project"
    ])));
    assert_eq!(
        doc["components"]["schemas"]["ProjectStatus"]["enum"],
        serde_json::json!(["stopped", "starting", "running", "stopping", "error"])
    );
    assert!(doc["components"]["schemas"]["TerminalServerMessage"].is_object());
}

#[tokio::test]
async fn the_hub_serves_the_document_to_anyone() {
    let hub = TestHub::start().await;
    let resp = reqwest::get(format!("{}/api/openapi.json", hub.http)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let served: Value = resp.json().await.unwrap();
    assert_eq!(served, generated());
}
