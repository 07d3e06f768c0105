//! The preview policy: every change the hub makes to a request on its way to
//! the user's app and to the app's answer on its way back, and who may pass.
//!
//! Both lanes (the express lane's byte framing and hyper's) ask these
//! functions and only frame bytes themselves, so a rule is written, and
//! fixed, once. Everything here is a function of plain data (a header's
//! name and value, a `HeaderMap`, a visibility and whether a cookie is
//! good): no I/O, no `Hub`. Checking a cookie's signature or an access
//! token needs the hub's keys; callers pass the answer in.

use super::Visibility;
use crate::auth::bearer;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// Name of the private-preview cookie (host-only, HttpOnly).
pub const COOKIE: &str = "aether_preview";

/// What becomes of one header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Keep,
    Drop,
    /// Sent with this value instead.
    Set(Vec<u8>),
}

/// Headers for one hop only, never forwarded (`Upgrade` too, except on an
/// upgrade).
pub const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer"];

fn is(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
}

/// Whether a header is for one hop only; `Upgrade` counts unless the
/// message is an upgrade.
pub fn hop_by_hop(name: &str, upgrading: bool) -> bool {
    HOP_BY_HOP.iter().any(|h| is(name, h)) || (!upgrading && is(name, "upgrade"))
}

/// The forwarding headers the hub sets itself: a client's own are dropped.
const FORWARDING: [&str; 4] = ["host", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-for"];

/// What becomes of one of the client's request header lines on its way to
/// the app. `Host` and the `X-Forwarded-*` lines are dropped: `forwarding`
/// gives the ones the app gets. `aether_token` says whether a bearer token
/// is one of aether's access tokens (the app's own stay).
pub fn request_header(name: &str, value: &[u8], upgrading: bool, aether_token: impl Fn(&str) -> bool) -> Edit {
    if FORWARDING.iter().any(|h| is(name, h)) || (!upgrading && hop_by_hop(name, false)) {
        return Edit::Drop;
    }
    if is(name, "cookie") {
        return cookie_line(value);
    }
    if is(name, "authorization") && std::str::from_utf8(value).ok().and_then(bearer).is_some_and(aether_token) {
        return Edit::Drop;
    }
    Edit::Keep
}

/// A Cookie line without aether's cookie: dropped if that was all of it.
fn cookie_line(value: &[u8]) -> Edit {
    let ours = |c: &[u8]| our_cookie_bytes(c).is_some();
    if !value.split(|&b| b == b';').any(ours) {
        return Edit::Keep;
    }
    let kept: Vec<&[u8]> = value.split(|&b| b == b';').filter(|c| !ours(c)).map(<[u8]>::trim_ascii).collect();
    if kept.iter().all(|c| c.is_empty()) {
        return Edit::Drop;
    }
    Edit::Set(kept.join(&b"; "[..]))
}

/// The headers the app gets in place of the client's `Host` and
/// `X-Forwarded-*`: `Host: localhost:{port}` (the app as it sees itself),
/// the preview's host, the browser's scheme, and the client's address after
/// any a proxy in front added.
pub fn forwarding<'a>(
    port: u16,
    host: Option<&[u8]>,
    proto: &str,
    prior_for: impl Iterator<Item = &'a [u8]>,
    client: Option<&str>,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![("host", format!("localhost:{port}").into_bytes())];
    if let Some(h) = host {
        out.push(("x-forwarded-host", h.to_vec()));
    }
    out.push(("x-forwarded-proto", proto.as_bytes().to_vec()));
    let mut hops: Vec<&[u8]> = prior_for.collect();
    hops.extend(client.map(str::as_bytes));
    if !hops.is_empty() {
        out.push(("x-forwarded-for", hops.join(&b", "[..])));
    }
    out
}

