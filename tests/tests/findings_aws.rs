//! The AWS findings outputs against a real AWS-compatible endpoint: moto's server, started per
//! test (skipped with a SKIP line when moto is not installed). Findings go through the sinks
//! the agent uses, over HTTP, signed; what arrived is read back with the services' own APIs:
//! Security Hub's `GetFindings`, and SQS queues behind an EventBridge rule and an SNS
//! subscription.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_findings::{FileFacts, Finding, Resource, Severity};
use vigil_outputs::config::{EventBridgeConfig, SecurityHubConfig, SnsConfig};
use vigil_outputs::sinks::eventbridge::EventBridgeSink;
use vigil_outputs::sinks::securityhub::SecurityHubSink;
use vigil_outputs::sinks::sns::SnsSink;
use vigil_outputs::{EntryResult, Event, Record, SendError, Sink, SinkContext};
use vigil_tests::moto::{MotoServer, ACCOUNT, REGION};

const T0: i64 = 1_764_600_000;

fn finding(path: &str, threat: &str, severity: Severity, on_ec2: bool) -> Finding {
    Finding::new(
        Resource {
            hostname: "web-1".into(),
            instance_id: on_ec2.then(|| "i-0abc1234567890def".into()),
            region: on_ec2.then(|| REGION.into()),
            account_id: on_ec2.then(|| ACCOUNT.into()),
        },
        FileFacts {
            path: path.into(),
            sha256: "ab".repeat(32),
            size: 1234,
            uid: 33,
            owner: Some("www-data".into()),
            mtime: T0 - 86_400,
        },
        threat,
        "yara",
        severity,
        Some("c99 web shell".into()),
        7,
        "0.1.0",
        T0,
    )
}

fn record(seq: u64, event: Event, finding: Finding) -> Record {
    Record {
        seq,
        event,
        queued_at: finding.last_seen,
        finding,
    }
}

fn ctx() -> SinkContext {
    SinkContext {
        region: Some(REGION.into()),
        account_id: Some(ACCOUNT.into()),
    }
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).unwrap().to_string()
}

fn security_hub(moto: &MotoServer) -> SecurityHubSink {
    let cfg = SecurityHubConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        account_id: None,
        product_arn: None,
    };
    // Credentials without an endpoint: the output's endpoint_url is what reaches moto.
    SecurityHubSink::from_sdk_config("securityhub", &cfg, &ctx(), &moto.credentials_config())
        .unwrap()
}

async fn hub_findings(moto: &MotoServer) -> Vec<aws_sdk_securityhub::types::AwsSecurityFinding> {
    moto.securityhub()
        .get_findings()
        .send()
        .await
        .unwrap()
        .findings()
        .to_vec()
}

