//! The docs at `/docs`: the markdown files of the repository's `docs/`,
//! embedded in the binary (`include_str!`) so that a hub needs no files
//! beside it, rendered once, and served in the landing page's frame with
//! the list of pages beside each. Figures that depend on the hub (the
//! plans' limits, whether it takes payments) are not written in the
//! markdown: a comment there marks where the hub puts them.

use super::markdown::{self, Rendered};
use super::{Facts, billing_status, escape, page, plan_cards};
use std::sync::LazyLock;

/// One page of the docs.
#[derive(Debug)]
pub struct Doc {
    /// Its path under `/docs/`, and its markdown file's name.
    pub slug: &'static str,
    /// The heading it is listed under.
    pub section: &'static str,
    /// One line for the index.
    pub summary: &'static str,
    source: &'static str,
}

/// Every page, in the order the index lists them.
pub const DOCS: &[Doc] = &[
    Doc {
        slug: "quick-start",
        section: "Start",
        summary: "From sign-up to a running machine, a preview and a connected agent.",
        source: include_str!("../../../docs/quick-start.md"),
    },
    Doc {
        slug: "ssh",
        section: "Connect an agent",
        summary: "Any SSH client or IDE: keys, config, scp, forwarding, revoking.",
        source: include_str!("../../../docs/guides/ssh.md"),
    },
    Doc {
        slug: "claude-code",
        section: "Connect an agent",
        summary: "Install Claude Code in the VM and run it over SSH, watched from the browser.",
        source: include_str!("../../../docs/guides/claude-code.md"),
    },
    Doc {
        slug: "codex",
        section: "Connect an agent",
        summary: "OpenAI's Codex CLI in the VM, interactive or one-shot.",
        source: include_str!("../../../docs/guides/codex.md"),
    },
    Doc {
        slug: "any-agent",
        section: "Connect an agent",
        summary: "Any tool that speaks SSH: aider, Cursor and VS Code over Remote-SSH, git.",
        source: include_str!("../../../docs/guides/any-agent.md"),
    },
    Doc {
        slug: "previews",
        section: "Use",
        summary: "Web addresses for the ports your app serves: private, public, what the app sees.",
        source: include_str!("../../../docs/previews.md"),
    },
    Doc {
        slug: "billing",
        section: "Use",
        summary: "What each plan gives, what counts, and what happens at a limit.",
        source: include_str!("../../../docs/billing.md"),
    },
    Doc {
        slug: "api",
        section: "Use",
        summary: "The HTTP API the web app uses, for your own scripts.",
        source: include_str!("../../../docs/api.md"),
    },
];

/// Every page rendered, in `DOCS`'s order: the markdown never changes
/// while the hub runs.
static RENDERED: LazyLock<Vec<Rendered>> =
    LazyLock::new(|| DOCS.iter().map(|d| markdown::render(d.source, page_link)).collect());

/// A link between the markdown files (`ssh.md`, `guides/codex.md#run-it`)
/// as a link between their pages; `None` for anything else.
fn page_link(to: &str) -> Option<String> {
    if to.contains(':') || to.starts_with('/') || to.starts_with('#') {
        return None;
    }
    let (path, fragment) = to.split_once('#').map_or((to, None), |(p, f)| (p, Some(f)));
    let name = path.rsplit('/').next()?.strip_suffix(".md")?;
    let doc = DOCS.iter().find(|d| d.slug == name)?;
    Some(match fragment {
        Some(f) => format!("/docs/{}#{f}", doc.slug),
        None => format!("/docs/{}", doc.slug),
    })
}

