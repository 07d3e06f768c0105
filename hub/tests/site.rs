//! The public pages as a visitor meets them, from a real hub: the landing
//! page at `/` with the limits the hub enforces (read from `plans`, so a
//! change there that the page doesn't follow fails here), the docs at
//! `/docs` with every guide in `docs/guides/`, a 404 page for a name that is
//! none of them, and the web app still answering its own deep links.

mod support;

use aether_hub::plans;
use std::path::Path;
use support::{TempDir, TestHub};

const SPA: &str = "<!doctype html><title>aether</title><div id=\"root\"></div><script type=\"module\" src=\"/assets/app.js\"></script>";

/// Status, content type and body of `GET path`.
async fn get(hub: &TestHub, path: &str) -> (u16, String, String) {
    let resp = reqwest::get(format!("{}{path}", hub.http)).await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ctype, resp.text().await.unwrap())
}

/// What a reader sees of `html`: tags dropped (as spaces, so that list
/// items don't run together), entities read, spaces folded.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn grouped(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn count(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// What a plan's card must say, from the hub's own limits.
fn plan_lines(plan: &str) -> Vec<String> {
    let limits = plans::limits(plan);
    let vm = plans::vm_limits(plan);
    let memory = if vm.memory_mb.is_multiple_of(1024) {
        format!("{} GB", vm.memory_mb / 1024)
    } else {
        format!("{} MB", vm.memory_mb)
    };
    vec![
        count(limits.projects, "project", "projects"),
        format!("{} a month", count(limits.compute_hours, "compute hour", "compute hours")),
        format!("{} and {memory} of memory per VM", count(i64::from(vm.cpus), "CPU", "CPUs")),
        format!("{} GB of project disks", grouped(limits.storage_gb)),
    ]
}

/// The text of plan `plan`'s card in `html`, with a space at each end.
fn plan_card(html: &str, plan: &str) -> String {
    let id = html.find(&format!("id=\"plan-{plan}\"")).unwrap_or_else(|| panic!("no card for {plan}"));
    let start = html[..id].rfind('<').unwrap();
    let end = id + html[id..].find("</section>").unwrap();
    format!(" {} ", text(&html[start..end]))
}

#[tokio::test]
async fn the_landing_page_shows_the_plans_the_hub_enforces() {
    let web = TempDir::new("aether-web");
    std::fs::write(web.0.join("index.html"), SPA).unwrap();
    let hub = TestHub::start_with(&[("AETHER_WEB_DIR", web.0.to_str().unwrap()), ("AETHER_DEFAULT_PLAN", "pro")]).await;

    let (status, ctype, html) = get(&hub, "/").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(!html.contains("id=\"root\""), "/ is the landing page, not the web app");
    let page = text(&html);
    for what in ["A VM per project", "The IDE in your browser", "Live previews", "Any agent, over SSH", "ProxyJump"] {
        assert!(page.contains(what), "the landing page lacks {what:?}: {page}");
    }
    for plan in ["free", "pro", "team"] {
        let card = plan_card(&html, plan);
        for line in plan_lines(plan) {
            assert!(card.contains(&format!(" {line} ")), "the {plan} card lacks {line:?}: {card}");
        }
    }
    assert!(plan_card(&html, "pro").contains("New accounts here start on this plan"));
    assert!(!plan_card(&html, "free").contains("start on this plan"));
    assert!(page.contains("New accounts start on the pro plan"), "{page}");

    // The way on: sign up, sign in, the docs; and a signed-in visitor goes
    // straight to the projects (the app's session is in localStorage).
    for link in ["href=\"/signup\"", "href=\"/signin\"", "href=\"/docs\"", "href=\"/docs/ssh\""] {
        assert!(html.contains(link), "no {link}");
    }
    assert!(html.contains("localStorage.getItem(\"aether.auth\")") && html.contains("location.replace(\"/projects\")"));
    // Static and small: one inline script, no stylesheet or script to fetch.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains("<link rel=\"stylesheet\"") && !html.contains("src=\"/"), "the page loads nothing else");
    assert!(html.len() < 12 * 1024, "the landing page is {} bytes", html.len());

    // Every other path is still the web app's, deep links included.
    let project = uuid::Uuid::new_v4();
    for path in ["/projects".to_owned(), format!("/p/{project}"), "/signup".into(), "/signin?next=%2Fprojects".into()] {
        let (status, _, body) = get(&hub, &path).await;
        assert_eq!((status, body.as_str()), (200, SPA), "{path}");
    }
}

#[tokio::test]
async fn the_docs_list_every_guide_and_render_each_page() {
    let hub = TestHub::start().await;
    let (status, ctype, index) = get(&hub, "/docs").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut pages: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(docs.join("guides"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().to_owned(), p))
        .collect();
    let guides = pages.len();
    assert!(guides >= 4, "ssh, claude-code, codex, any-agent: {pages:?}");
    for name in ["quick-start", "previews", "billing", "api"] {
        pages.push((name.to_owned(), docs.join(format!("{name}.md"))));
    }

    for (slug, file) in &pages {
        let markdown = std::fs::read_to_string(file).unwrap();
        let title =
            markdown.lines().find_map(|l| l.strip_prefix("# ")).unwrap_or_else(|| panic!("{slug} has no title"));
        assert!(index.contains(&format!("href=\"/docs/{slug}\"")), "/docs does not list {slug}");
        assert!(text(&index).contains(title), "/docs does not name {title:?}");

        let (status, ctype, html) = get(&hub, &format!("/docs/{slug}")).await;
        assert_eq!(status, 200, "/docs/{slug}");
        assert!(ctype.starts_with("text/html"), "{ctype}");
        let h1 = &html[html.find("<h1").unwrap()..];
        assert_eq!(text(&h1[..h1.find("</h1>").unwrap()]), title, "/docs/{slug}");
        assert!(!html.contains(".md\""), "/docs/{slug} links to a markdown file");
        assert!(html.contains("<pre>") || !markdown.contains("```"), "/docs/{slug} lost its code blocks");
    }

    // The billing page's figures are the hub's own.
    let (_, _, billing) = get(&hub, "/docs/billing").await;
    for plan in ["free", "pro", "team"] {
        let card = plan_card(&billing, plan);
        for line in plan_lines(plan) {
            assert!(card.contains(&format!(" {line} ")), "the billing page's {plan} card lacks {line:?}: {card}");
        }
    }
    assert!(text(&billing).contains("Billing is off on this hub"));

    for bad in ["/docs/nope", "/docs/..%2F..%2FCargo.toml", "/docs/SSH", "/docs/ssh.md"] {
        let (status, ctype, html) = get(&hub, bad).await;
        assert_eq!(status, 404, "{bad}");
        assert!(ctype.starts_with("text/html"), "{bad}: {ctype}");
        assert!(text(&html).contains("No such page") && html.contains("href=\"/docs\""), "{bad}: {html}");
    }
}
