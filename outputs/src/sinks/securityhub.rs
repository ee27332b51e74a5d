//! The `securityhub` output: findings imported into AWS Security Hub with
//! `BatchImportFindings`, in ASFF.
//!
//! The ASFF JSON of `vigil_findings::asff::to_asff` is the single source of truth: this module
//! only carries that JSON into the SDK's `AwsSecurityFinding`, key by key, and refuses a key it
//! does not know (so the document and what is sent cannot drift apart; a unit test converts
//! every shape `to_asff` emits). At most 100 findings and 240 KB go in one call; a batch with
//! the same finding twice (new, then updated) is split so each call holds one state per id.
//! Each `FailedFindings` entry is classified on its own.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_securityhub::types::{
    AwsSecurityFinding, Malware, MalwareState, RecordState, Resource, ResourceDetails, Severity,
    SeverityLabel, Workflow, WorkflowStatus,
};
use aws_sdk_securityhub::Client;
use serde_json::{Map, Value};
use vigil_findings::asff::{to_asff, Target};

use crate::config::SecurityHubConfig;
use crate::error::OutputError;
use crate::sink::{EntryResult, Record, SendError, Sink, SinkContext};
use crate::sinks::aws;

/// Security Hub's limits: findings per `BatchImportFindings` call, and bytes per request.
pub const MAX_FINDINGS_PER_CALL: usize = 100;
pub const MAX_REQUEST_BYTES: usize = 240 * 1024;
/// Room for the request's own JSON around the findings.
const ENVELOPE_BYTES: usize = 64;

pub struct SecurityHubSink {
    name: String,
    client: Client,
    target: Target,
}

impl SecurityHubSink {
    /// A sink with credentials from the standard chain.
    pub async fn new(
        name: &str,
        cfg: &SecurityHubConfig,
        ctx: &SinkContext,
    ) -> Result<Self, OutputError> {
        let shared = aws::sdk_config(cfg.region.as_deref(), ctx).await;
        Self::from_sdk_config(name, cfg, ctx, &shared)
    }

    /// A sink over an SDK configuration built by the caller (tests give static credentials).
    /// The account is the output's `account_id`, else the host's; unknown is a setup error
    /// rather than an STS call at every start.
    pub fn from_sdk_config(
        name: &str,
        cfg: &SecurityHubConfig,
        ctx: &SinkContext,
        shared: &SdkConfig,
    ) -> Result<Self, OutputError> {
        let region = aws::region(name, cfg.region.as_deref(), ctx, shared)?;
        let account_id = cfg
            .account_id
            .clone()
            .or_else(|| ctx.account_id.clone())
            .ok_or_else(|| OutputError::Setup {
                name: name.to_owned(),
                message: "no AWS account: set `account_id` in the output or [findings] \
                          (AwsAccountId of every finding)"
                    .into(),
            })?;
        let mut conf = aws_sdk_securityhub::config::Builder::from(shared)
            .region(aws_config::Region::new(region.clone()));
        if let Some(ep) = &cfg.endpoint_url {
            conf = conf.endpoint_url(ep);
        }
        Ok(Self {
            name: name.to_owned(),
            client: Client::from_conf(conf.build()),
            target: Target {
                account_id,
                region,
                product_arn: cfg.product_arn.clone(),
            },
        })
    }