/// The list of pages beside each page, `current` marked.
fn sidebar(current: Option<&str>) -> String {
    let mut out = String::from(r#"<aside><nav aria-label="Docs"><a href="/docs""#);
    if current.is_none() {
        out.push_str(r#" aria-current="page""#);
    }
    out.push_str(">Overview</a>");
    let mut section = "";
    for (doc, rendered) in DOCS.iter().zip(RENDERED.iter()) {
        if doc.section != section {
            section = doc.section;
            out.push_str(&format!("<h4>{}</h4>", escape(section)));
        }
        let here = if current == Some(doc.slug) { r#" aria-current="page""# } else { "" };
        out.push_str(&format!(r#"<a href="/docs/{}"{here}>{}</a>"#, doc.slug, escape(&rendered.title)));
    }
    out.push_str("</nav></aside>");
    out
}

fn frame(title: &str, description: &str, current: Option<&str>, article: &str) -> String {
    let main = format!(r#"<main class="w docs">{}<article>{article}</article></main>"#, sidebar(current));
    page(title, description, "", &main)
}

/// `/docs`: every page, by section, with what it is for.
pub fn index() -> String {
    let mut article = String::from(
        "<h1>aether docs</h1><p>How to use aether: a cloud machine per project, the IDE in your browser, previews of \
         your app, and coding agents connected over SSH.</p>",
    );
    let mut section = "";
    for (doc, rendered) in DOCS.iter().zip(RENDERED.iter()) {
        if doc.section != section {
            if !section.is_empty() {
                article.push_str("</dl>");
            }
            section = doc.section;
            article.push_str(&format!(r#"<h2>{}</h2><dl class="toc">"#, escape(section)));
        }
        article.push_str(&format!(
            r#"<dt><a href="/docs/{}">{}</a></dt><dd>{}</dd>"#,
            doc.slug,
            escape(&rendered.title),
            escape(doc.summary)
        ));
    }
    article.push_str("</dl>");
    frame(
        "aether docs",
        "Guides to aether: quick start, connecting coding agents, previews, plans and the API.",
        None,
        &article,
    )
}

/// `/docs/{slug}`, or `None` when there is no such page.
pub fn page_html(slug: &str, facts: Facts) -> Option<String> {
    let i = DOCS.iter().position(|d| d.slug == slug)?;
    let (doc, rendered) = (&DOCS[i], &RENDERED[i]);
    let html = fill(&rendered.html, "plans", &plan_cards(facts.default_plan));
    let html = fill(&html, "billing", &billing_status(facts.default_plan, facts.billing));
    Some(frame(&format!("{} · aether docs", rendered.title), doc.summary, Some(doc.slug), &html))
}

/// The page for a name that is none of the docs' (served with 404).
pub fn not_found() -> String {
    frame(
        "Not found · aether docs",
        "There is no such page.",
        None,
        r#"<h1>No such page</h1><p>There is no page of the docs at this address. <a href="/docs">See every page</a>.</p>"#,
    )
}

/// `html` with the comment `<!-- name: … -->` replaced by `with`.
fn fill(html: &str, name: &str, with: &str) -> String {
    let mark = format!("<!-- {name}:");
    let Some(start) = html.find(&mark) else {
        return html.to_owned();
    };
    let end = html[start..].find("-->").map_or(html.len(), |e| start + e + "-->".len());
    format!("{}{with}{}", &html[..start], &html[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTS: Facts = Facts { ssh_host: "127.0.0.1", ssh_port: 2222, default_plan: "free", billing: false };

    #[test]
    fn links_between_the_files_become_links_between_the_pages() {
        assert_eq!(page_link("ssh.md").as_deref(), Some("/docs/ssh"));
        assert_eq!(page_link("guides/codex.md#3-run-it").as_deref(), Some("/docs/codex#3-run-it"));
        assert_eq!(page_link("../billing.md").as_deref(), Some("/docs/billing"));
        assert_eq!(page_link("https://example.com/ssh.md"), None);
        assert_eq!(page_link("README.md"), None);
        assert_eq!(page_link("#local"), None);
    }

    /// A relative link a page would leave as it is points nowhere on the hub.
    #[test]
    fn every_relative_link_lands_on_a_page() {
        for (doc, rendered) in DOCS.iter().zip(RENDERED.iter()) {
            for (i, _) in rendered.html.match_indices("href=\"") {
                let to = &rendered.html[i + 6..];
                let to = &to[..to.find('"').unwrap()];
                let ok = to.starts_with("/docs/") || to.starts_with('#') || to.starts_with("https://");
                assert!(ok, "{}: a link to {to} leads nowhere on the hub", doc.slug);
                if let Some(slug) = to.strip_prefix("/docs/") {
                    let slug = slug.split('#').next().unwrap();
                    assert!(DOCS.iter().any(|d| d.slug == slug), "{}: no page {slug}", doc.slug);
                }
            }
        }
    }

    #[test]
    fn every_page_has_a_title_and_a_unique_slug() {
        for (doc, rendered) in DOCS.iter().zip(RENDERED.iter()) {
            assert!(!rendered.title.is_empty(), "{} has no # heading", doc.slug);
            assert_eq!(DOCS.iter().filter(|d| d.slug == doc.slug).count(), 1);
        }
    }

    #[test]
    fn the_billing_page_gets_this_hubs_plans() {
        let html = page_html("billing", FACTS).unwrap();
        assert!(html.contains(r#"id="plan-team""#) && html.contains(r#"id="billing-status""#), "{html}");
        assert!(!html.contains("<!-- plans") && !html.contains("<!-- billing"));
        assert!(page_html("nope", FACTS).is_none());
    }
}
