//! Framing of an app's HTTP/1.1 answers for the express lane: where an
//! answer's head ends, how its body is framed (RFC 9112 §6.3), and its head
//! as the client gets it (through `policy`). Pure: bytes in, decisions out,
//! so the framing can be checked against hyper's on any input
//! (`tests/preview_framing.rs`).
//!
//! Parsed strictly: one agreed `Content-Length`; transfer codings that are
//! tokens, with `chunked` at most once and last (else the body ends with the
//! stream); chunk-size lines with CRLF only and at most 15 hex digits,
//! bounded extension and trailer sizes.

use super::policy;
use bytes::BytesMut;

fn is(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
}

/// Most answer headers (hyper's client allows as many).
pub const MAX_ANSWER_HEADERS: usize = 100;
/// A chunk-size line (with its extensions) longer than this is refused.
const MAX_SIZE_LINE: usize = 4096;
/// A trailer section longer than this is refused.
const MAX_TRAILERS: usize = 16 * 1024;

/// An answer's head, rewritten for the client, and how its body is framed.
#[derive(Debug)]
pub struct Answer {
    /// Length of the app's head in `pending`.
    pub len: usize,
    pub head: BytesMut,
    pub framing: Framing,
    /// The app's connection can carry another request after this answer.
    pub reusable: bool,
}

/// Where an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    /// A 1xx: another head follows.
    Informational,
    /// This many bytes more.
    Length(u64),
    Chunked(Chunked),
    /// At the end of the stream.
    UntilClose,
}

impl Framing {
    /// How much of `data` (what arrives next) belongs to the body, and
    /// whether the body ends there.
    pub fn take(&mut self, data: &[u8]) -> Result<(usize, bool), Invalid> {
        Ok(match self {
            Self::Informational => (0, true),
            Self::Length(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                (n as usize, *left == 0)
            }
            Self::Chunked(c) => c.feed(data)?,
            Self::UntilClose => (data.len(), false),
        })
    }
}

/// Framing that hyper's parser, or a reader downstream, could take another way.
#[derive(Debug, PartialEq)]
pub struct Invalid;

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Spaces and tabs off both ends.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &v[start..end]
}

/// The transfer codings of every `Transfer-Encoding` line, in the order
/// applied (empty list elements skipped).
fn codings<'a>(headers: &'a [httparse::Header<'a>]) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(|h| is(h.name, "transfer-encoding"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|c| !c.is_empty())
}