    /// Where findings go: account, region, product ARN.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Imports findings given as ASFF JSON, one result per finding in order. What [`Sink::send`]
    /// does after `to_asff`; public so a test can hand Security Hub a finding it rejects.
    pub async fn import(&self, findings: &[Value]) -> Result<Vec<EntryResult>, SendError> {
        let mut results: Vec<Option<EntryResult>> = vec![None; findings.len()];
        // (index, id, converted, size) of what is sent, in calls.
        let mut calls: Vec<Vec<(usize, String, AwsSecurityFinding)>> = Vec::new();
        let mut call: Vec<(usize, String, AwsSecurityFinding)> = Vec::new();
        let mut bytes = ENVELOPE_BYTES;
        for (i, v) in findings.iter().enumerate() {
            let size = v.to_string().len() + 1;
            if size + ENVELOPE_BYTES > MAX_REQUEST_BYTES {
                results[i] = Some(EntryResult::Rejected(format!(
                    "the finding is {size} bytes of ASFF, over Security Hub's \
                     {MAX_REQUEST_BYTES}-byte request limit"
                )));
                continue;
            }
            let converted = match convert(v) {
                Ok(f) => f,
                Err(e) => {
                    results[i] = Some(EntryResult::Rejected(format!("not valid ASFF: {e}")));
                    continue;
                }
            };
            let id = converted.id().unwrap_or_default().to_owned();
            if call.len() == MAX_FINDINGS_PER_CALL
                || bytes + size > MAX_REQUEST_BYTES
                || call.iter().any(|(_, other, _)| *other == id)
            {
                calls.push(std::mem::take(&mut call));
                bytes = ENVELOPE_BYTES;
            }
            bytes += size;
            call.push((i, id, converted));
        }
        if !call.is_empty() {
            calls.push(call);
        }
        let mut sent_any = false;
        for call in calls {
            let indices: Vec<(usize, String)> =
                call.iter().map(|(i, id, _)| (*i, id.clone())).collect();
            let out = self
                .client
                .batch_import_findings()
                .set_findings(Some(call.into_iter().map(|(_, _, f)| f).collect()))
                .send()
                .await;
            match out {
                Ok(out) => {
                    sent_any = true;
                    let failed: HashMap<&str, EntryResult> = out
                        .failed_findings()
                        .iter()
                        .map(|f| {
                            let code = f.error_code().unwrap_or("Unknown");
                            let why = format!("{code}: {}", f.error_message().unwrap_or(""));
                            let r = if aws::transient_code(code) {
                                EntryResult::Retry(why)
                            } else {
                                EntryResult::Rejected(why)
                            };
                            (f.id().unwrap_or(""), r)
                        })
                        .collect();
                    for (i, id) in indices {
                        results[i] = Some(
                            failed
                                .get(id.as_str())
                                .cloned()
                                .unwrap_or(EntryResult::Delivered),
                        );
                    }
                }
                // Nothing arrived yet: the whole batch is retried (or held, if fatal).
                Err(e) if !sent_any => return Err(aws::classify("BatchImportFindings", &e)),
                // Earlier calls of this batch arrived: say so, and retry from here.
                Err(e) => {
                    let why = aws::classify("BatchImportFindings", &e).to_string();
                    for (i, _) in indices {
                        results[i] = Some(EntryResult::Retry(why.clone()));
                    }
                }
            }
        }
        Ok(aws::settle(results))
    }
}

#[async_trait]
impl Sink for SecurityHubSink {
    fn max_batch(&self) -> usize {
        MAX_FINDINGS_PER_CALL
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<EntryResult>, SendError> {
        let asff: Vec<Value> = batch
            .iter()
            .map(|r| to_asff(&r.finding, &self.target))
            .collect();
        tracing::debug!(output = %self.name, findings = asff.len(), "BatchImportFindings");
        self.import(&asff).await
    }
}

/// Why an ASFF object could not be carried into the SDK's types.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{0}: unknown ASFF key (vigil's ASFF and its Security Hub output disagree)")]
    UnknownKey(String),
    #[error("{0}: expected {1}")]
    Type(String, &'static str),
}

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, ConvertError> {
    v.as_object()
        .ok_or_else(|| ConvertError::Type(at.to_owned(), "an object"))
}

fn string(v: &Value, at: &str) -> Result<String, ConvertError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| ConvertError::Type(at.to_owned(), "a string"))
}

fn array<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, ConvertError> {
    v.as_array()
        .ok_or_else(|| ConvertError::Type(at.to_owned(), "an array"))
}

fn string_map(v: &Value, at: &str) -> Result<HashMap<String, String>, ConvertError> {
    obj(v, at)?
        .iter()
        .map(|(k, v)| Ok((k.clone(), string(v, &format!("{at}.{k}"))?)))
        .collect()
}