#[tokio::test]
async fn security_hub_gets_every_required_asff_field() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let sink = security_hub(&moto);
    assert_eq!(sink.max_batch(), 100);
    let f = finding(
        "/srv/www/shell.php",
        "Php_Webshell_C99_1",
        Severity::High,
        true,
    );
    let got = sink
        .send(&[record(1, Event::New, f.clone())])
        .await
        .unwrap();
    assert_eq!(got, [EntryResult::Delivered]);

    let all = hub_findings(&moto).await;
    assert_eq!(all.len(), 1);
    let h = &all[0];
    assert_eq!(h.schema_version(), Some("2018-10-08"));
    assert_eq!(h.id(), Some(f.id.as_str()));
    assert_eq!(
        h.product_arn(),
        Some("arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default")
    );
    assert_eq!(h.generator_id(), Some("vigil/yara/Php_Webshell_C99_1"));
    assert_eq!(h.aws_account_id(), Some(ACCOUNT));
    assert_eq!(h.types(), ["TTPs/Execution/Execution:EC2-MaliciousFile"]);
    assert_eq!(h.created_at(), Some(rfc3339(T0).as_str()));
    assert_eq!(h.updated_at(), Some(rfc3339(T0).as_str()));
    assert_eq!(
        h.severity().and_then(|s| s.label()).map(|l| l.as_str()),
        Some("HIGH")
    );
    assert_eq!(
        h.title(),
        Some("Malicious file Php_Webshell_C99_1 on web-1")
    );
    let d = h.description().unwrap();
    assert!(
        d.contains("/srv/www/shell.php") && d.contains(&f.file.sha256),
        "{d}"
    );
    let r = &h.resources()[0];
    assert_eq!(r.r#type(), Some("AwsEc2Instance"));
    assert_eq!(
        r.id(),
        Some("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234567890def")
    );
    assert_eq!(h.malware()[0].name(), Some("Php_Webshell_C99_1"));
    assert_eq!(h.malware()[0].path(), Some("/srv/www/shell.php"));
    assert_eq!(h.record_state().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(
        h.workflow().and_then(|w| w.status()).map(|s| s.as_str()),
        Some("NEW")
    );
    assert_eq!(
        h.product_fields()
            .unwrap()
            .get("vigil/owner")
            .map(String::as_str),
        Some("www-data")
    );
}

#[tokio::test]
async fn a_rescan_updates_the_finding_and_a_clean_rescan_archives_it() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let sink = security_hub(&moto);
    let first = finding(
        "/srv/www/a.php",
        "Php_Webshell_C99_1",
        Severity::High,
        false,
    );
    sink.send(&[record(1, Event::New, first.clone())])
        .await
        .unwrap();

    // The nightly rescan finds it again: the same id, a later last_seen.
    let again = first.seen_again(&Finding {
        last_seen: T0 + 3600,
        ..first.clone()
    });
    assert_eq!(
        sink.send(&[record(2, Event::Updated, again)])
            .await
            .unwrap(),
        [EntryResult::Delivered]
    );
    let all = hub_findings(&moto).await;
    assert_eq!(all.len(), 1, "updated, not duplicated");
    assert_eq!(all[0].id(), Some(first.id.as_str()));
    assert_eq!(all[0].created_at(), Some(rfc3339(T0).as_str()));
    assert_eq!(all[0].updated_at(), Some(rfc3339(T0 + 3600).as_str()));
    assert_eq!(all[0].last_observed_at(), Some(rfc3339(T0 + 3600).as_str()));

    // A clean rescan of the path resolves it.
    let done = first.resolved(T0 + 7200);
    assert_eq!(
        sink.send(&[record(3, Event::Resolved, done)])
            .await
            .unwrap(),
        [EntryResult::Delivered]
    );
    let all = hub_findings(&moto).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].record_state().map(|s| s.as_str()), Some("ARCHIVED"));
    assert_eq!(
        all[0]
            .workflow()
            .and_then(|w| w.status())
            .map(|s| s.as_str()),
        Some("RESOLVED")
    );
    assert_eq!(all[0].updated_at(), Some(rfc3339(T0 + 7200).as_str()));

    // Two states of one finding in one batch go in two calls, in order: the later one wins.
    let b = finding(
        "/srv/www/b.php",
        "Php_Webshell_C99_1",
        Severity::High,
        false,
    );
    let b_later = b.seen_again(&Finding {
        last_seen: T0 + 60,
        ..b.clone()
    });
    let got = sink
        .send(&[
            record(4, Event::New, b.clone()),
            record(5, Event::Updated, b_later),
        ])
        .await
        .unwrap();
    assert_eq!(got, [EntryResult::Delivered, EntryResult::Delivered]);
    let all = hub_findings(&moto).await;
    assert_eq!(all.len(), 2);
    let hb = all.iter().find(|x| x.id() == Some(b.id.as_str())).unwrap();
    assert_eq!(hb.updated_at(), Some(rfc3339(T0 + 60).as_str()));
}

