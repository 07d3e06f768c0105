//! The front page at `/`, for visitors who are not signed in: what aether
//! is, how an agent connects, and the plans. The web app keeps its session
//! in the browser (`localStorage`, see `web/src/api/token.ts`), so the hub
//! can't tell a signed-in visitor from a new one; a few bytes of script at
//! the top of `<head>` send a visitor with a live session on to their
//! projects before anything paints.

use super::{Facts, billing_status, escape, page, plan_cards};

/// Where a signed-in visitor goes instead: the web app's projects page.
pub const PROJECTS_PATH: &str = "/projects";

/// The web app's localStorage entry for the session (`KEY` in
/// `web/src/api/token.ts`): `{token, expiresAt, user}`.
pub const SESSION_KEY: &str = "aether.auth";

/// Runs before the page paints: a stored, unexpired session goes to the
/// projects page (the web app signs out expired ones itself).
fn redirect_script() -> String {
    format!(
        r#"<script>try{{var s=JSON.parse(localStorage.getItem("{SESSION_KEY}")||"null");if(s&&s.token&&Date.parse(s.expiresAt)>Date.now())location.replace("{PROJECTS_PATH}")}}catch(e){{}}</script>"#
    )
}

/// The whole page.
pub fn render(facts: Facts) -> String {
    let jump_port = if facts.ssh_port == 22 { String::new() } else { format!("\n  Port {}", facts.ssh_port) };
    let main = format!(
        r##"<main><div class="w">
<section class="hero"><h1>A cloud machine for every project, shared with your coding agents.</h1>
<p class="lead">aether gives each project its own VM. Work on it from the browser, with terminals, a file tree, an editor and live previews, and let any coding agent work on the same machine over SSH while you watch.</p>
<div class="cta"><a class="btn" href="/signup">Get started</a><a class="btn alt" href="/docs">Read the docs</a></div></section>
<section class="band"><h2>Everything a project needs, in one machine</h2><p class="sub">Nothing to install on your laptop. Your files, processes and terminal sessions stay on the project's machine.</p>
<div class="grid">
<div class="card"><h3>A VM per project</h3><p>A Linux machine of its own for each project, with Git, Python and Node ready and a home folder that keeps your files. It sleeps when you stop it; your work is where you left it.</p></div>
<div class="card"><h3>The IDE in your browser</h3><p>Terminals that outlive the tab, a file tree that follows changes made anywhere, and an editor that won't lose your edits to an agent's.</p></div>
<div class="card"><h3>Live previews</h3><p>Start a server and its port gets a web address within a second, private to you or shared with a link. Hot reload works through it.</p></div>
<div class="card"><h3>Any agent, over SSH</h3><p>Claude Code, Codex, aider, Cursor or VS Code over Remote-SSH: each gets its own key to the machine. Every session is recorded, and you can watch one live.</p></div>
</div></section>
<section class="band" id="agents"><h2>How an agent connects</h2><p class="sub">Any tool that speaks SSH. The key stays with the agent; the hub only relays the bytes, end to end with the machine.</p>
<div class="two"><ol>
<li><b>Create a key</b> for the agent in the project's Agents dialog. It comes with a ready SSH config and the host keys, so nothing is trusted on first use.</li>
<li><b>Save them</b> in <code>~/.ssh/aether/</code> and include that folder from <code>~/.ssh/config</code>.</li>
<li><b>Connect</b> the agent, or your editor, to the host. Revoke the key and its access ends at once.</li>
</ol>
<pre><code># ~/.ssh/aether/aether-claude-1a2b3c4d.config
Host aether-claude-1a2b3c4d
  # your project, reached through the jump host
  HostName 1a2b3c4d-5e6f-…
  User dev
  ProxyJump aether-claude-1a2b3c4d-jump
  IdentityFile ~/.ssh/aether/aether-claude-1a2b3c4d
  StrictHostKeyChecking yes
Host aether-claude-1a2b3c4d-jump
  HostName {host}{jump_port}
  User aether

$ ssh -t aether-claude-1a2b3c4d claude</code></pre></div>
<p class="note">Guides: <a href="/docs/ssh">any SSH client or IDE</a>, <a href="/docs/claude-code">Claude Code</a>, <a href="/docs/codex">Codex</a>, <a href="/docs/any-agent">any other agent</a>.</p></section>
<section class="band" id="plans"><h2>Plans</h2><p class="sub">The limits this hub enforces. Compute hours count only while a project's machine runs.</p>
{plans}{billing}<p class="note">What counts and what happens at a limit: <a href="/docs/billing">Plans and billing</a>.</p></section>
</div></main>"##,
        host = escape(facts.ssh_host),
        plans = plan_cards(facts.default_plan),
        billing = billing_status(facts.default_plan, facts.billing),
    );
    page(
        "aether: a cloud machine for every project and its coding agents",
        "A VM per project, a browser IDE with terminals, files and live previews, and any coding agent connected over SSH.",
        &redirect_script(),
        &main,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTS: Facts = Facts { ssh_host: "hub.example.com", ssh_port: 2222, default_plan: "free", billing: false };

    #[test]
    fn the_session_key_is_the_web_apps() {
        let token_ts = include_str!("../../../web/src/api/token.ts");
        assert!(token_ts.contains(&format!("const KEY = \"{SESSION_KEY}\";")), "web/src/api/token.ts renamed its key");
        let router = include_str!("../../../web/src/app/router.ts");
        assert!(
            router.contains(&format!("export const PROJECTS = \"{PROJECTS_PATH}\";")),
            "the web app's projects page moved from {PROJECTS_PATH}"
        );
    }

    #[test]
    fn the_redirect_runs_before_anything_paints() {
        let html = render(FACTS);
        let script = html.find("<script>").unwrap();
        assert!(script < html.find("<style>").unwrap() && script < html.find("<body>").unwrap());
        assert_eq!(html.matches("<script").count(), 1, "no other script, and none from the app's bundle");
    }

    #[test]
    fn the_snippet_names_this_hubs_jump_host() {
        let html = render(FACTS);
        assert!(html.contains("HostName hub.example.com\n  Port 2222\n  User aether"), "{html}");
        let html = render(Facts { ssh_host: "<x>", ssh_port: 22, ..FACTS });
        assert!(html.contains("HostName &lt;x&gt;\n  User aether"), "{html}");
    }
}
