//! Abuse limits for the routes a guesser or a flood would use: sign-in,
//! sign-up and ticket creation, each limited per client address and per
//! account.
//!
//! A limited attempt is refused before it costs the hub anything (an argon2
//! hash, a database write), so guessing costs the guesser. The buckets live
//! in memory, per hub process: each `Limiter` holds at most `MAX_KEYS` keys,
//! and when it is full the keys nearest to a full bucket (which is the same
//! as no entry) are dropped first.
//!
//! Per address, every sign-in attempt counts. Per account only failures do,
//! and that limit is looser, so a guesser at one address runs out long
//! before the account does and the owner still gets in from elsewhere. An
//! address the account signed in from (or signed up from) is not held to
//! the account's limit: guessers spread over many addresses can slow down
//! sign-ins from new places, not lock the owner out of the ones they use.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How many attempts a key may make at once (`burst`), and how often one
/// more is allowed after that (`every`).
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// Sign-in attempts per client address.
pub const LOGIN_PER_ADDRESS: Rate = Rate { burst: 8, every: Duration::from_secs(6) };
/// Failed sign-ins per account (email).
pub const LOGIN_FAILURES_PER_ACCOUNT: Rate = Rate { burst: 20, every: Duration::from_secs(60) };
/// Sign-ups per client address.
pub const SIGNUP_PER_ADDRESS: Rate = Rate { burst: 10, every: Duration::from_secs(60) };
/// Sign-ups per email.
pub const SIGNUP_PER_EMAIL: Rate = Rate { burst: 3, every: Duration::from_secs(60) };
/// Password-reset requests (and link confirmations) per client address.
pub const RESET_PER_ADDRESS: Rate = Rate { burst: 10, every: Duration::from_secs(60) };
/// Password-reset mails per account.
pub const RESET_PER_ACCOUNT: Rate = Rate { burst: 3, every: Duration::from_secs(300) };
/// Tickets per user.
pub const TICKETS_PER_USER: Rate = Rate { burst: 30, every: Duration::from_secs(1) };
/// Tickets per client address.
pub const TICKETS_PER_ADDRESS: Rate = Rate { burst: 60, every: Duration::from_millis(500) };

/// Most keys one limiter remembers.
pub const MAX_KEYS: usize = 50_000;
/// Most addresses remembered per account as ones it signed in from.
const KNOWN_PER_ACCOUNT: usize = 4;

/// Where a request comes from, as limits count it: an IPv4 address, or an
/// IPv6 address's /64 (what one host or home is usually given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address(u128);

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u32::from(v4).into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u32::from(v4).into()),
                None => Self(u128::from(v6) & !((1u128 << 64) - 1) | (1 << 127)),
            },
        }
    }
}

/// An account as limits count it: an email, case-folded and bounded.
pub fn account(email: &str) -> String {
    let email = email.trim().to_lowercase();
    let end = (0..=email.len().min(254)).rev().find(|i| email.is_char_boundary(*i)).unwrap_or(0);
    email[..end].to_owned()
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed / rate.every.as_secs_f64()).min(rate.burst.into());
        self.at = now;
    }
}

