//! Which TCP ports listen in this VM, for previews.
//!
//! Asked of the kernel's socket diagnostics (netlink `sock_diag`, listening
//! sockets only) every [`INTERVAL`], or read from `/proc/net/tcp` and `tcp6`
//! where that is refused. `/proc/net/tcp` lists every socket, so reading it
//! costs more with every connection the app holds (a server under load
//! testing, a database with its clients); the diagnostics walk only the
//! listening table. Each socket's owner is found through `/proc/*/fd`, so
//! that aetherd's and sshd's own ports are left out and the process name is
//! shown. On a machine shared
//! with other things (local VMs) only processes carrying this VM's
//! `AETHER_PROJECT_ID`, or descending from this aetherd, count.

use aether_protocol::pb;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// How often ports are scanned (changes reach the hub within about this).
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Which processes' ports count.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every process in the VM.
    All,
    /// Only processes with this exact `KEY=value` in their environment.
    Marked(String),
}

/// Scans ports, remembering socket owners between scans.
#[derive(Debug)]
pub struct Scanner {
    scope: Scope,
    /// Socket inode → the owner's name, or `None` when it doesn't count.
    owners: HashMap<u64, Option<String>>,
    /// How many scans had to walk `/proc` (new sockets appeared).
    proc_walks: u64,
}

struct Listener {
    port: u16,
    addr: IpAddr,
    inode: u64,
}

fn parse_addr(hex: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.swap_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?.swap_bytes();
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Listening sockets in one `/proc/net/tcp*` table.
fn parse_table(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let (addr, port) = parse_addr(f[1])?;
            Some(Listener { port, addr, inode: f[9].parse().ok()? })
        })
        .collect()
}

/// `TCP_LISTEN` in the kernel's socket states.
const TCP_LISTEN: u32 = 10;
/// netlink message types and flags (`linux/netlink.h`, `linux/sock_diag.h`).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;
/// `struct nlmsghdr` and `struct inet_diag_msg`.
const HEADER: usize = 16;
const IPPROTO_TCP: u8 = 6;
const DIAG_MSG: usize = 72;

/// Listening TCP sockets of one address family (`AF_INET` or `AF_INET6`),
/// from the kernel's socket diagnostics.
fn diag_listeners(family: u8) -> std::io::Result<Vec<Listener>> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, setsockopt, socket,
        sockopt,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(AddressFamily::Netlink, SockType::Datagram, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkSockDiag)?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(2, 0))?;
    // A `nlmsghdr` and an `inet_diag_req_v2` asking for TCP listeners.
    let mut req = Vec::with_capacity(HEADER + 56);
    req.extend_from_slice(&((HEADER + 56) as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST_DUMP.to_ne_bytes());
    req.extend_from_slice(&[0u8; 8]); // sequence number, port id
    req.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.extend_from_slice(&[0u8; 48]); // any socket id
    sendto(fd.as_raw_fd(), &req, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut at = 0;
        while at + HEADER <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            if len < HEADER || at + len > n {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            match kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => return Err(std::io::Error::other("sock_diag refused the request")),
                SOCK_DIAG_BY_FAMILY => out.extend(parse_diag(&buf[at + HEADER..at + len])),
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
}

/// One `inet_diag_msg`: family, state, timer, retransmits, then the socket
/// id (ports big-endian, addresses in network order), then expiry, queues,
/// uid and inode.
fn parse_diag(msg: &[u8]) -> Option<Listener> {
    if msg.len() < DIAG_MSG || u32::from(msg[1]) != TCP_LISTEN {
        return None;
    }
    let port = u16::from_be_bytes([msg[4], msg[5]]);
    let src: [u8; 16] = msg[8..24].try_into().ok()?;
    let addr = match msg[0] {
        2 => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
        10 => IpAddr::V6(Ipv6Addr::from(src)),
        _ => return None,
    };
    let inode = u32::from_ne_bytes(msg[68..72].try_into().ok()?);
    Some(Listener { port, addr, inode: inode.into() })
}

/// Every listening TCP socket, IPv4 and IPv6.
fn listeners() -> Vec<Listener> {
    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;
    match (diag_listeners(AF_INET), diag_listeners(AF_INET6)) {
        (Ok(mut v4), Ok(v6)) => {
            v4.extend(v6);
            v4
        }
        _ => proc_listeners(),
    }
}

/// The same, from `/proc/net/tcp` and `tcp6`.
fn proc_listeners() -> Vec<Listener> {
    let mut all = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        all.extend(parse_table(&std::fs::read_to_string(table).unwrap_or_default()));
    }
    all
}

/// Socket inode → the pids holding it (a forking server's master and
/// workers share their listening socket), for every process we can see.
fn socket_owners() -> HashMap<u64, Vec<u32>> {
    let mut map = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return map };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']'))
                    && let Ok(inode) = inode.parse()
                {
                    map.entry(inode).or_insert_with(Vec::new).push(pid);
                }
            }
        }
    }
    map
}

