//! `Stripe-Signature` verification, before anything of the body is parsed.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (several `v1`
//! while a secret is rolled; other schemes are ignored). Each `v1` is
//! HMAC-SHA256 keyed by the whole `whsec_…` secret over `"{t}.{body}"`,
//! compared in constant time; `t` must be within five minutes of now
//! either way, so a captured request can't be replayed later.

use chrono::{DateTime, Utc};

/// How far a signature's time may be from the hub's.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("no v1 signature in Stripe-Signature matches the body")]
    Mismatch,
    #[error("the signature's timestamp is more than {TOLERANCE_SECS} s from now")]
    Stale,
}

/// Checks `header` against `body` and `secret` at `now`.
pub fn verify(secret: &str, header: Option<&str>, body: &[u8], now: DateTime<Utc>) -> Result<(), Refused> {
    let header = header.ok_or(Refused::Missing)?;
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = Some(value.parse::<i64>().map_err(|_| Refused::Malformed)?),
            Some(("v1", value)) => v1.push(value),
            Some(_) => {}
            None => return Err(Refused::Malformed),
        }
    }
    let t = t.ok_or(Refused::Malformed)?;
    if v1.is_empty() {
        return Err(Refused::Malformed);
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(format!("{t}.").as_bytes());
    signed.extend_from_slice(body);
    let matches =
        v1.iter().any(|sig| hex::decode(sig).is_ok_and(|sig| ring::hmac::verify(&key, &signed, &sig).is_ok()));
    if !matches {
        return Err(Refused::Mismatch);
    }
    if (now.timestamp() - t).abs() > TOLERANCE_SECS {
        return Err(Refused::Stale);
    }
    Ok(())
}

/// A `Stripe-Signature` header for `body` at `t`, as Stripe signs.
pub fn sign(secret: &str, body: &[u8], t: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!("t={t},v1={}", hex::encode(ring::hmac::sign(&key, &signed).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn stripes_own_signature_verifies() {
        // From Stripe's documented scheme: HMAC-SHA256("{t}.{body}") in hex.
        let header = sign(SECRET, BODY, now().timestamp());
        assert!(header.starts_with("t=1800000000,v1="));
        assert_eq!(verify(SECRET, Some(&header), BODY, now()), Ok(()));
        // Any v1 may match (a secret being rolled), in any position.
        let two = format!("t=1800000000,v1={},{}", "ab".repeat(32), header.split_once(',').unwrap().1);
        assert_eq!(verify(SECRET, Some(&two), BODY, now()), Ok(()));
    }

    #[test]
    fn forged_changed_or_missing_signatures_are_refused() {
        let header = sign(SECRET, BODY, now().timestamp());
        assert_eq!(verify("whsec_other", Some(&header), BODY, now()), Err(Refused::Mismatch));
        assert_eq!(verify(SECRET, Some(&header), br#"{"id":"evt_2","object":"event"}"#, now()), Err(Refused::Mismatch));
        let moved = header.replacen("t=1800000000", "t=1800000001", 1);
        assert_eq!(verify(SECRET, Some(&moved), BODY, now()), Err(Refused::Mismatch));
        assert_eq!(verify(SECRET, None, BODY, now()), Err(Refused::Missing));
        assert_eq!(verify(SECRET, Some("garbage"), BODY, now()), Err(Refused::Malformed));
        assert_eq!(verify(SECRET, Some("t=1800000000"), BODY, now()), Err(Refused::Malformed));
        let v0_only = header.replacen("v1=", "v0=", 1);
        assert_eq!(verify(SECRET, Some(&v0_only), BODY, now()), Err(Refused::Malformed));
    }

    #[test]
    fn a_signature_is_good_for_five_minutes_either_way() {
        for (offset, ok) in [(-300, true), (300, true), (-301, false), (301, false)] {
            let header = sign(SECRET, BODY, now().timestamp() + offset);
            let want = if ok { Ok(()) } else { Err(Refused::Stale) };
            assert_eq!(verify(SECRET, Some(&header), BODY, now()), want, "offset {offset}");
        }
    }
}
