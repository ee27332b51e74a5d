//! The host a finding is about ([`Resource`]): its hostname, and on EC2 its instance id,
//! region and account. Configured values win; what is missing comes from IMDSv2, asked once
//! per process with a short timeout and a single attempt, so a host off EC2 gives up quickly
//! (and says so once, at debug level) instead of stalling every scan.

use std::sync::OnceLock;
use std::time::Duration;

use vigil_findings::Resource;

use crate::config::FindingsConfig;

/// What IMDSv2 said about this instance; each part absent when it could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceFacts {
    pub instance_id: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
}

/// The IMDS answer of this process, from its first lookup.
static IMDS: OnceLock<InstanceFacts> = OnceLock::new();

/// The host's resource: configured values, the rest from IMDSv2 when enabled and needed.
/// Blocks for at most about the IMDS timeout, once per process.
pub fn resolve(cfg: &FindingsConfig) -> Resource {
    let mut r = Resource {
        hostname: cfg.hostname.clone().unwrap_or_else(system_hostname),
        instance_id: cfg.instance_id.clone(),
        region: cfg.region.clone(),
        account_id: cfg.account_id.clone(),
    };
    let missing = r.instance_id.is_none() || r.region.is_none() || r.account_id.is_none();
    if cfg.imds && missing {
        let facts = IMDS.get_or_init(|| lookup_blocking(&cfg.imds_endpoint, cfg.imds_timeout));
        r.instance_id = r.instance_id.or_else(|| facts.instance_id.clone());
        r.region = r.region.or_else(|| facts.region.clone());
        r.account_id = r.account_id.or_else(|| facts.account_id.clone());
    }
    r
}

/// [`lookup`] from synchronous code, inside or outside a tokio runtime: on a thread of its own
/// with a runtime of its own.
pub fn lookup_blocking(endpoint: &str, timeout: Duration) -> InstanceFacts {
    std::thread::scope(|s| {
        s.spawn(|| {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(lookup(endpoint, timeout)),
                Err(e) => {
                    tracing::debug!(error = %e, "no runtime for the IMDS lookup");
                    InstanceFacts::default()
                }
            }
        })
        .join()
        .unwrap_or_default()
    })
}

/// Asks IMDSv2 at `endpoint` (token, then instance id, region and the identity document's
/// account), each request bounded by `timeout`, one attempt, no retries.
pub async fn lookup(endpoint: &str, timeout: Duration) -> InstanceFacts {
    let client = match aws_config::imds::Client::builder().endpoint(endpoint) {
        Ok(b) => b
            .max_attempts(1)
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .operation_timeout(timeout)
            .build(),
        Err(e) => {
            tracing::debug!(endpoint, error = %e, "IMDS endpoint unusable");
            return InstanceFacts::default();
        }
    };
    let instance_id = match client.get("/latest/meta-data/instance-id").await {
        Ok(v) => Some(String::from(v)),
        Err(e) => {
            // Off EC2 this is the usual outcome: said once, quietly, and not asked again.
            tracing::debug!(endpoint, error = %e, "no instance metadata (not on EC2?)");
            return InstanceFacts::default();
        }
    };
    let region = client
        .get("/latest/meta-data/placement/region")
        .await
        .ok()
        .map(String::from);
    let account_id = client
        .get("/latest/dynamic/instance-identity/document")
        .await
        .ok()
        .and_then(|doc| {
            serde_json::from_str::<serde_json::Value>(doc.as_ref())
                .ok()?
                .get("accountId")?
                .as_str()
                .map(str::to_owned)
        });
    InstanceFacts {
        instance_id: instance_id.filter(|s| valid_fact(s)),
        region: region.filter(|s| valid_fact(s)),
        account_id: account_id.filter(|s| valid_fact(s)),
    }
}

/// IMDS answers go into findings and ARNs: short printable tokens only.
fn valid_fact(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The kernel's hostname, else /etc/hostname, else "localhost".
pub fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let s = std::fs::read_to_string(p).ok()?;
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        })
        .unwrap_or_else(|| "localhost".into())
}
