//! A finding as an EventBridge event: `source` "vigil", `detail-type` "Vigil Malware Scan
//! Result", and a `detail` modelled on GuardDuty's "GuardDuty Malware Protection Object Scan
//! Result", so rules and consumers written for that read this with small changes:
//!
//! ```json
//! {"schemaVersion": "1.0",
//!  "scanStatus": "COMPLETED",
//!  "resourceType": "EC2_INSTANCE" | "HOST",
//!  "findingId": "…64 hex…",
//!  "state": "ACTIVE" | "RESOLVED",
//!  "resource": {"hostname", "instanceId"?, "region"?, "accountId"?},
//!  "fileDetails": {"path", "sha256", "size", "uid", "owner"?, "mtime"},
//!  "scanResultDetails": {"scanResultStatus": "THREATS_FOUND" | "NO_THREATS_FOUND",
//!                        "threats": [{"name", "kind", "severity", "description"?}]},
//!  "action": "NONE" | "QUARANTINED" | "REMOVED",
//!  "databaseVersion", "engineVersion", "firstSeen", "lastSeen"}
//! ```
//!
//! A resolved finding (a clean rescan) says NO_THREATS_FOUND with no threats. `PutEvents` takes
//! at most 10 entries per call, each under 256 KB: [`entry_size`] is what counts against that.

use serde_json::{json, Value};

use crate::model::{Action, Finding, State};

pub const SOURCE: &str = "vigil";
pub const DETAIL_TYPE: &str = "Vigil Malware Scan Result";
pub const MAX_ENTRIES_PER_CALL: usize = 10;
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

pub fn detail(f: &Finding) -> Value {
    let resolved = f.state == State::Resolved;
    let threats = if resolved {
        json!([])
    } else {
        let mut t = json!({
            "name": f.threat,
            "kind": f.kind,
            "severity": f.severity.label(),
        });
        if let Some(d) = &f.description {
            t["description"] = Value::String(d.clone());
        }
        json!([t])
    };
    let mut resource = json!({"hostname": f.resource.hostname});
    for (k, v) in [
        ("instanceId", &f.resource.instance_id),
        ("region", &f.resource.region),
        ("accountId", &f.resource.account_id),
    ] {
        if let Some(v) = v {
            resource[k] = Value::String(v.clone());
        }
    }
    let mut file = json!({
        "path": f.file.path,
        "sha256": f.file.sha256,
        "size": f.file.size,
        "uid": f.file.uid,
        "mtime": f.file.mtime,
    });
    if let Some(o) = &f.file.owner {
        file["owner"] = Value::String(o.clone());
    }
    json!({
        "schemaVersion": "1.0",
        "scanStatus": "COMPLETED",
        "resourceType": if f.resource.instance_id.is_some() { "EC2_INSTANCE" } else { "HOST" },
        "findingId": f.id,
        "state": if resolved { "RESOLVED" } else { "ACTIVE" },
        "resource": resource,
        "fileDetails": file,
        "scanResultDetails": {
            "scanResultStatus": if resolved { "NO_THREATS_FOUND" } else { "THREATS_FOUND" },
            "threats": threats,
        },
        "action": match f.action {
            Action::None => "NONE",
            Action::Quarantined => "QUARANTINED",
            Action::Removed => "REMOVED",
        },
        "databaseVersion": f.db_version,
        "engineVersion": f.engine_version,
        "firstSeen": f.first_seen,
        "lastSeen": f.last_seen,
    })
}

/// What an entry counts against `PutEvents`' 256 KB limit: the UTF-8 bytes of `Source`,
/// `DetailType`, `Detail` and each resource.
pub fn entry_size(detail_json: &str, resources: &[String]) -> usize {
    SOURCE.len()
        + DETAIL_TYPE.len()
        + detail_json.len()
        + resources.iter().map(String::len).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::sample;

    #[test]
    fn detail_follows_the_documented_schema() {
        let d = detail(&sample(5));
        assert_eq!(d["scanResultDetails"]["scanResultStatus"], "THREATS_FOUND");
        assert_eq!(
            d["scanResultDetails"]["threats"][0]["name"],
            "Php_Webshell_C99_1"
        );
        assert_eq!(d["scanResultDetails"]["threats"][0]["severity"], "HIGH");
        assert_eq!(d["resourceType"], "EC2_INSTANCE");
        assert_eq!(d["resource"]["instanceId"], "i-0abc123");
        assert_eq!(d["fileDetails"]["owner"], "www-data");
        assert_eq!(d["action"], "NONE");
        let r = detail(&sample(5).resolved(6));
        assert_eq!(
            r["scanResultDetails"]["scanResultStatus"],
            "NO_THREATS_FOUND"
        );
        assert_eq!(r["scanResultDetails"]["threats"], json!([]));
        assert_eq!(r["state"], "RESOLVED");
        let text = d.to_string();
        assert!(entry_size(&text, &[]) < MAX_ENTRY_BYTES);
        assert_eq!(entry_size("{}", &["arn:x".into()]), 5 + 25 + 2 + 5);
    }
}