/// Token buckets, one per key, all at one `Rate`.
pub struct Limiter<K> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Rate) -> Self {
        Self::with_capacity(rate, MAX_KEYS)
    }

    fn with_capacity(rate: Rate, max_keys: usize) -> Self {
        Self { rate, max_keys, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one attempt for `key`, or says how long until one is allowed.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: self.rate.burst.into(), at: now });
        bucket.refill(self.rate, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.rate.every.mul_f64(1.0 - bucket.tokens))
        }
    }

    /// Gives back an attempt taken for `key` (one that turned out not to count).
    pub fn give_back(&self, key: &K, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.refill(self.rate, now);
            bucket.tokens = (bucket.tokens + 1.0).min(self.rate.burst.into());
        }
    }

    /// Makes room: drops full buckets, then, if that is not enough, the
    /// fuller half of the rest.
    fn evict(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        for b in buckets.values_mut() {
            b.refill(self.rate, now);
        }
        let burst = f64::from(self.rate.burst);
        buckets.retain(|_, b| b.tokens < burst);
        if buckets.len() >= self.max_keys * 3 / 4 {
            let mut levels: Vec<f64> = buckets.values().map(|b| b.tokens).collect();
            let mid = levels.len() / 2;
            let (_, median, _) = levels.select_nth_unstable_by(mid, f64::total_cmp);
            let median = *median;
            buckets.retain(|_, b| b.tokens < median);
            // All at one level: keep none rather than grow.
            if buckets.len() >= self.max_keys * 3 / 4 {
                buckets.clear();
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// Addresses each account last signed in (or signed up) from, bounded.
struct Known {
    by_account: Mutex<HashMap<String, Vec<Address>>>,
}

impl Known {
    fn contains(&self, account: &str, address: Address) -> bool {
        let known = self.by_account.lock().unwrap_or_else(|e| e.into_inner());
        known.get(account).is_some_and(|a| a.contains(&address))
    }

    fn add(&self, account: &str, address: Address) {
        let mut known = self.by_account.lock().unwrap_or_else(|e| e.into_inner());
        if !known.contains_key(account) && known.len() >= MAX_KEYS {
            // Forgetting only lifts a privilege; the limits still hold.
            known.clear();
        }
        let list = known.entry(account.to_owned()).or_default();
        list.retain(|a| *a != address);
        if list.len() >= KNOWN_PER_ACCOUNT {
            list.remove(0);
        }
        list.push(address);
    }
}

/// An attempt that is refused, with how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited(pub Duration);

/// A sign-in attempt that was allowed: say how it went with `succeeded`
/// (a failure keeps counting against the account).
pub struct LoginAttempt<'a> {
    limits: &'a Limits,
    account: String,
    address: Address,
    charged_account: bool,
}

impl LoginAttempt<'_> {
    pub fn succeeded(self) {
        if self.charged_account {
            self.limits.login_account.give_back(&self.account, Instant::now());
        }
        self.limits.known.add(&self.account, self.address);
    }
}

/// Every abuse limit of one hub.
pub struct Limits {
    login_address: Limiter<Address>,
    login_account: Limiter<String>,
    signup_address: Limiter<Address>,
    signup_email: Limiter<String>,
    ticket_address: Limiter<Address>,
    ticket_user: Limiter<Uuid>,
    reset_address: Limiter<Address>,
    reset_account: Limiter<String>,
    known: Known,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_address: Limiter::new(LOGIN_PER_ADDRESS),
            login_account: Limiter::new(LOGIN_FAILURES_PER_ACCOUNT),
            signup_address: Limiter::new(SIGNUP_PER_ADDRESS),
            signup_email: Limiter::new(SIGNUP_PER_EMAIL),
            ticket_address: Limiter::new(TICKETS_PER_ADDRESS),
            ticket_user: Limiter::new(TICKETS_PER_USER),
            reset_address: Limiter::new(RESET_PER_ADDRESS),
            reset_account: Limiter::new(RESET_PER_ACCOUNT),
            known: Known { by_account: Mutex::new(HashMap::new()) },
        }
    }
}