#[tokio::test]
async fn one_invalid_finding_in_a_batch_does_not_block_the_others() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let sink = security_hub(&moto);
    let fs: Vec<Finding> = (0..4)
        .map(|i| {
            finding(
                &format!("/srv/www/{i}.php"),
                "Php_Webshell",
                Severity::Medium,
                false,
            )
        })
        .collect();
    let mut asff: Vec<Value> = fs
        .iter()
        .map(|f| vigil_findings::asff::to_asff(f, sink.target()))
        .collect();
    // What moto's BatchImportFindings refuses, per finding: no resource. (Real Security Hub
    // refuses it too: Resources needs at least one entry.)
    asff[1]["Resources"] = Value::Array(vec![]);
    // What vigil itself refuses before sending: a key its converter does not know.
    asff[2]["Bogus"] = Value::from(1);
    let got = sink.import(&asff).await.unwrap();
    assert_eq!(got[0], EntryResult::Delivered);
    assert!(
        matches!(&got[1], EntryResult::Rejected(m) if m.starts_with("InvalidInput")),
        "{:?}",
        got[1]
    );
    assert!(
        matches!(&got[2], EntryResult::Rejected(m) if m.contains("Bogus")),
        "{:?}",
        got[2]
    );
    assert_eq!(got[3], EntryResult::Delivered);
    let mut ids: Vec<String> = hub_findings(&moto)
        .await
        .iter()
        .filter_map(|x| x.id().map(str::to_owned))
        .collect();
    ids.sort();
    let mut want = vec![fs[0].id.clone(), fs[3].id.clone()];
    want.sort();
    assert_eq!(ids, want, "the good findings arrived, the bad ones did not");
}

#[tokio::test]
async fn failures_are_classified_retry_or_fatal() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    // Nothing listens: retried later.
    let dead = format!("http://127.0.0.1:{}", vigil_tests::free_port());
    let cfg = SecurityHubConfig {
        region: None,
        endpoint_url: Some(dead),
        account_id: None,
        product_arn: None,
    };
    let sink =
        SecurityHubSink::from_sdk_config("sh", &cfg, &ctx(), &moto.credentials_config()).unwrap();
    let f = finding("/x", "X", Severity::High, false);
    let err = sink
        .send(&[record(1, Event::New, f.clone())])
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retry { .. }), "{err:?}");

    // A topic that does not exist: retrying the same request cannot help.
    let cfg = SnsConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        topic_arn: format!("arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic"),
    };
    let sns = SnsSink::from_sdk_config("sns", &cfg, &ctx(), &moto.credentials_config()).unwrap();
    let err = sns.send(&[record(1, Event::New, f)]).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Fatal(m) if m.contains("NotFound")),
        "{err:?}"
    );

    // No account known: a setup error naming the key.
    let e = SecurityHubSink::from_sdk_config(
        "sh",
        &SecurityHubConfig {
            region: None,
            endpoint_url: None,
            account_id: None,
            product_arn: None,
        },
        &SinkContext {
            region: Some(REGION.into()),
            account_id: None,
        },
        &moto.credentials_config(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("account_id"), "{e}");
}

/// A new SQS queue and its ARN.
async fn queue(moto: &MotoServer, name: &str) -> (String, String) {
    let sqs = moto.sqs();
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()
        .get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .unwrap()
        .clone();
    (url, arn)
}

/// The bodies of the first `n` messages to reach the queue (waiting up to 10 s), parsed.
async fn receive(moto: &MotoServer, url: &str, n: usize) -> Vec<Value> {
    let sqs = moto.sqs();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            got.push(serde_json::from_str(m.body().unwrap()).unwrap());
        }
    }
    got
}