/// The request headers the app gets, from the client's (the hyper lane's
/// form of `request_header` and `forwarding`).
pub fn request_headers(
    client_headers: &HeaderMap,
    port: u16,
    proto: &str,
    client: Option<&str>,
    upgrading: bool,
    aether_token: impl Fn(&str) -> bool,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(client_headers.len() + 4);
    let host = client_headers.get(header::HOST).map(HeaderValue::as_bytes);
    let prior = client_headers.get_all("x-forwarded-for").iter().map(HeaderValue::as_bytes);
    for (name, value) in forwarding(port, host, proto, prior, client) {
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            out.append(HeaderName::from_static(name), v);
        }
    }
    for (name, value) in client_headers {
        match request_header(name.as_str(), value.as_bytes(), upgrading, &aether_token) {
            Edit::Keep => {
                out.append(name.clone(), value.clone());
            }
            Edit::Drop => {}
            Edit::Set(v) => {
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    out.append(name.clone(), v);
                }
            }
        }
    }
    out
}

/// Where a preview's app is as it sees itself (`localhost:{port}`) and as
/// the browser sees it (`{proto}://{host}`).
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub port: u16,
    pub proto: &'a str,
    pub host: &'a [u8],
}

impl Seen<'_> {
    /// A `Location` that points the browser at the app as the app sees
    /// itself (`http(s)://localhost:{port}` or `127.0.0.1:{port}`, then a
    /// path, a query, a fragment or nothing), pointed at the preview instead,
    /// as nginx's `proxy_redirect default` does. `None` for anything else.
    pub fn rebase(&self, location: &[u8]) -> Option<Vec<u8>> {
        let rest = location.strip_prefix(b"http://").or_else(|| location.strip_prefix(b"https://"))?;
        let after = [&b"localhost:"[..], b"127.0.0.1:"].iter().find_map(|own| {
            rest.get(..own.len()).filter(|h| h.eq_ignore_ascii_case(own)).map(|_| &rest[own.len()..])
        })?;
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        let port: u16 = std::str::from_utf8(&after[..digits]).ok()?.parse().ok()?;
        let path = &after[digits..];
        if port != self.port || !(path.is_empty() || matches!(path[0], b'/' | b'?' | b'#')) {
            return None;
        }
        Some([self.proto.as_bytes(), b"://", self.host, path].concat())
    }
}

/// What becomes of one of the app's answer header lines (not a 101's: an
/// upgrade's answer goes to the client as the app sent it). Framing
/// headers (`Content-Length`, `Transfer-Encoding`) are the lanes' own.
pub fn answer_header(name: &str, value: &[u8], seen: &Seen<'_>) -> Edit {
    if hop_by_hop(name, false) {
        return Edit::Drop;
    }
    let changed = if is(name, "location") || is(name, "content-location") {
        seen.rebase(value)
    } else if is(name, "set-cookie") {
        host_only_cookie(value)
    } else {
        None
    };
    changed.map_or(Edit::Keep, Edit::Set)
}

/// `answer_header` over a whole answer's headers (the hyper lane's form).
pub fn answer_headers(headers: &mut HeaderMap, seen: &Seen<'_>) {
    // Most answers need nothing: one scan costs less than a rebuild.
    let edits = |(n, v): (&HeaderName, &HeaderValue)| answer_header(n.as_str(), v.as_bytes(), seen) != Edit::Keep;
    if !headers.iter().any(edits) {
        return;
    }
    let old = std::mem::take(headers);
    let mut name = None;
    for (n, value) in old {
        let n = n.or(name.take()).expect("the first entry has a name");
        match answer_header(n.as_str(), value.as_bytes(), seen) {
            Edit::Keep => {
                headers.append(n.clone(), value);
            }
            Edit::Drop => {}
            Edit::Set(v) => {
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    headers.append(n.clone(), v);
                }
            }
        }
        name = Some(n);
    }
}

