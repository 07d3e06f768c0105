//! Markdown to HTML for the docs (CommonMark and tables, by pulldown-cmark),
//! with the two things a page served by the hub needs that a file read on
//! disk doesn't: links between the markdown files are pointed at their pages
//! (the caller says where), and headings get ids, so a section can be linked
//! to (`/docs/ssh#when-it-fails`).

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use std::collections::HashSet;

/// One rendered markdown file.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The text of its first `#` heading.
    pub title: String,
    pub html: String,
}

/// Renders `source`; `link` gives the new target of a link, or `None` to
/// keep it.
pub fn render(source: &str, link: impl Fn(&str) -> Option<String>) -> Rendered {
    let mut events: Vec<Event> = Parser::new_ext(source, Options::ENABLE_TABLES).collect();
    let mut title = String::new();
    let mut ids = HashSet::new();
    for i in 0..events.len() {
        let text = match &events[i] {
            Event::Start(Tag::Heading { .. }) => heading_text(&events[i + 1..]),
            _ => String::new(),
        };
        match &mut events[i] {
            Event::Start(Tag::Heading { level, id, .. }) => {
                if *level == HeadingLevel::H1 && title.is_empty() {
                    title = text.clone();
                }
                if id.is_none() {
                    let base = slug(&text);
                    let mut unique = base.clone();
                    for n in 1.. {
                        if ids.insert(unique.clone()) {
                            break;
                        }
                        unique = format!("{base}-{n}");
                    }
                    *id = Some(CowStr::from(unique));
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                if let Some(to) = link(dest_url) {
                    *dest_url = CowStr::from(to);
                }
            }
            _ => {}
        }
    }
    let mut html = String::with_capacity(source.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    Rendered { title, html }
}

/// The plain text of a heading whose events follow.
fn heading_text(events: &[Event]) -> String {
    events
        .iter()
        .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
        .filter_map(|e| match e {
            Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect()
}

/// A heading's id as GitHub makes it: lower case, spaces to `-`, only
/// letters, digits, `-` and `_` kept.
fn slug(text: &str) -> String {
    text.trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_rewritten_and_headings_get_ids() {
        let md = "# Connecting *Codex*\n\nSee [the SSH guide](ssh.md#when-it-fails) and [a site](https://example.com).\n\n\
                  ## 1. A key for `codex`\n\n## Notes\n\n## Notes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let r = render(md, |to| to.strip_prefix("ssh.md").map(|rest| format!("/docs/ssh{rest}")));
        assert_eq!(r.title, "Connecting Codex");
        assert!(r.html.contains(r#"<a href="/docs/ssh#when-it-fails">the SSH guide</a>"#), "{}", r.html);
        assert!(r.html.contains(r#"<a href="https://example.com">"#), "{}", r.html);
        assert!(r.html.contains(r#"<h2 id="1-a-key-for-codex">"#), "{}", r.html);
        assert!(r.html.contains(r#"<h2 id="notes">"#) && r.html.contains(r#"<h2 id="notes-1">"#), "{}", r.html);
        assert!(r.html.contains("<table>"), "tables are on: {}", r.html);
    }

    #[test]
    fn text_is_escaped() {
        let r = render("# Tom & Jerry\n\n`<script>`\n", |_| None);
        assert_eq!(r.title, "Tom & Jerry", "the title is text, for the caller to escape");
        assert!(r.html.contains("Tom &amp; Jerry</h1>"), "{}", r.html);
        assert!(r.html.contains("<code>&lt;script&gt;</code>"), "{}", r.html);
    }
}