/// Carries one ASFF object (as `to_asff` emits it) into the SDK's `AwsSecurityFinding`.
/// Every key `to_asff` can emit is handled; any other key is an error.
pub fn convert(v: &Value) -> Result<AwsSecurityFinding, ConvertError> {
    let mut b = AwsSecurityFinding::builder();
    for (k, v) in obj(v, "finding")? {
        let s = || string(v, k);
        b = match k.as_str() {
            "SchemaVersion" => b.schema_version(s()?),
            "Id" => b.id(s()?),
            "ProductArn" => b.product_arn(s()?),
            "GeneratorId" => b.generator_id(s()?),
            "AwsAccountId" => b.aws_account_id(s()?),
            "Types" => b.set_types(Some(
                array(v, k)?
                    .iter()
                    .map(|t| string(t, "Types[]"))
                    .collect::<Result<_, _>>()?,
            )),
            "CreatedAt" => b.created_at(s()?),
            "UpdatedAt" => b.updated_at(s()?),
            "FirstObservedAt" => b.first_observed_at(s()?),
            "LastObservedAt" => b.last_observed_at(s()?),
            "Severity" => b.severity(severity(v)?),
            "Title" => b.title(s()?),
            "Description" => b.description(s()?),
            "Resources" => b.set_resources(Some(
                array(v, k)?
                    .iter()
                    .map(resource)
                    .collect::<Result<_, _>>()?,
            )),
            "Malware" => b.set_malware(Some(
                array(v, k)?.iter().map(malware).collect::<Result<_, _>>()?,
            )),
            "RecordState" => b.record_state(RecordState::from(s()?.as_str())),
            "Workflow" => {
                let mut w = Workflow::builder();
                for (k, v) in obj(v, "Workflow")? {
                    w = match k.as_str() {
                        "Status" => {
                            w.status(WorkflowStatus::from(string(v, "Workflow.Status")?.as_str()))
                        }
                        other => return Err(ConvertError::UnknownKey(format!("Workflow.{other}"))),
                    };
                }
                b.workflow(w.build())
            }
            "ProductFields" => b.set_product_fields(Some(string_map(v, k)?)),
            "CompanyName" => b.company_name(s()?),
            "ProductName" => b.product_name(s()?),
            other => return Err(ConvertError::UnknownKey(other.to_owned())),
        };
    }
    Ok(b.build())
}

fn severity(v: &Value) -> Result<Severity, ConvertError> {
    let mut b = Severity::builder();
    for (k, v) in obj(v, "Severity")? {
        let at = format!("Severity.{k}");
        b = match k.as_str() {
            "Label" => b.label(SeverityLabel::from(string(v, &at)?.as_str())),
            "Original" => b.original(string(v, &at)?),
            _ => return Err(ConvertError::UnknownKey(at)),
        };
    }
    Ok(b.build())
}

fn resource(v: &Value) -> Result<Resource, ConvertError> {
    let mut b = Resource::builder();
    for (k, v) in obj(v, "Resources[]")? {
        let at = format!("Resources[].{k}");
        b = match k.as_str() {
            "Type" => b.r#type(string(v, &at)?),
            "Id" => b.id(string(v, &at)?),
            "Region" => b.region(string(v, &at)?),
            "Details" => {
                let mut d = ResourceDetails::builder();
                for (k, v) in obj(v, &at)? {
                    let at = format!("{at}.{k}");
                    d = match k.as_str() {
                        "Other" => d.set_other(Some(string_map(v, &at)?)),
                        _ => return Err(ConvertError::UnknownKey(at)),
                    };
                }
                b.details(d.build())
            }
            _ => return Err(ConvertError::UnknownKey(at)),
        };
    }
    Ok(b.build())
}