/// A `Set-Cookie` value from the app without its `Domain` attribute, so the
/// cookie stays on the preview's own host: an app must not set cookies for
/// the domain every user's previews share (nor for `localhost`, which a
/// browser refuses on a preview host). `None` if it has no `Domain`.
/// Works on bytes, as browsers do: a value that isn't UTF-8 loses its
/// `Domain` too.
pub fn host_only_cookie(value: &[u8]) -> Option<Vec<u8>> {
    let is_domain = |attr: &&[u8]| {
        let name = attr.split(|&b| b == b'=').next().unwrap_or_default();
        attr.contains(&b'=') && name.trim_ascii().eq_ignore_ascii_case(b"domain")
    };
    let parts = || value.split(|&b| b == b';');
    if !parts().skip(1).any(|a| is_domain(&a)) {
        return None;
    }
    let mut kept = Vec::with_capacity(value.len());
    for (i, part) in parts().enumerate() {
        if i == 0 || !is_domain(&part) {
            if i > 0 {
                kept.push(b';');
            }
            kept.extend_from_slice(part);
        }
    }
    Some(kept)
}

/// The value of one `name=value` pair of a Cookie header, if it is ours.
pub fn our_cookie(pair: &str) -> Option<&str> {
    pair.trim().strip_prefix(COOKIE)?.strip_prefix('=')
}

fn our_cookie_bytes(pair: &[u8]) -> Option<&[u8]> {
    pair.trim_ascii().strip_prefix(COOKIE.as_bytes())?.strip_prefix(b"=")
}

/// Whether an `Accept` value takes HTML (a browser): errors are pages then.
pub fn wants_html(accept: &[u8]) -> bool {
    accept.windows(9).any(|w| w == b"text/html")
}

/// Who may reach a running project's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// Private, and no good cookie: a browser is sent to sign in and get
    /// one, anything else gets a 401.
    SignInFirst,
}

/// Public ports are anyone's; private ones need this preview's cookie
/// (only the owner can get one).
pub fn access(visibility: Visibility, cookie_ok: bool) -> Access {
    match visibility {
        Visibility::Public => Access::Allowed,
        Visibility::Private if cookie_ok => Access::Allowed,
        Visibility::Private => Access::SignInFirst,
    }
}

