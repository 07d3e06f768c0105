//! The fake's leases: one holder per machine until released or expired;
//! every mutation of a leased machine must carry the holder's nonce, else
//! 409. Acquiring answers 201 with the current API's `{status, data}` shape.

use super::Reply;
use super::world::{World, error, new_id};
use serde_json::{Value, json};
use std::time::Duration;

pub struct Lease {
    pub nonce: String,
    pub owner: String,
    pub description: String,
    pub expires: Duration,
}

impl World {
    pub fn acquire_lease(
        &mut self,
        now: Duration,
        id: &str,
        body: &Value,
        nonce: Option<&str>,
    ) -> Result<Reply, Reply> {
        let epoch = self.epoch;
        let m = self.machine_mut(id)?;
        if let Some(r) = m.leased_by_other(now, nonce) {
            return Err(r);
        }
        let ttl = Duration::from_secs(body["ttl"].as_u64().unwrap_or(30).clamp(1, 3600));
        let lease = Lease {
            nonce: nonce.map_or_else(|| new_id(12), str::to_owned),
            owner: "hub@example.com".into(),
            description: body["description"].as_str().unwrap_or_default().into(),
            expires: now + ttl,
        };
        let data = json!({ "nonce": lease.nonce, "owner": lease.owner, "description": lease.description,
                           "version": m.instance_id,
                           "expires_at": (epoch + chrono::Duration::from_std(lease.expires).unwrap()).timestamp() });
        m.lease = Some(lease);
        Ok(Reply(201, json!({ "status": "success", "data": data })))
    }

    pub fn release_lease(&mut self, now: Duration, id: &str, nonce: Option<&str>) -> Result<Reply, Reply> {
        let m = self.machine_mut(id)?;
        match &m.lease {
            Some(l) if l.expires > now && Some(l.nonce.as_str()) != nonce => {
                Err(error(409, format!("aborted: lease currently held by {}", l.owner)))
            }
            Some(_) => {
                m.lease = None;
                Ok(Reply(200, json!({ "status": "success" })))
            }
            None => Err(error(404, "lease not found")),
        }
    }
}
