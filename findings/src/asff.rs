//! A finding in the AWS Security Finding Format (ASFF), for Security Hub's
//! `BatchImportFindings`.
//!
//! Every required field is set: `SchemaVersion` (2018-10-08), `Id` (the stable finding id, so
//! a re-detection updates the same Security Hub finding), `ProductArn` (default
//! `arn:aws:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`, the account's own product for
//! custom integrations), `GeneratorId` (the signature), `AwsAccountId`, `Types` (in the TTPs
//! namespace, as GuardDuty's malware findings: `TTPs/Execution/Execution:EC2-MaliciousFile` on
//! an EC2 instance, `…:Host-MaliciousFile` elsewhere), `CreatedAt`/`UpdatedAt` (first and last
//! seen, RFC 3339), `Severity.Label`, `Title`, `Description` and `Resources` (the EC2 instance
//! by ARN, or the host as `Other`). Also `Malware[]` (Name cut to 64 and Path to 512
//! characters, ASFF's limits; State OBSERVED or REMOVED), `RecordState` (ACTIVE, or ARCHIVED
//! once resolved), `Workflow.Status` (NEW, or RESOLVED), and the file's facts in
//! `ProductFields` (strings, as ASFF requires).

use serde_json::{json, Map, Value};

use crate::model::{Action, Finding, State};

pub const SCHEMA_VERSION: &str = "2018-10-08";
/// ASFF's length limits.
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_MALWARE_NAME: usize = 64;
pub const MAX_MALWARE_PATH: usize = 512;

/// Where findings are imported: the account and region, and the product ARN when not the
/// account's default one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub account_id: String,
    pub region: String,
    pub product_arn: Option<String>,
}

impl Target {
    pub fn product_arn(&self) -> String {
        self.product_arn.clone().unwrap_or_else(|| {
            format!(
                "arn:aws:securityhub:{r}:{a}:product/{a}/default",
                r = self.region,
                a = self.account_id
            )
        })
    }
}

