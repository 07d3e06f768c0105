//! The hub's public face: the landing page at `/` and the docs under
//! `/docs`, rendered here as plain HTML with the CSS inline, so that a
//! visitor reads them at once, without the web app's JavaScript (which a
//! signed-out visitor then never downloads). `landing` is the front page,
//! `docs` the guides embedded from `docs/`, `markdown` turns those into
//! HTML; this module holds what they share: the page's frame and the plans
//! as the hub enforces them (`crate::plans`), so the figures a visitor reads
//! are the ones they get.

pub mod docs;
pub mod landing;
mod markdown;

/// What the pages say about the hub serving them.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The SSH jump host as agents reach it.
    pub ssh_host: &'a str,
    pub ssh_port: u16,
    /// The plan new accounts start on (`AETHER_DEFAULT_PLAN`).
    pub default_plan: &'a str,
    /// Whether this hub takes payments (Stripe is configured).
    pub billing: bool,
}

/// The plans, cheapest first.
pub const PLANS: [&str; 3] = ["free", "pro", "team"];

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2000` as `2,000`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// The plans' limits, one card each, from `plans::limits` and
/// `plans::vm_limits`; the plan new accounts start on is marked.
pub fn plan_cards(default_plan: &str) -> String {
    let mut out = String::from(r#"<div class="plans">"#);
    for plan in PLANS {
        let limits = crate::plans::limits(plan);
        let vm = crate::plans::vm_limits(plan);
        let memory = if vm.memory_mb.is_multiple_of(1024) {
            format!("{} GB", vm.memory_mb / 1024)
        } else {
            format!("{} MB", vm.memory_mb)
        };
        let name = format!("{}{}", plan[..1].to_uppercase(), &plan[1..]);
        let start =
            if plan == default_plan { r#"<p class="tag">New accounts here start on this plan</p>"# } else { "" };
        out.push_str(&format!(
            r#"<section class="plan" id="plan-{plan}"><h3>{name}</h3>{start}<ul><li><b>{projects}</b></li><li><b>{hours}</b> a month</li><li><b>{cpus}</b> and <b>{memory}</b> of memory per VM</li><li><b>{storage} GB</b> of project disks</li></ul></section>"#,
            projects = plural(limits.projects, "project", "projects"),
            hours = plural(limits.compute_hours, "compute hour", "compute hours"),
            cpus = plural(i64::from(vm.cpus), "CPU", "CPUs"),
            storage = grouped(limits.storage_gb),
        ));
    }
    out.push_str("</div>");
    out
}

/// Whether this hub takes payments, and the plan new accounts get.
pub fn billing_status(default_plan: &str, billing: bool) -> String {
    if billing {
        return format!(
            r#"<p class="note" id="billing-status">New accounts start on the <b>{}</b> plan; upgrade from the projects page, paid through Stripe.</p>"#,
            escape(default_plan)
        );
    }
    format!(
        r#"<p class="note" id="billing-status">Billing is off on this hub: it takes no payments. New accounts start on the <b>{}</b> plan.</p>"#,
        escape(default_plan)
    )
}

/// The aether mark, as the web app draws it.
const MARK: &str = r##"<svg viewBox="0 0 32 32" width="24" height="24" aria-hidden="true"><rect width="32" height="32" rx="8" fill="#7c6cff"/><path d="M9 22 16 9l7 13" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>"##;

/// The web app's favicon.
const ICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='8' fill='%236d5efc'/%3E%3Cpath d='M9 22 16 9l7 13' stroke='white' stroke-width='3' fill='none' stroke-linecap='round' stroke-linejoin='round'/%3E%3C/svg%3E";

/// The web app's palette and type, for the few elements these pages have.
const CSS: &str = "\
:root{color-scheme:dark;--bg:#0b0d12;--s:#12151c;--r:#181c25;--l:#262b36;--fg:#e7e9ee;--m:#9aa3b2;--f:#697284;--a:#7c6cff;--ah:#8f81ff}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.6 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;-webkit-font-smoothing:antialiased}\
a{color:var(--ah);text-underline-offset:2px}a:hover{color:#fff}\
code,pre{font:13.5px/1.55 ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace}\
:not(pre)>code{background:var(--r);border:1px solid var(--l);border-radius:4px;padding:0 .3em}\
pre{background:var(--s);border:1px solid var(--l);border-radius:8px;padding:14px 16px;overflow:auto;color:#cfd3dc}\
h1,h2,h3{line-height:1.25;letter-spacing:-.01em}\
.w{max-width:1060px;margin:0 auto;padding:0 24px}\
.top{border-bottom:1px solid var(--l)}\
.top .w{display:flex;align-items:center;height:60px}\
.brand{display:flex;align-items:center;gap:9px;color:var(--fg);font-weight:600;font-size:17px;text-decoration:none;margin-right:auto}\
.top nav a{color:var(--m);text-decoration:none;font-size:15px;margin-left:18px}.top nav a:hover{color:var(--fg)}.top nav a.btn{color:#fff}\
.btn{display:inline-block;background:var(--a);color:#fff;border-radius:8px;padding:8px 16px;font-weight:600;text-decoration:none}\
.btn:hover{background:var(--ah);color:#fff}\
.btn.alt{background:none;border:1px solid var(--l);color:var(--fg)}.btn.alt:hover{border-color:var(--m)}\
.hero{padding:72px 0 40px}.hero h1{font-size:44px;margin:0 0 16px;max-width:820px}\
.lead{font-size:19px;color:var(--m);max-width:720px;margin:0 0 28px}\
.cta{display:flex;gap:12px;flex-wrap:wrap}\
.band{padding:40px 0;border-top:1px solid var(--l)}.band h2{font-size:28px;margin:0 0 8px}\
.sub{color:var(--m);margin:0 0 24px;max-width:720px}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:16px}\
.card,.plan{background:var(--s);border:1px solid var(--l);border-radius:12px;padding:20px}\
.card h3,.plan h3{margin:0 0 6px;font-size:17px}.card p{margin:0;color:var(--m);font-size:15px}\
.two{display:grid;grid-template-columns:1fr 1.2fr;gap:28px;align-items:start}.two>*{min-width:0}\
.two ol{margin:0;padding-left:20px;color:var(--m)}.two li{margin-bottom:10px}.two b{color:var(--fg)}\
.plans{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:16px;margin:16px 0}\
.plan ul{list-style:none;margin:12px 0 0;padding:0;color:var(--m)}.plan li{padding:4px 0}.plan b{color:var(--fg)}\
.tag{display:inline-block;margin:0;font-size:12px;color:var(--ah);border:1px solid var(--a);border-radius:99px;padding:1px 9px}\
.note{color:var(--m);font-size:15px}\
footer{border-top:1px solid var(--l);margin-top:48px;padding:24px 0;color:var(--f);font-size:14px}footer a{color:var(--m);margin-right:16px}\
.docs{display:grid;grid-template-columns:220px 1fr;gap:40px;padding-top:32px}\
.docs aside a{display:block;color:var(--m);text-decoration:none;padding:3px 0;font-size:15px}.docs aside a:hover,.docs aside a[aria-current]{color:var(--fg)}\
.docs aside h4{margin:18px 0 4px;font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--f)}\
article{min-width:0;max-width:760px}article h1{font-size:34px;margin:0 0 16px}article h2{margin-top:36px}\
article li{margin:4px 0}article table{border-collapse:collapse;display:block;overflow:auto;font-size:14.5px}\
article th,article td{border:1px solid var(--l);padding:6px 10px;text-align:left;vertical-align:top}article th{background:var(--s)}\
dl.toc dt{margin-top:14px}dl.toc dd{margin:0;color:var(--m)}\
@media(max-width:760px){.hero h1{font-size:32px}.two,.docs{grid-template-columns:1fr}.top nav a:not(.btn):not(.keep){display:none}}";

/// A whole page: `head` goes first in `<head>` (before anything that could
/// paint), `main` is the page's own content.
pub fn page(title: &str, description: &str, head: &str, main: &str) -> String {
    format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8">{head}<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title><meta name="description" content="{description}"><meta name="theme-color" content="#0b0d12"><link rel="icon" href="{ICON}"><style>{CSS}</style></head><body><header class="top"><div class="w"><a class="brand" href="/">{MARK}aether</a><nav><a class="keep" href="/docs">Docs</a><a href="/#plans">Plans</a><a class="keep" href="/signin">Sign in</a><a class="btn" href="/signup">Get started</a></nav></div></header>{main}<footer><div class="w"><a href="/">aether</a><a href="/docs">Docs</a><a href="/docs/api">API</a><a href="/signin">Sign in</a></div></footer></body></html>"##,
        title = escape(title),
        description = escape(description),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(grouped(5), "5");
        assert_eq!(grouped(2_000), "2,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(plural(1, "CPU", "CPUs"), "1 CPU");
        assert_eq!(plural(4, "CPU", "CPUs"), "4 CPUs");
    }

    #[test]
    fn every_plan_has_a_card_and_the_default_is_marked() {
        let html = plan_cards("pro");
        for plan in PLANS {
            assert!(html.contains(&format!(r#"id="plan-{plan}""#)), "{html}");
        }
        assert_eq!(html.matches("start on this plan").count(), 1);
        let pro = &html[html.find("plan-pro").unwrap()..html.find("plan-team").unwrap()];
        assert!(pro.contains("start on this plan"), "{pro}");
    }

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