/// Parses the answer head at the start of `data`, if it is complete;
/// `seen` rebases locations.
pub fn parse_answer(data: &[u8], head_only: bool, seen: policy::Seen<'_>) -> Result<Option<Answer>, Invalid> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Invalid),
    };
    let (Some(version), Some(code)) = (resp.version, resp.code) else { return Err(Invalid) };
    // Nothing asked to switch protocols; and three digits that aren't a
    // status code (`099`) make no answer, as in hyper's reading.
    if code == 101 || code < 100 {
        return Err(Invalid);
    }
    let mut length: Option<u64> = None;
    let mut coded = false;
    let mut close = version == 0;
    let mut dated = false;
    for h in resp.headers.iter() {
        dated |= is(h.name, "date");
        if is(h.name, "content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| Invalid)?.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 18 {
                return Err(Invalid);
            }
            let v: u64 = v.parse().map_err(|_| Invalid)?;
            if length.is_some_and(|l| l != v) {
                return Err(Invalid);
            }
            length = Some(v);
        } else if is(h.name, "transfer-encoding") {
            // A line that names no coding: hyper goes by the last line alone
            // and would read the body to the close, the list rule by the
            // others; such an answer is refused rather than read one way.
            if h.value.split(|&b| b == b',').all(|c| trim_ows(c).is_empty()) {
                return Err(Invalid);
            }
            coded = true;
        } else if is(h.name, "connection") {
            let v = std::str::from_utf8(h.value).unwrap_or_default();
            if v.split(',').any(|t| is(t.trim(), "close")) {
                close = true;
            }
        }
    }
    // RFC 9112 §6.1: each coding a token, perhaps with parameters (`chunked`
    // takes none); `chunked` at most once and last, or the body ends with
    // the connection; a `Transfer-Encoding` naming no coding means nothing.
    let (mut any, mut chunked, mut chunked_last) = (false, 0, false);
    for coding in codings(resp.headers) {
        let name = trim_ows(coding.split(|&b| b == b';').next().unwrap_or_default());
        let is_chunked = name.eq_ignore_ascii_case(b"chunked");
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || (is_chunked && name.len() != coding.len()) {
            return Err(Invalid);
        }
        (any, chunked, chunked_last) = (true, chunked + usize::from(is_chunked), is_chunked);
    }
    if (coded && !any) || chunked > 1 || (chunked == 1 && !chunked_last) {
        return Err(Invalid);
    }
    // A transfer coding in an HTTP/1.0 answer is faulty framing (RFC 9112
    // §6.1): a 1.0 reader in between would take the chunks for the body.
    if coded && version == 0 {
        return Err(Invalid);
    }
    let framing = if (100..200).contains(&code) {
        Framing::Informational
    } else if head_only || code == 204 || code == 304 {
        Framing::Length(0)
    } else {
        // A transfer coding overrides any Content-Length (§6.3).
        match (coded, length) {
            (true, _) if chunked_last => Framing::Chunked(Chunked::default()),
            (true, _) | (false, None) => Framing::UntilClose,
            (false, Some(n)) => Framing::Length(n),
        }
    };
    let mut head = BytesMut::with_capacity(len + 32);
    head.extend_from_slice(format!("HTTP/1.1 {code} ").as_bytes());
    head.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    head.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        // With a transfer coding, Content-Length is not the body's length;
        // the codings go on one line of their own, below.
        let stale_length = coded && is(h.name, "content-length");
        if stale_length || is(h.name, "transfer-encoding") {
            continue;
        }
        match policy::answer_header(h.name, h.value, &seen) {
            policy::Edit::Keep => header_line(&mut head, h.name.as_bytes(), h.value),
            policy::Edit::Drop => {}
            policy::Edit::Set(v) => header_line(&mut head, h.name.as_bytes(), &v),
        }
    }
    if !dated {
        // A proxy adds the date an answer without one was received at
        // (RFC 9110 §6.6.1), as hyper does on the general lane.
        header_line(&mut head, b"date", httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    }
    // The app's codings, as one list, and `chunked` after them for a body
    // that ends with the stream (`Upstream::forward` sends it chunked): the
    // client frames the body as sent. Any other coding reaches it as the app
    // applied it (a browser undoes only `chunked`, from the app directly too).
    // None on a 204 (RFC 9112 §6.1).
    let rechunked = framing == Framing::UntilClose;
    if (any || rechunked) && code != 204 {
        head.extend_from_slice(b"transfer-encoding: ");
        let tail = rechunked.then_some(&b"chunked"[..]);
        for (i, coding) in codings(resp.headers).chain(tail).enumerate() {
            if i > 0 {
                head.extend_from_slice(b", ");
            }
            head.extend_from_slice(coding);
        }
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    // An answer with both a coding and a length is odd enough (RFC 9112
    // §6.3) that its connection isn't trusted with another request.
    let reusable = !close && framing != Framing::UntilClose && !(coded && length.is_some());
    Ok(Some(Answer { len, head, framing, reusable }))
}

/// Where a chunked body's parser is (RFC 9112 §7.1), strict: CRLF line
/// ends only, sizes of at most 15 hex digits, bounded lines and trailers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chunked {
    /// In a chunk-size line: the size, its digits, what comes after them
    /// (`Rest`), the line's length.
    Size {
        size: u64,
        digits: u8,
        rest: Rest,
        line: usize,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section: the current line's length, the section's.
    Trailer {
        line: usize,
        total: usize,
    },
    TrailerLf {
        line: usize,
        total: usize,
    },
    Done,
}

/// What follows a chunk size's digits: `[ \t]*` and then `;` and an
/// extension, or the line's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rest {
    Digits,
    Space,
    Extension,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::Size { size: 0, digits: 0, rest: Rest::Digits, line: 0 }
    }
}