fn malware(v: &Value) -> Result<Malware, ConvertError> {
    let mut b = Malware::builder();
    for (k, v) in obj(v, "Malware[]")? {
        let at = format!("Malware[].{k}");
        b = match k.as_str() {
            "Name" => b.name(string(v, &at)?),
            "Path" => b.path(string(v, &at)?),
            "State" => b.state(MalwareState::from(string(v, &at)?.as_str())),
            _ => return Err(ConvertError::UnknownKey(at)),
        };
    }
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vigil_findings::{Action, FileFacts, Finding, Resource as Host, Severity as Sev};

    fn finding(instance: bool, owner: bool, description: bool) -> Finding {
        let mut f = Finding::new(
            Host {
                hostname: "web-1".into(),
                instance_id: instance.then(|| "i-0abc123".into()),
                region: instance.then(|| "eu-west-1".into()),
                account_id: instance.then(|| "123456789012".into()),
            },
            FileFacts {
                path: "/srv/www/shell.php".into(),
                sha256: "ab".repeat(32),
                size: 1234,
                uid: 33,
                owner: owner.then(|| "www-data".into()),
                mtime: 1_764_000_000,
            },
            "Php_Webshell_C99_1",
            "yara",
            Sev::High,
            description.then(|| "c99 web shell".into()),
            7,
            "0.1.0",
            1_764_600_000,
        );
        if !owner {
            f.action = Action::Quarantined;
        }
        f
    }

    fn target() -> Target {
        Target {
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            product_arn: None,
        }
    }

    /// Every shape `to_asff` emits converts (an unknown key is an error), and each value lands
    /// in its SDK field: the JSON and what is sent cannot drift apart.
    #[test]
    fn every_key_of_the_asff_is_carried() {
        for (instance, owner, description) in [
            (true, true, true),
            (false, false, false),
            (true, false, true),
        ] {
            for f in [
                finding(instance, owner, description),
                finding(instance, owner, description).resolved(1_764_700_000),
            ] {
                let j = to_asff(&f, &target());
                let s = convert(&j).unwrap();
                let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
                for k in keys {
                    let v = &j[k.as_str()];
                    match k.as_str() {
                        "SchemaVersion" => assert_eq!(s.schema_version(), v.as_str()),
                        "Id" => assert_eq!(s.id(), v.as_str()),
                        "ProductArn" => assert_eq!(s.product_arn(), v.as_str()),
                        "GeneratorId" => assert_eq!(s.generator_id(), v.as_str()),
                        "AwsAccountId" => assert_eq!(s.aws_account_id(), v.as_str()),
                        "Types" => assert_eq!(s.types(), [v[0].as_str().unwrap()]),
                        "CreatedAt" => assert_eq!(s.created_at(), v.as_str()),
                        "UpdatedAt" => assert_eq!(s.updated_at(), v.as_str()),
                        "FirstObservedAt" => assert_eq!(s.first_observed_at(), v.as_str()),
                        "LastObservedAt" => assert_eq!(s.last_observed_at(), v.as_str()),
                        "Severity" => {
                            let sev = s.severity().unwrap();
                            assert_eq!(sev.label().unwrap().as_str(), v["Label"]);
                            assert_eq!(sev.original(), v["Original"].as_str());
                        }
                        "Title" => assert_eq!(s.title(), v.as_str()),
                        "Description" => assert_eq!(s.description(), v.as_str()),
                        "Resources" => {
                            let r = &s.resources()[0];
                            assert_eq!(s.resources().len(), 1);
                            assert_eq!(r.r#type(), v[0]["Type"].as_str());
                            assert_eq!(r.id(), v[0]["Id"].as_str());
                            assert_eq!(r.region(), v[0]["Region"].as_str());
                            let other = r.details().and_then(|d| d.other());
                            assert_eq!(
                                other.and_then(|o| o.get("hostname")).map(String::as_str),
                                v[0]["Details"]["Other"]["hostname"].as_str()
                            );
                        }
                        "Malware" => {
                            let m = &s.malware()[0];
                            assert_eq!(m.name(), v[0]["Name"].as_str());
                            assert_eq!(m.path(), v[0]["Path"].as_str());
                            assert_eq!(m.state().map(|x| x.as_str()), v[0]["State"].as_str());
                        }
                        "RecordState" => {
                            assert_eq!(s.record_state().map(|x| x.as_str()), v.as_str())
                        }
                        "Workflow" => assert_eq!(
                            s.workflow().and_then(|w| w.status()).map(|x| x.as_str()),
                            v["Status"].as_str()
                        ),
                        "ProductFields" => {
                            let pf = s.product_fields().unwrap();
                            assert_eq!(pf.len(), v.as_object().unwrap().len());
                            for (k, x) in v.as_object().unwrap() {
                                assert_eq!(pf.get(k).map(String::as_str), x.as_str(), "{k}");
                            }
                        }
                        "CompanyName" => assert_eq!(s.company_name(), v.as_str()),
                        "ProductName" => assert_eq!(s.product_name(), v.as_str()),
                        other => panic!("{other}: a key this test does not check"),
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        let mut j = to_asff(&finding(true, true, true), &target());
        j["Malware"][0]["Hash"] = Value::String("x".into());
        assert!(convert(&j)
            .unwrap_err()
            .to_string()
            .contains("Malware[].Hash"));
        let mut j = to_asff(&finding(true, true, true), &target());
        j["Title"] = Value::from(5);
        assert!(convert(&j).unwrap_err().to_string().contains("Title"));
        assert!(convert(&Value::Null).is_err());
    }
}