impl Limits {
    /// A sign-in to `email` from `ip`, unless either is over its limit.
    pub fn login(&self, ip: IpAddr, email: &str) -> Result<LoginAttempt<'_>, Limited> {
        let now = Instant::now();
        let address = Address::from(ip);
        self.login_address.take(&address, now).map_err(Limited)?;
        let account = account(email);
        let charged_account = !self.known.contains(&account, address);
        if charged_account {
            self.login_account.take(&account, now).map_err(Limited)?;
        }
        Ok(LoginAttempt { limits: self, account, address, charged_account })
    }

    /// A sign-up for `email` from `ip`, unless either is over its limit.
    pub fn signup(&self, ip: IpAddr, email: &str) -> Result<(), Limited> {
        let now = Instant::now();
        self.signup_address.take(&Address::from(ip), now).map_err(Limited)?;
        self.signup_email.take(&account(email), now).map_err(Limited)
    }

    /// Remembers that `email` signed up from `ip` (its owner is there).
    pub fn signed_up(&self, ip: IpAddr, email: &str) {
        self.known.add(&account(email), Address::from(ip));
    }

    /// A password-reset request (or a mailed link's use) for `email` from
    /// `ip`, unless either is over its limit; an empty `email` counts the
    /// address only.
    pub fn password_reset(&self, ip: IpAddr, email: &str) -> Result<(), Limited> {
        let now = Instant::now();
        self.reset_address.take(&Address::from(ip), now).map_err(Limited)?;
        if email.is_empty() {
            return Ok(());
        }
        self.reset_account.take(&account(email), now).map_err(Limited)
    }

    /// A ticket for `user` from `ip`, unless either is over its limit.
    pub fn ticket(&self, ip: IpAddr, user: Uuid) -> Result<(), Limited> {
        let now = Instant::now();
        self.ticket_address.take(&Address::from(ip), now).map_err(Limited)?;
        self.ticket_user.take(&user, now).map_err(Limited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { burst: 3, every: Duration::from_secs(10) };

    #[test]
    fn a_bucket_empties_then_refills_at_its_rate() {
        let l = Limiter::new(RATE);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take(&1, t0), Ok(()));
        }
        assert_eq!(l.take(&1, t0), Err(Duration::from_secs(10)));
        assert_eq!(l.take(&1, t0 + Duration::from_secs(4)), Err(Duration::from_secs(6)));
        assert_eq!(l.take(&1, t0 + Duration::from_secs(10)), Ok(()), "one more after `every`");
        assert!(l.take(&1, t0 + Duration::from_secs(10)).is_err());
        assert_eq!(l.take(&2, t0), Ok(()), "keys are independent");
        l.give_back(&1, t0 + Duration::from_secs(10));
        assert_eq!(l.take(&1, t0 + Duration::from_secs(10)), Ok(()), "a refund is one more try");
    }

    #[test]
    fn memory_is_bounded_and_the_most_limited_keys_are_kept() {
        let l = Limiter::with_capacity(RATE, 100);
        let t0 = Instant::now();
        // A guesser's key, emptied.
        for _ in 0..3 {
            l.take(&u32::MAX, t0).unwrap();
        }
        for k in 0..10_000u32 {
            l.take(&k, t0).unwrap();
            assert!(l.len() <= 100);
        }
        assert!(l.take(&u32::MAX, t0).is_err(), "the emptied bucket survived every eviction");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Address::from(a), Address::from(b));
        assert_ne!(Address::from(a), Address::from(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Address::from(v4), Address::from(mapped));
        assert_ne!(Address::from("::".parse::<IpAddr>().unwrap()), Address::from("0.0.0.0".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn the_owner_is_not_held_to_the_account_limit_where_they_signed_in() {
        let limits = Limits::default();
        let owner: IpAddr = "192.0.2.1".parse().unwrap();
        limits.login(owner, "Ada@example.com").unwrap().succeeded();
        // Guessers at many addresses use up the account's failures.
        let mut refused = false;
        for i in 0..LOGIN_FAILURES_PER_ACCOUNT.burst + 1 {
            let guesser = IpAddr::from([198, 51, 100, i as u8]);
            refused |= limits.login(guesser, "ada@example.com").is_err();
        }
        assert!(refused, "the account's limit holds for new addresses");
        assert!(limits.login(IpAddr::from([203, 0, 113, 1]), "ada@example.com").is_err());
        assert!(limits.login(owner, "ADA@example.com").is_ok(), "the owner's own address still gets in");
    }
}