impl Chunked {
    /// Consumes `data` up to the body's end: how much was body, and whether
    /// it ended.
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), Invalid> {
        let mut i = 0;
        while i < data.len() && *self != Self::Done {
            if let Self::Data(left) = *self {
                let n = left.min((data.len() - i) as u64);
                i += n as usize;
                *self = if n == left { Self::DataCr } else { Self::Data(left - n) };
                continue;
            }
            let b = data[i];
            i += 1;
            *self = match *self {
                Self::Size { size, digits, rest, line } => {
                    if line >= MAX_SIZE_LINE {
                        return Err(Invalid);
                    }
                    let line = line + 1;
                    match (rest, b) {
                        (_, b'\r') if digits > 0 => Self::SizeLf { size },
                        (Rest::Digits, _) if b.is_ascii_hexdigit() => {
                            if digits == 15 {
                                return Err(Invalid);
                            }
                            let d = (b as char).to_digit(16).expect("a hex digit") as u64;
                            Self::Size { size: size * 16 + d, digits: digits + 1, rest, line }
                        }
                        (Rest::Digits | Rest::Space, b' ' | b'\t') if digits > 0 => {
                            Self::Size { size, digits, rest: Rest::Space, line }
                        }
                        (Rest::Digits | Rest::Space, b';') if digits > 0 => {
                            Self::Size { size, digits, rest: Rest::Extension, line }
                        }
                        (Rest::Extension, b'\t' | b' '..=b'~') => Self::Size { size, digits, rest, line },
                        _ => return Err(Invalid),
                    }
                }
                Self::SizeLf { size } if b == b'\n' => {
                    if size == 0 {
                        Self::Trailer { line: 0, total: 0 }
                    } else {
                        Self::Data(size)
                    }
                }
                Self::DataCr if b == b'\r' => Self::DataLf,
                Self::DataLf if b == b'\n' => Self::default(),
                Self::Trailer { line, total } => match b {
                    b'\r' => Self::TrailerLf { line, total },
                    b'\n' => return Err(Invalid),
                    _ if total >= MAX_TRAILERS => return Err(Invalid),
                    _ => Self::Trailer { line: line + 1, total: total + 1 },
                },
                Self::TrailerLf { line, total } if b == b'\n' => {
                    if line == 0 {
                        Self::Done
                    } else {
                        Self::Trailer { line: 0, total }
                    }
                }
                _ => return Err(Invalid),
            };
        }
        Ok((i, *self == Self::Done))
    }
}

