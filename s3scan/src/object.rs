//! One object version: GET it (by version id when known), stream the body into the engine on
//! a blocking thread, and turn what happened into a [`Verdict`]. S3's errors are classified
//! here once: gone (deleted before its scan), access denied, worth retrying (throttling, 5xx,
//! the network), or a permanent failure.

use std::sync::Arc;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use vigil_scan_core::{Engine, Limits, ScanError, ScanReport};

use crate::event::ObjectRef;
use crate::stream;
use crate::tags::ScanStatus;

/// The engine and the limits every object is scanned with.
#[derive(Clone)]
pub struct ScanSettings {
    pub engine: Arc<Engine>,
    pub limits: Limits,
}

/// What scanning one object version came to.
#[derive(Debug)]
pub enum Verdict {
    Clean,
    /// Findings are in [`Scanned::report`].
    Threats,
    /// Not completely scanned (encrypted, limits, too large): why.
    Unsupported(String),
    AccessDenied(String),
    /// A permanent failure (a scan timeout, an object S3 will not serve, e.g. archived).
    Failed(String),
    /// Deleted before its scan (NoSuchKey, NoSuchVersion, NoSuchBucket).
    Gone(String),
    /// Worth trying again later (throttling, S3's 5xx, the network, a broken download).
    Retry(String),
}

impl Verdict {
    /// The tag this verdict writes, if any.
    pub fn status(&self) -> Option<ScanStatus> {
        match self {
            Verdict::Clean => Some(ScanStatus::NoThreatsFound),
            Verdict::Threats => Some(ScanStatus::ThreatsFound),
            Verdict::Unsupported(_) => Some(ScanStatus::Unsupported),
            Verdict::AccessDenied(_) => Some(ScanStatus::AccessDenied),
            Verdict::Failed(_) => Some(ScanStatus::Failed),
            Verdict::Gone(_) | Verdict::Retry(_) => None,
        }
    }
}

/// One object's scan.
#[derive(Debug)]
pub struct Scanned {
    pub verdict: Verdict,
    /// The engine's report, when the body was scanned.
    pub report: Option<ScanReport>,
    /// The version S3 served (the event's, or the current one when the event named none).
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: u64,
    /// Last-Modified, Unix seconds.
    pub modified: i64,
}

impl Scanned {
    fn only(verdict: Verdict) -> Scanned {
        Scanned {
            verdict,
            report: None,
            version_id: None,
            etag: None,
            size: 0,
            modified: 0,
        }
    }
}

/// How an S3 call failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Gone,
    Denied,
    Transient,
    Permanent,
}

/// Classifies a failed S3 call, and says what it was in one line.
pub fn classify<E, R>(e: &SdkError<E, R>) -> (Failure, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or_default().to_owned();
    let msg = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)),
    };
    let class = match code.as_str() {
        "NoSuchKey" | "NoSuchVersion" | "NoSuchBucket" | "NotFound" => Failure::Gone,
        "AccessDenied"
        | "Forbidden"
        | "AllAccessDisabled"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch" => Failure::Denied,
        "SlowDown"
        | "InternalError"
        | "ServiceUnavailable"
        | "RequestTimeout"
        | "RequestTimeTooSkewed"
        | "Throttling"
        | "ThrottlingException" => Failure::Transient,
        "" => match e {
            // No answer from S3 at all: the network, a timeout.
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => Failure::Transient,
            _ => Failure::Permanent,
        },
        _ => Failure::Permanent,
    };
    (class, msg)
}

/// The HTTP status of a failed call, when S3 answered.
pub fn http_status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// [`classify`], refined by the HTTP status when S3 answered without an error code (HEAD-style
/// 404s and 403s, a 5xx from a proxy).
pub fn classify_http<E>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Failure, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (class, msg) = classify(e);
    let class = match (class, http_status(e)) {
        (Failure::Permanent, Some(404)) => Failure::Gone,
        (Failure::Permanent, Some(403)) => Failure::Denied,
        (Failure::Permanent, Some(s)) if s >= 500 || s == 429 => Failure::Transient,
        (c, _) => c,
    };
    (class, msg)
}

/// GETs `obj` and scans its body.
pub async fn scan(s3: &aws_sdk_s3::Client, settings: &ScanSettings, obj: &ObjectRef) -> Scanned {
    let url = obj.url();
    let got = s3
        .get_object()
        .bucket(&obj.bucket)
        .key(&obj.key)
        .set_version_id(obj.version_id.clone())
        .send()
        .await;
    let out = match got {
        Ok(o) => o,
        Err(e) => {
            let (class, msg) = classify_http(&e);
            return Scanned::only(match class {
                Failure::Gone => Verdict::Gone(msg),
                Failure::Denied => Verdict::AccessDenied(msg),
                Failure::Transient => Verdict::Retry(format!("GET: {msg}")),
                Failure::Permanent => Verdict::Failed(format!("GET: {msg}")),
            });
        }
    };
    let size = out.content_length.and_then(|n| u64::try_from(n).ok());
    let mut scanned = Scanned {
        verdict: Verdict::Clean,
        report: None,
        version_id: out.version_id.clone().filter(|v| v != "null"),
        etag: out.e_tag.clone(),
        size: size.unwrap_or(0),
        modified: out.last_modified.map_or(0, |t| t.secs()),
    };
    let limits = settings.limits;
    if let Some(n) = size.filter(|n| *n > limits.max_filesize) {
        // Not downloaded at all: the body is dropped unread.
        scanned.verdict = Verdict::Unsupported(format!(
            "{n} bytes, over the size limit of {}",
            limits.max_filesize
        ));
        return scanned;
    }
    let reader = stream::pump(out.body, size, url);
    let engine = settings.engine.clone();
    let result =
        tokio::task::spawn_blocking(move || engine.scanner().scan_reader(reader, &limits)).await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            scanned.verdict = Verdict::Failed(format!("the scan thread failed: {e}"));
            return scanned;
        }
    };
    scanned.verdict = match result {
        Ok(report) => {
            let v = if !report.findings.is_empty() {
                Verdict::Threats
            } else if report.is_incomplete() {
                let why: Vec<String> = report
                    .unscanned
                    .iter()
                    .map(|u| {
                        if u.path.is_empty() {
                            u.reason.as_str().to_owned()
                        } else {
                            format!("{}: {}", u.reason.as_str(), u.path)
                        }
                    })
                    .collect();
                Verdict::Unsupported(why.join(", "))
            } else {
                Verdict::Clean
            };
            scanned.size = report.size;
            scanned.report = Some(report);
            v
        }
        Err(e @ ScanError::TooLarge { .. }) => Verdict::Unsupported(e.to_string()),
        Err(ScanError::Io(e)) => Verdict::Retry(format!("reading the body: {e}")),
        Err(e) => Verdict::Failed(e.to_string()),
    };
    scanned
}