#[tokio::test]
async fn an_eventbridge_rule_routes_the_event_to_sqs() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let (url, arn) = queue(&moto, "vigil-events").await;
    let events = moto.eventbridge();
    events
        .put_rule()
        .name("vigil-malware")
        .event_pattern(r#"{"source":["vigil"],"detail-type":["Vigil Malware Scan Result"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("vigil-malware")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let cfg = EventBridgeConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        event_bus: "default".into(),
    };
    let sink =
        EventBridgeSink::from_sdk_config("eventbridge", &cfg, &ctx(), &moto.credentials_config())
            .unwrap();
    assert_eq!(sink.max_batch(), 10);
    let hit = finding(
        "/srv/www/shell.php",
        "Php_Webshell_C99_1",
        Severity::High,
        true,
    );
    let gone = finding("/srv/www/old.php", "Php_Old", Severity::Low, false).resolved(T0 + 60);
    let got = sink
        .send(&[
            record(1, Event::New, hit.clone()),
            record(2, Event::Resolved, gone.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(got, [EntryResult::Delivered, EntryResult::Delivered]);

    let msgs = receive(&moto, &url, 2).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let by_id = |id: &str| {
        msgs.iter()
            .find(|m| m["detail"]["findingId"] == id)
            .unwrap_or_else(|| panic!("no event for {id}: {msgs:?}"))
    };
    let e = by_id(&hit.id);
    assert_eq!(e["detail-type"], "Vigil Malware Scan Result");
    assert_eq!(e["source"], "vigil");
    assert_eq!(
        e["resources"][0],
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234567890def"
    );
    let d = &e["detail"];
    assert_eq!(d["schemaVersion"], "1.0");
    assert_eq!(d["resourceType"], "EC2_INSTANCE");
    assert_eq!(d["scanResultDetails"]["scanResultStatus"], "THREATS_FOUND");
    assert_eq!(
        d["scanResultDetails"]["threats"][0]["name"],
        "Php_Webshell_C99_1"
    );
    assert_eq!(d["scanResultDetails"]["threats"][0]["severity"], "HIGH");
    assert_eq!(d["fileDetails"]["path"], "/srv/www/shell.php");
    assert_eq!(d["fileDetails"]["sha256"], hit.file.sha256);
    let r = &by_id(&gone.id)["detail"];
    assert_eq!(r["state"], "RESOLVED");
    assert_eq!(
        r["scanResultDetails"]["scanResultStatus"],
        "NO_THREATS_FOUND"
    );
    assert_eq!(by_id(&gone.id)["resources"], Value::Array(vec![]));
}

#[tokio::test]
async fn an_sns_topic_delivers_subject_and_json_to_an_sqs_subscription() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let sns = moto.sns();
    let topic = sns
        .create_topic()
        .name("vigil-findings")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let (all_url, all_arn) = queue(&moto, "everything").await;
    let (resolved_url, resolved_arn) = queue(&moto, "only-resolved").await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&all_arn)
        .send()
        .await
        .unwrap();
    // A subscription that filters on the message attributes the sink sets.
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&resolved_arn)
        .attributes("FilterPolicy", r#"{"event":["resolved"]}"#)
        .send()
        .await
        .unwrap();

    let cfg = SnsConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        topic_arn: topic.clone(),
    };
    let sink = SnsSink::from_sdk_config(
        "sns",
        &cfg,
        &SinkContext::default(),
        &moto.credentials_config(),
    )
    .unwrap();
    let hit = finding(
        "/srv/www/shell.php",
        "Php_Webshell_C99_1",
        Severity::High,
        true,
    );
    let gone = finding("/srv/www/old.php", "Php_Old", Severity::Low, false).resolved(T0 + 60);
    let got = sink
        .send(&[
            record(1, Event::New, hit.clone()),
            record(2, Event::Resolved, gone.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(got, [EntryResult::Delivered, EntryResult::Delivered]);

    let msgs = receive(&moto, &all_url, 2).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let new = msgs
        .iter()
        .find(|m| m["Subject"] == "vigil: HIGH Php_Webshell_C99_1 on web-1")
        .unwrap_or_else(|| panic!("{msgs:?}"));
    assert_eq!(new["TopicArn"], topic.as_str());
    assert_eq!(new["MessageAttributes"]["severity"]["Value"], "HIGH");
    assert_eq!(new["MessageAttributes"]["event"]["Value"], "new");
    let body: Value = serde_json::from_str(new["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "vigil.finding.new");
    assert_eq!(body["data"]["id"], hit.id);
    assert_eq!(body["data"]["file"]["path"], "/srv/www/shell.php");
    assert_eq!(body["data"]["severity"], "HIGH");

    let only = receive(&moto, &resolved_url, 2).await;
    assert_eq!(
        only.len(),
        1,
        "the filter policy passes only the resolution: {only:?}"
    );
    assert_eq!(only[0]["Subject"], "vigil: resolved Php_Old on web-1");
    let body: Value = serde_json::from_str(only[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "vigil.finding.resolved");
    assert_eq!(body["data"]["id"], gone.id);
}

/// Every finding in moto's Security Hub, through GetFindings' pages of 100.
async fn all_hub_findings(
    moto: &MotoServer,
) -> Vec<aws_sdk_securityhub::types::AwsSecurityFinding> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let out = moto
            .securityhub()
            .get_findings()
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        all.extend(out.findings().iter().cloned());
        token = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            return all;
        }
    }
}

#[tokio::test]
async fn the_outbox_delivers_to_security_hub_and_eventbridge_in_batches() {
    use std::sync::Arc;
    use vigil_outputs::{Deliverer, Outbox, OutboxLimits, OutputConfig, OutputKind};
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path(), OutboxLimits::default()).unwrap());
    let hub_cfg = SecurityHubConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        account_id: None,
        product_arn: None,
    };
    let bus_cfg = EventBridgeConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        event_bus: "default".into(),
    };
    let creds = moto.credentials_config();
    let output = |name: &str, kind: OutputKind| OutputConfig {
        name: name.into(),
        min_severity: Severity::Low,
        events: Event::ALL.into_iter().collect(),
        kind,
    };
    let outputs: Vec<(OutputConfig, Arc<dyn Sink>)> = vec![
        (
            output("hub", OutputKind::SecurityHub(hub_cfg.clone())),
            Arc::new(SecurityHubSink::from_sdk_config("hub", &hub_cfg, &ctx(), &creds).unwrap()),
        ),
        (
            output("bus", OutputKind::EventBridge(bus_cfg.clone())),
            Arc::new(EventBridgeSink::from_sdk_config("bus", &bus_cfg, &ctx(), &creds).unwrap()),
        ),
    ];
    let names: Vec<OutputConfig> = outputs.iter().map(|(c, _)| c.clone()).collect();
    let deliverer = Deliverer::new(outbox.clone(), outputs);

    // 250 findings (three Security Hub calls, 25 EventBridge calls), then one seen again.
    let fs: Vec<Finding> = (0..250)
        .map(|i| {
            finding(
                &format!("/srv/www/{i}.php"),
                "Php_Webshell",
                Severity::High,
                false,
            )
        })
        .collect();
    let entries: Vec<(Event, Finding)> = fs.iter().map(|f| (Event::New, f.clone())).collect();
    outbox.append(&entries).unwrap();
    let again = fs[7].seen_again(&Finding {
        last_seen: T0 + 99,
        ..fs[7].clone()
    });
    outbox.append(&[(Event::Updated, again)]).unwrap();

    let status = deliverer.flush(Duration::from_secs(60)).await;
    for s in &status {
        assert_eq!((s.pending, s.delivered, s.rejected), (0, 251, 0), "{s:?}");
        assert_eq!(s.last_error, None, "{s:?}");
    }
    assert_eq!(outbox.status(&names).unwrap().len(), 2);
    let hub = all_hub_findings(&moto).await;
    assert_eq!(hub.len(), 250, "one Security Hub finding per vigil finding");
    let h7 = hub
        .iter()
        .find(|h| h.id() == Some(fs[7].id.as_str()))
        .unwrap();
    assert_eq!(h7.updated_at(), Some(rfc3339(T0 + 99).as_str()));
}