fn header_line(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes: (bytes taken, ended).
    fn chunked(body: &[u8], step: usize) -> Result<(usize, bool), Invalid> {
        let mut c = Chunked::default();
        let mut taken = 0;
        for piece in body.chunks(step) {
            let (n, done) = c.feed(piece)?;
            taken += n;
            if done {
                return Ok((taken, true));
            }
        }
        Ok((taken, false))
    }

    #[test]
    fn a_chunked_body_ends_where_its_last_chunk_and_trailers_do_however_it_arrives() {
        let body = b"5\r\nhello\r\n1A;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 1\r\n\r\n";
        for step in 1..=body.len() {
            let mut more = body.to_vec();
            more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            assert_eq!(chunked(&more, step), Ok((body.len(), true)), "in pieces of {step}");
        }
        assert_eq!(chunked(b"0\r\n\r\n", 1), Ok((5, true)));
        assert_eq!(chunked(b"3 \t;a=b c\r\nabc\r\n0 \r\n\r\n", 2), Ok((22, true)), "spaces, then an extension");
        assert_eq!(chunked(b"5\r\nhel", 3), Ok((6, false)), "not over yet");
    }

    #[test]
    fn chunked_framing_that_could_be_read_two_ways_is_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"\r\n",
            b";ext\r\n",
            b"-5\r\n",
            b"5 \x01\r\n",
            b"5x\r\n",
            b"5 5\r\n",
            b"0x10\r\n",
            b"1000000000000000\r\n",
            b"0\r\nx: 1\n\r\n",
        ] {
            assert_eq!(chunked(bad, 1), Err(Invalid), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_line = format!("5;{}\r\n", "a".repeat(MAX_SIZE_LINE));
        assert_eq!(chunked(long_line.as_bytes(), 64), Err(Invalid));
        let long_trailer = format!("0\r\nx: {}\r\n\r\n", "a".repeat(MAX_TRAILERS));
        assert_eq!(chunked(long_trailer.as_bytes(), 64), Err(Invalid));
        assert_eq!(chunked(b"fffffffffffffff\r\n", 4), Ok((17, false)), "15 digits are allowed");
    }

    fn answer(head: &str, head_only: bool) -> Result<Option<Answer>, Invalid> {
        parse_answer(
            head.as_bytes(),
            head_only,
            super::policy::Seen { port: 3000, proto: "http", host: b"3000-p.preview.localhost:8080" },
        )
    }

    fn framing(head: &str) -> Framing {
        answer(head, false).unwrap().unwrap().framing
    }

    #[test]
    fn an_answer_is_framed_as_the_rfc_says_and_loses_its_hop_by_hop_headers() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                    X-App: 1\r\nDate: Thu, 26 Nov 2026 05:00:00 GMT\r\n\r\nhello";
        let a = answer(text, false).unwrap().unwrap();
        assert_eq!((a.len, a.framing, a.reusable), (text.len() - 5, Framing::Length(5), true));
        assert_eq!(
            &a.head[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: 1\r\nDate: Thu, 26 Nov 2026 05:00:00 GMT\r\n\r\n"
        );

        let a = answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\ndate: Thu, 26 Nov 2026 05:00:00 GMT\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.framing, Framing::Chunked(Chunked::default()));
        assert_eq!(
            &a.head[..],
            b"HTTP/1.1 200 OK\r\ndate: Thu, 26 Nov 2026 05:00:00 GMT\r\ntransfer-encoding: chunked\r\n\r\n",
            "a stale length goes"
        );
        assert!(!a.reusable, "nor is the connection trusted again");

        // A redirect to the app as it sees itself goes to the preview.
        const DATE: &str = "Date: Thu, 26 Nov 2026 05:00:00 GMT\r\n";
        let a = answer(&format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:3000/in?x=1\r\n{DATE}\r\n"), false);
        let head = String::from_utf8(a.unwrap().unwrap().head.to_vec()).unwrap();
        assert!(head.contains("\r\nLocation: http://3000-p.preview.localhost:8080/in?x=1\r\n"), "{head}");
        let a = answer(&format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:4000/\r\n{DATE}\r\n"), false);
        let head = String::from_utf8(a.unwrap().unwrap().head.to_vec()).unwrap();
        assert!(head.contains("\r\nLocation: http://localhost:4000/\r\n"), "another port's stays: {head}");

        // An answer without a date gets the time it arrived.
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let a = answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap().unwrap();
        let head = std::str::from_utf8(&a.head).unwrap();
        let date = head.strip_prefix("HTTP/1.1 200 OK\r\nContent-Length: 0\r\ndate: ").unwrap();
        let date = httpdate::parse_http_date(date.strip_suffix("\r\n\r\n").unwrap()).unwrap();
        assert!(date >= before && date <= std::time::SystemTime::now(), "{head:?}");

        let a = answer("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((a.framing, a.reusable), (Framing::UntilClose, false));
        assert!(a.head.ends_with(b"transfer-encoding: chunked\r\n\r\n"), "sent on chunked");

        assert_eq!(framing("HTTP/1.1 204 No Content\r\n\r\n"), Framing::Length(0));
        let a = answer("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&a.head).contains("transfer-encoding"), "none on a 204");
        assert_eq!(framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), Framing::Length(0));
        assert_eq!(
            answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true).unwrap().unwrap().framing,
            Framing::Length(0)
        );
        assert_eq!(framing("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"), Framing::Informational);

        let a = answer("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((a.framing, a.reusable), (Framing::Length(2), false), "HTTP/1.0 closes");
        assert!(a.head.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let a = answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", false).unwrap().unwrap();
        assert!(!a.reusable);

        assert!(answer("HTTP/1.1 200 OK\r\nContent-Le", false).unwrap().is_none(), "incomplete");
        // Other transfer codings: `chunked` last frames the body, else the
        // body ends with the stream and goes on chunked; either way the
        // client gets the codings, as one list, to undo.
        let date = "Date: Thu, 26 Nov 2026 05:00:00 GMT\r\n";
        for (coded, framing, te) in [
            ("Transfer-Encoding: gzip, chunked\r\n", Framing::Chunked(Chunked::default()), "gzip, chunked"),
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                Framing::Chunked(Chunked::default()),
                "gzip, chunked",
            ),
            ("Transfer-Encoding: gzip\r\nContent-Length: 4\r\n", Framing::UntilClose, "gzip, chunked"),
            ("Transfer-Encoding: gzip,  br\r\n", Framing::UntilClose, "gzip, br, chunked"),
            (
                "Transfer-Encoding: gzip;level=1\t, chunked\r\n",
                Framing::Chunked(Chunked::default()),
                "gzip;level=1, chunked",
            ),
        ] {
            let a = answer(&format!("HTTP/1.1 200 OK\r\n{coded}{date}\r\n"), false).unwrap().unwrap();
            assert_eq!(a.framing, framing, "{coded:?}");
            assert_eq!(a.reusable, framing != Framing::UntilClose, "{coded:?}");
            let head = format!("HTTP/1.1 200 OK\r\n{date}transfer-encoding: {te}\r\n\r\n");
            assert_eq!(std::str::from_utf8(&a.head).unwrap(), head, "{coded:?}");
        }
        for bad in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: g zip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\u{a0}\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        ] {
            assert_eq!(answer(bad, false).unwrap_err(), Invalid, "{bad:?}");
        }
    }

    #[test]
    fn length_framing_counts_down_across_pieces() {
        let mut f = Framing::Length(10);
        assert_eq!(f.take(b"abcd"), Ok((4, false)));
        assert_eq!(f.take(b"efghijklmn"), Ok((6, true)));
        assert_eq!(Framing::Length(0).take(b"next"), Ok((0, true)));
    }
}