/// Whether a visit to a stopped project's port boots its VM: the owner's
/// does, anyone's does where the owner invited visits to that public port,
/// nobody else's (it would spend the owner's compute hours).
pub fn wakes(visibility: Visibility, invited: bool, from_owner: bool) -> bool {
    from_owner || (visibility == Visibility::Public && invited)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "aether-token";
    fn ours(t: &str) -> bool {
        t == TOKEN
    }

    #[test]
    fn request_headers_the_app_never_sees_or_sees_changed() {
        let set = |s: &str| Edit::Set(s.as_bytes().to_vec());
        for (name, value, upgrading, edit) in [
            ("Host", "3000-p.preview.localhost", false, Edit::Drop),
            ("X-Forwarded-Host", "evil", false, Edit::Drop),
            ("x-forwarded-proto", "http", false, Edit::Drop),
            ("X-Forwarded-For", "1.2.3.4", false, Edit::Drop),
            ("Connection", "keep-alive", false, Edit::Drop),
            ("Keep-Alive", "timeout=5", false, Edit::Drop),
            ("Proxy-Connection", "keep-alive", false, Edit::Drop),
            ("Proxy-Authorization", "Basic x", false, Edit::Drop),
            ("TE", "trailers", false, Edit::Drop),
            ("Trailer", "x-sum", false, Edit::Drop),
            ("Upgrade", "h2c", false, Edit::Drop),
            ("Upgrade", "websocket", true, Edit::Keep),
            ("Connection", "Upgrade", true, Edit::Keep),
            ("Cookie", "theme=dark", false, Edit::Keep),
            ("Cookie", "theme=dark; aether_preview=abc; b=2", false, set("theme=dark; b=2")),
            ("Cookie", " aether_preview=abc ", false, Edit::Drop),
            ("Cookie", "aether_preview=a;aether_preview=b", false, Edit::Drop),
            ("Cookie", "aether_previewx=1", false, Edit::Keep),
            ("Cookie", "caf\u{e9}=1; aether_preview=a", false, set("caf\u{e9}=1")),
            ("Authorization", "Bearer aether-token", false, Edit::Drop),
            ("authorization", "bEaReR\taether-token", false, Edit::Drop),
            ("Authorization", "Bearer the-apps-own", false, Edit::Keep),
            ("Authorization", "Basic YTpi", false, Edit::Keep),
            ("Origin", "https://3000-p.preview.localhost", false, Edit::Keep),
            ("Forwarded", "for=1.2.3.4", false, Edit::Keep),
            ("Accept", "*/*", false, Edit::Keep),
        ] {
            assert_eq!(request_header(name, value.as_bytes(), upgrading, ours), edit, "{name}: {value}");
        }
    }

    #[test]
    fn the_app_is_told_where_the_request_came_from() {
        let text = |v: Vec<(&str, Vec<u8>)>| -> Vec<(String, String)> {
            v.into_iter().map(|(n, v)| (n.to_owned(), String::from_utf8(v).unwrap())).collect()
        };
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
        };
        for (host, prior, client, want) in [
            (
                Some("3000-p.preview.localhost"),
                vec![],
                Some("10.0.0.7"),
                pairs(&[
                    ("host", "localhost:3000"),
                    ("x-forwarded-host", "3000-p.preview.localhost"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-for", "10.0.0.7"),
                ]),
            ),
            (
                None,
                vec!["1.2.3.4", "5.6.7.8"],
                Some("10.0.0.7"),
                pairs(&[
                    ("host", "localhost:3000"),
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-for", "1.2.3.4, 5.6.7.8, 10.0.0.7"),
                ]),
            ),
            (
                None,
                vec!["1.2.3.4"],
                None,
                pairs(&[("host", "localhost:3000"), ("x-forwarded-proto", "https"), ("x-forwarded-for", "1.2.3.4")]),
            ),
            (None, vec![], None, pairs(&[("host", "localhost:3000"), ("x-forwarded-proto", "https")])),
        ] {
            let got = forwarding(3000, host.map(str::as_bytes), "https", prior.iter().map(|p| p.as_bytes()), client);
            assert_eq!(text(got), want, "{host:?} {prior:?} {client:?}");
        }
    }

    #[test]
    fn a_header_map_gets_the_same_rules() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("host", "3000-p.preview.localhost"),
            ("x-forwarded-for", "1.2.3.4"),
            ("cookie", "a=1; aether_preview=x"),
            ("cookie", "aether_preview=y"),
            ("authorization", "Bearer aether-token"),
            ("authorization", "Bearer app"),
            ("connection", "keep-alive"),
            ("accept", "*/*"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let out = request_headers(&h, 3000, "http", Some("10.0.0.7"), false, ours);
        let got: Vec<(String, String)> =
            out.iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
        let want: Vec<(String, String)> = [
            ("host", "localhost:3000"),
            ("x-forwarded-host", "3000-p.preview.localhost"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-for", "1.2.3.4, 10.0.0.7"),
            ("cookie", "a=1"),
            ("authorization", "Bearer app"),
            ("accept", "*/*"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn answer_headers_lose_their_hops_and_point_back_at_the_preview() {
        let seen = Seen { port: 3000, proto: "https", host: b"3000-abc.preview.example.com" };
        let set = |s: &str| Edit::Set(s.as_bytes().to_vec());
        for (name, value, edit) in [
            ("Connection", "keep-alive", Edit::Drop),
            ("Keep-Alive", "timeout=5", Edit::Drop),
            ("Upgrade", "h2c", Edit::Drop),
            ("Trailer", "x-sum", Edit::Drop),
            ("Proxy-Authenticate", "Basic", Edit::Drop),
            ("Location", "http://localhost:3000/in?x=1", set("https://3000-abc.preview.example.com/in?x=1")),
            ("content-location", "http://127.0.0.1:3000", set("https://3000-abc.preview.example.com")),
            ("Location", "http://localhost:4000/", Edit::Keep),
            ("Location", "/relative", Edit::Keep),
            ("Set-Cookie", "a=1; Domain=preview.example.com; Path=/", set("a=1; Path=/")),
            ("Set-Cookie", "a=1; Path=/", Edit::Keep),
            ("Content-Type", "text/html", Edit::Keep),
        ] {
            assert_eq!(answer_header(name, value.as_bytes(), &seen), edit, "{name}: {value}");
        }

        let mut h = HeaderMap::new();
        for (n, v) in [
            ("set-cookie", "a=1; Domain=x"),
            ("set-cookie", "b=2"),
            ("connection", "close"),
            ("location", "http://localhost:3000/x"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        answer_headers(&mut h, &seen);
        let cookies: Vec<&str> = h.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(!h.contains_key("connection"));
        assert_eq!(h["location"], "https://3000-abc.preview.example.com/x");
        let untouched: HeaderMap =
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))].into_iter().collect();
        let mut h = untouched.clone();
        answer_headers(&mut h, &seen);
        assert_eq!(h, untouched);
    }

    #[test]
    fn locations_are_rebased_only_when_they_name_the_app_itself() {
        let seen = Seen { port: 3000, proto: "https", host: b"3000-abc.preview.example.com" };
        for (location, rebased) in [
            ("http://localhost:3000", Some("https://3000-abc.preview.example.com")),
            ("http://localhost:3000/login?next=/a#b", Some("https://3000-abc.preview.example.com/login?next=/a#b")),
            ("https://LOCALHOST:3000/x", Some("https://3000-abc.preview.example.com/x")),
            ("http://127.0.0.1:3000?q", Some("https://3000-abc.preview.example.com?q")),
            ("http://localhost:30001/x", None),
            ("http://localhost:3001/x", None),
            ("http://localhost/x", None),
            ("http://localhost:3000.evil.com/", None),
            ("http://example.com:3000/", None),
            ("/relative", None),
        ] {
            let rebased = rebased.map(str::as_bytes);
            assert_eq!(seen.rebase(location.as_bytes()).as_deref(), rebased, "{location}");
        }
    }

    #[test]
    fn cookies_the_app_sets_stay_on_its_host() {
        for (set, host_only) in [
            (&b"a=1; Domain=preview.example.com; Path=/"[..], Some(&b"a=1; Path=/"[..])),
            (b"a=1;path=/; DOMAIN =localhost;Secure", Some(b"a=1;path=/;Secure")),
            (b"a=\xff; Domain=example.com", Some(b"a=\xff")),
            (b"a=1; Path=/; HttpOnly", None),
            (b"domain=x; Path=/", None),
        ] {
            assert_eq!(host_only_cookie(set).as_deref(), host_only, "{}", String::from_utf8_lossy(set));
        }
    }

    #[test]
    fn who_may_pass_and_who_wakes_the_vm() {
        use Visibility::{Private, Public};
        for (visibility, cookie_ok, outcome) in [
            (Public, false, Access::Allowed),
            (Public, true, Access::Allowed),
            (Private, true, Access::Allowed),
            (Private, false, Access::SignInFirst),
        ] {
            assert_eq!(access(visibility, cookie_ok), outcome, "{visibility:?} {cookie_ok}");
        }
        for (visibility, invited, owner, wake) in [
            (Public, false, false, false),
            (Public, true, false, true),
            (Private, true, false, false),
            (Private, false, true, true),
            (Public, false, true, true),
        ] {
            assert_eq!(wakes(visibility, invited, owner), wake, "{visibility:?} {invited} {owner}");
        }
        assert!(wants_html(b"text/html,application/xhtml+xml"));
        assert!(!wants_html(b"application/json"));
    }
}
