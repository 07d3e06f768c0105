//! Who is calling: passwords (argon2id), access tokens (HS256 JWTs, the
//! hub's own or Supabase's), and one-time WebSocket tickets.
//!
//! Passwords and tokens are never logged; tickets are stored only as their
//! SHA-256.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Audience of every access token (Supabase's value, so both kinds look alike).
pub const AUDIENCE: &str = "authenticated";
/// Default lifetime of the hub's own access tokens (`AETHER_ACCESS_TOKEN_TTL_S`):
/// short, as a session's refresh token renews them and revoking a session
/// must not wait for them to lapse (they are checked against it anyway).
pub const ACCESS_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Lifetime of a WebSocket ticket.
pub const TICKET_TTL: Duration = Duration::seconds(60);

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub email: String,
    pub exp: i64,
    pub aud: String,
    /// The session the token belongs to (the hub's own tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// Issues and verifies access tokens.
pub struct Tokens {
    local: (EncodingKey, DecodingKey),
    supabase: Option<DecodingKey>,
}

impl Tokens {
    pub fn new(local_secret: &[u8], supabase_secret: Option<&[u8]>) -> Self {
        Self {
            local: (EncodingKey::from_secret(local_secret), DecodingKey::from_secret(local_secret)),
            supabase: supabase_secret.map(DecodingKey::from_secret),
        }
    }

    /// An access token for `user` in `session`, valid for `ttl`.
    pub fn issue(
        &self,
        user: Uuid,
        email: &str,
        session: Uuid,
        ttl: std::time::Duration,
    ) -> anyhow::Result<(String, DateTime<Utc>)> {
        let expires = Utc::now() + Duration::from_std(ttl)?;
        let claims = Claims {
            sub: user,
            email: email.to_owned(),
            exp: expires.timestamp(),
            aud: AUDIENCE.into(),
            sid: Some(session),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.local.0)?;
        Ok((token, expires))
    }

    /// The claims of a valid token, and whether it came from Supabase.
    pub fn verify(&self, token: &str) -> Option<(Claims, bool)> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // No leeway (jsonwebtoken's default is 60 s): a token is refused
        // from the second it expires (`exp` itself included).
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 1;
        if let Ok(data) = jsonwebtoken::decode::<Claims>(token, &self.local.1, &validation) {
            return Some((data.claims, false));
        }
        let key = self.supabase.as_ref()?;
        jsonwebtoken::decode::<Claims>(token, key, &validation).ok().map(|d| (d.claims, true))
    }
}

/// Hashes a password with argon2id (off the async threads).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Checks a password against a stored hash (off the async threads).
pub async fn verify_password(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Why a password is not acceptable, if it isn't.
pub fn password_problem(password: &str, email: &str) -> Option<&'static str> {
    let chars = password.chars().count();
    if chars < 8 {
        return Some("password must be at least 8 characters");
    }
    if password.len() > 1024 {
        return Some("password must be at most 1024 bytes");
    }
    let distinct = password.chars().collect::<std::collections::HashSet<_>>().len();
    let lower = password.to_lowercase();
    const COMMON: [&str; 8] =
        ["password", "12345678", "123456789", "qwertyui", "iloveyou", "11111111", "abcdefgh", "passw0rd"];
    if distinct < 4 || COMMON.iter().any(|c| lower.starts_with(c)) || lower == email.to_lowercase() {
        return Some("password is too easy to guess");
    }
    None
}

/// Whether an email address is plausible.
pub fn email_ok(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// A fresh random secret, URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub email: String,
    /// The caller's session (`None` for a Supabase token).
    pub session: Option<Uuid>,
}

/// The token of an `Authorization` value in the Bearer scheme, however the
/// scheme is written: RFC 9110 §11.1 makes it case-insensitive, so
/// `bearer x` is as much aether's credential as `Bearer x`.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let t = Tokens::new(b"local-secret-local-secret-local!", Some(b"supabase-secret-supabase-secret!"));
        let id = Uuid::new_v4();
        let (tok, _) = t.issue(id, "a@b.co", Uuid::new_v4(), ACCESS_TTL).unwrap();
        let (claims, external) = t.verify(&tok).unwrap();
        assert_eq!((claims.sub, external), (id, false));
        let mut bad = tok.clone();
        bad.pop();
        assert!(t.verify(&bad).is_none());
        assert!(t.verify("garbage").is_none());

        let other = Tokens::new(b"supabase-secret-supabase-secret!", None);
        let (ext, _) = other.issue(id, "a@b.co", Uuid::new_v4(), ACCESS_TTL).unwrap();
        assert!(t.verify(&ext).unwrap().1, "a Supabase-signed token is accepted as external");
        assert!(Tokens::new(b"x-secret-x-secret-x-secret-x-sec", None).verify(&ext).is_none());
    }

    #[test]
    fn tokens_are_refused_from_the_second_they_expire() {
        let secret = b"local-secret-local-secret-local!";
        let t = Tokens::new(secret, None);
        let signed = |exp: i64| {
            let claims = Claims { sub: Uuid::new_v4(), email: "a@b.co".into(), exp, aud: AUDIENCE.into(), sid: None };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
        };
        let now = Utc::now().timestamp();
        assert!(t.verify(&signed(now + 30)).is_some());
        for exp in [now - 1, now - 30, now - 59] {
            assert!(t.verify(&signed(exp)).is_none(), "expired {} s ago", now - exp);
        }
    }

    #[test]
    fn weak_passwords_and_bad_emails() {
        assert!(password_problem("short", "a@b.co").is_some());
        assert!(password_problem("aaaaaaaaaa", "a@b.co").is_some());
        assert!(password_problem("password123", "a@b.co").is_some());
        assert!(password_problem("correct horse battery", "a@b.co").is_none());
        assert!(email_ok("dev@example.com"));
        for bad in ["", "no-at", "@x.com", "a@nodot", "a b@x.com", "a@@x.com"] {
            assert!(!email_ok(bad), "{bad}");
        }
    }
}