/// At most `max` characters (not bytes: ASFF counts characters), on a character boundary.
pub fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// The finding as one ASFF object.
pub fn to_asff(f: &Finding, target: &Target) -> Value {
    let on_ec2 = f.resource.instance_id.is_some();
    let resource = match &f.resource.instance_id {
        Some(id) => json!({
            "Type": "AwsEc2Instance",
            "Id": format!(
                "arn:aws:ec2:{}:{}:instance/{id}",
                f.resource.region.as_deref().unwrap_or(&target.region),
                f.resource.account_id.as_deref().unwrap_or(&target.account_id)
            ),
            "Region": f.resource.region.as_deref().unwrap_or(&target.region),
            "Details": {"Other": {"hostname": f.resource.hostname}},
        }),
        None => json!({
            "Type": "Other",
            "Id": format!("host/{}", f.resource.hostname),
            "Region": target.region,
        }),
    };
    let classifier = if on_ec2 {
        "Execution:EC2-MaliciousFile"
    } else {
        "Execution:Host-MaliciousFile"
    };
    let resolved = f.state == State::Resolved;
    let title = cut(
        &format!("Malicious file {} on {}", f.threat, f.resource.hostname),
        MAX_TITLE,
    );
    let description = cut(
        &format!(
            "{} ({} signature, database {}) matched {} (SHA-256 {}, {} bytes){}.",
            f.threat,
            f.kind,
            f.db_version,
            f.file.path,
            f.file.sha256,
            f.file.size,
            f.description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        MAX_DESCRIPTION,
    );
    let mut product_fields = Map::new();
    for (k, v) in [
        ("vigil/sha256", f.file.sha256.clone()),
        ("vigil/size", f.file.size.to_string()),
        ("vigil/uid", f.file.uid.to_string()),
        ("vigil/mtime", rfc3339(f.file.mtime)),
        ("vigil/signature_kind", f.kind.clone()),
        ("vigil/db_version", f.db_version.to_string()),
        ("vigil/engine_version", f.engine_version.clone()),
        ("vigil/action", action(f.action).to_owned()),
    ] {
        product_fields.insert(k.to_owned(), Value::String(v));
    }
    if let Some(o) = &f.file.owner {
        product_fields.insert("vigil/owner".into(), Value::String(o.clone()));
    }
    json!({
        "SchemaVersion": SCHEMA_VERSION,
        "Id": f.id,
        "ProductArn": target.product_arn(),
        "GeneratorId": cut(&format!("vigil/{}/{}", f.kind, f.threat), 512),
        "AwsAccountId": f.resource.account_id.as_deref().unwrap_or(&target.account_id),
        "Types": [format!("TTPs/Execution/{classifier}")],
        "CreatedAt": rfc3339(f.first_seen),
        "UpdatedAt": rfc3339(f.last_seen),
        "FirstObservedAt": rfc3339(f.first_seen),
        "LastObservedAt": rfc3339(f.last_seen),
        "Severity": {"Label": f.severity.label(), "Original": f.severity.label()},
        "Title": title,
        "Description": description,
        "Resources": [resource],
        "Malware": [{
            "Name": cut(&f.threat, MAX_MALWARE_NAME),
            "Path": cut(&f.file.path, MAX_MALWARE_PATH),
            "State": if f.action == Action::None { "OBSERVED" } else { "REMOVED" },
        }],
        "RecordState": if resolved { "ARCHIVED" } else { "ACTIVE" },
        "Workflow": {"Status": if resolved { "RESOLVED" } else { "NEW" }},
        "ProductFields": product_fields,
        "CompanyName": "vigil",
        "ProductName": "vigil",
    })
}

fn action(a: Action) -> &'static str {
    match a {
        Action::None => "none",
        Action::Quarantined => "quarantined",
        Action::Removed => "removed",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::tests::sample;

    fn target() -> Target {
        Target {
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            product_arn: None,
        }
    }

    #[test]
    fn every_required_field_is_set() {
        let a = to_asff(&sample(1_764_600_000), &target());
        for field in [
            "SchemaVersion",
            "Id",
            "ProductArn",
            "GeneratorId",
            "AwsAccountId",
            "Types",
            "CreatedAt",
            "UpdatedAt",
            "Severity",
            "Title",
            "Description",
            "Resources",
        ] {
            assert!(!a[field].is_null(), "{field} missing: {a}");
        }
        assert_eq!(
            a["ProductArn"],
            "arn:aws:securityhub:eu-west-1:123456789012:product/123456789012/default"
        );
        assert_eq!(a["Types"][0], "TTPs/Execution/Execution:EC2-MaliciousFile");
        assert_eq!(a["Severity"]["Label"], "HIGH");
        assert_eq!(a["CreatedAt"], "2025-12-01T14:40:00Z");
        assert_eq!(
            a["Resources"][0]["Id"],
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc123"
        );
        assert_eq!(a["RecordState"], "ACTIVE");
        assert_eq!(a["Workflow"]["Status"], "NEW");
        // ProductFields values are strings only.
        assert!(a["ProductFields"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string));
    }

    #[test]
    fn limits_are_cut_in_characters_and_resolution_archives() {
        let mut f = sample(1);
        f.threat = "Ä".repeat(100);
        f.file.path = format!("/{}", "ü".repeat(600));
        f.resource.instance_id = None;
        let a = to_asff(&f.resolved(2), &target());
        assert_eq!(
            a["Malware"][0]["Name"].as_str().unwrap().chars().count(),
            64
        );
        assert_eq!(
            a["Malware"][0]["Path"].as_str().unwrap().chars().count(),
            512
        );
        assert!(a["Title"].as_str().unwrap().chars().count() <= MAX_TITLE);
        assert!(a["Description"].as_str().unwrap().chars().count() <= MAX_DESCRIPTION);
        assert_eq!(a["Types"][0], "TTPs/Execution/Execution:Host-MaliciousFile");
        assert_eq!(a["Resources"][0]["Type"], "Other");
        assert_eq!(a["RecordState"], "ARCHIVED");
        assert_eq!(a["Workflow"]["Status"], "RESOLVED");
    }
}