/// Whether `ancestor` is `pid` or one of its ancestors.
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        match ppid {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

impl Scanner {
    pub fn new(scope: Scope) -> Self {
        Self { scope, owners: HashMap::new(), proc_walks: 0 }
    }

    fn judge(&self, pid: u32) -> Option<String> {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim().to_owned();
        if comm == "sshd" || comm.starts_with("aetherd") {
            return None;
        }
        if let Scope::Marked(marker) = &self.scope {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let marked = env.split(|b| *b == 0).any(|v| v == marker.as_bytes());
            // Servers that rewrite their environment (nginx) still descend from us.
            if !marked && !descends_from(pid, std::process::id()) {
                return None;
            }
        }
        Some(comm)
    }

    /// The ports that count, sorted, one entry per port.
    pub fn scan(&mut self) -> Vec<pb::ListeningPort> {
        let mut all = listeners();
        if all.iter().any(|l| !self.owners.contains_key(&l.inode)) {
            let pids = socket_owners();
            self.proc_walks += 1;
            for l in &all {
                if !self.owners.contains_key(&l.inode) {
                    // A socket whose holder can't be seen (another namespace's, the
                    // host's) doesn't count, and is not looked for again while it
                    // lives: walking `/proc` every scan would cost an idle VM a few
                    // percent of a CPU.
                    let verdict = pids.get(&l.inode).and_then(|h| h.iter().find_map(|pid| self.judge(*pid)));
                    self.owners.insert(l.inode, verdict);
                }
            }
        }
        let live: std::collections::HashSet<u64> = all.iter().map(|l| l.inode).collect();
        self.owners.retain(|inode, _| live.contains(inode));
        let mut out: Vec<pb::ListeningPort> = Vec::new();
        all.sort_by_key(|l| (l.port, l.addr.is_ipv6()));
        for l in all {
            let Some(Some(process)) = self.owners.get(&l.inode) else { continue };
            if l.port == 22 || out.last().is_some_and(|p| p.port == u32::from(l.port)) {
                continue;
            }
            out.push(pb::ListeningPort { port: l.port.into(), address: l.addr.to_string(), process: process.clone() });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 100 0 0 10 0\n\
                  1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0 100 0 0 10 0\n";
        let l = parse_table(v4);
        assert_eq!(l.len(), 1, "only LISTEN rows");
        assert_eq!((l[0].port, l[0].addr, l[0].inode), (8080, IpAddr::V4(Ipv4Addr::LOCALHOST), 12345));
        let v6 = "header\n  0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 0:0 0:0 0 1000 0 777 1\n";
        let l = parse_table(v6);
        assert_eq!((l[0].port, l[0].addr, l[0].inode), (3000, IpAddr::V6(Ipv6Addr::LOCALHOST), 777));
    }

    #[test]
    fn finds_a_real_listener_of_this_process_tree() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // This test process is not aetherd, so its port counts.
        let found = Scanner::new(Scope::All).scan();
        assert!(found.iter().any(|p| p.port == u32::from(port)), "{found:?}");
        // Without the marker in its environment it still counts: it is (a
        // descendant of) the scanning process, as servers started by aetherd are.
        let marked = Scanner::new(Scope::Marked("AETHER_PROJECT_ID=nobody".into())).scan();
        assert!(marked.iter().any(|p| p.port == u32::from(port)));
        assert!(!descends_from(1, std::process::id()), "init is nobody's descendant");
    }

    #[test]
    fn the_kernels_diagnostics_and_proc_agree_on_listeners() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let key = |l: &Listener| (l.port, l.addr, l.inode);
        let diag: Vec<_> =
            [2, 10].into_iter().flat_map(|f| diag_listeners(f).expect("sock_diag")).map(|l| key(&l)).collect();
        let proc: Vec<_> = proc_listeners().iter().map(key).collect();
        for listener in [&v4, &v6] {
            let addr = listener.local_addr().unwrap();
            let ours = |k: &&(u16, IpAddr, u64)| k.0 == addr.port() && k.1 == addr.ip();
            let (a, b): (Vec<_>, Vec<_>) = (diag.iter().filter(ours).collect(), proc.iter().filter(ours).collect());
            assert_eq!(a.len(), 1, "{addr} in {diag:?}");
            assert_eq!(a, b, "the same socket, the same inode");
        }
        let connected = std::net::TcpStream::connect(v4.local_addr().unwrap()).unwrap();
        let from = connected.local_addr().unwrap().port();
        let diag: Vec<_> = diag_listeners(2).unwrap().iter().map(key).collect();
        assert!(!diag.iter().any(|k| k.0 == from), "only listeners");
    }

    #[test]
    fn a_diagnostics_message_gives_its_port_address_and_inode() {
        let mut msg = vec![0u8; DIAG_MSG];
        msg[0] = 10;
        msg[1] = TCP_LISTEN as u8;
        msg[4..6].copy_from_slice(&3000u16.to_be_bytes());
        msg[8..24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        msg[68..72].copy_from_slice(&777u32.to_ne_bytes());
        let l = parse_diag(&msg).unwrap();
        assert_eq!((l.port, l.addr, l.inode), (3000, IpAddr::V6(Ipv6Addr::LOCALHOST), 777));
        msg[1] = 1; // established
        assert!(parse_diag(&msg).is_none());
        assert!(parse_diag(&msg[..DIAG_MSG - 1]).is_none(), "short");
    }

    #[test]
    fn known_sockets_are_not_looked_up_again() {
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut scanner = Scanner::new(Scope::All);
        scanner.scan();
        assert_eq!(scanner.proc_walks, 1);
        // Other processes on the machine may open sockets meanwhile; a scan
        // that saw nothing new must not have walked /proc.
        for _ in 0..20 {
            let (walks, known): (u64, std::collections::BTreeSet<u64>) =
                (scanner.proc_walks, scanner.owners.keys().copied().collect());
            scanner.scan();
            if scanner.owners.keys().copied().collect::<std::collections::BTreeSet<u64>>() == known {
                assert_eq!(scanner.proc_walks, walks, "a scan with no new socket walked /proc");
                return;
            }
        }
        panic!("the machine's listening sockets never held still");
    }
}
