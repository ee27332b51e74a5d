//! What the AWS outputs (Security Hub, EventBridge, SNS) share: the SDK configuration from the
//! standard credential chain, and the classification of a failed call into retry or fatal.
//!
//! The SDK's own retries are off: the outbox's delivery loop owns retries, back-off and jitter,
//! and must see throttling to back off for it rather than have it hidden inside one call.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_securityhub::config::http::HttpResponse;
use aws_sdk_securityhub::error::{ProvideErrorMetadata, SdkError};

use crate::error::OutputError;
use crate::sink::{EntryResult, SendError, SinkContext};

/// How long one call may take before it counts as failed (and is retried after back-off): a
/// hung endpoint must not stall every other output's deliveries.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared SDK configuration from the standard chain (environment, profile, web identity,
/// IMDS), with the region the output names, else the host's, else the chain's.
pub async fn sdk_config(region: Option<&str>, ctx: &SinkContext) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        );
    if let Some(r) = region.or(ctx.region.as_deref()) {
        loader = loader.region(Region::new(r.to_owned()));
    }
    loader.load().await
}

/// The region a client will use: the output's, the host's, the shared config's; an error that
/// names the `region` key when none is known (the SDK cannot sign without one).
pub fn region(
    name: &str,
    configured: Option<&str>,
    ctx: &SinkContext,
    shared: &SdkConfig,
) -> Result<String, OutputError> {
    configured
        .or(ctx.region.as_deref())
        .map(str::to_owned)
        .or_else(|| shared.region().map(|r| r.to_string()))
        .ok_or_else(|| OutputError::Setup {
            name: name.to_owned(),
            message: "no AWS region: set `region` in the output, in [findings], or AWS_REGION"
                .into(),
        })
}

/// Whether an error code (a whole call's, or one entry's) names a condition that passes:
/// throttling, limits on the request rate, the service's internal errors.
pub fn transient_code(code: &str) -> bool {
    let c = code.to_ascii_lowercase();
    c.contains("throttl")
        || c.contains("limitexceeded")
        || c.contains("toomanyrequests")
        || c.starts_with("internal")
        || c.contains("serviceunavailable")
        || c.contains("unavailable")
        || c == "requesttimeout"
}

/// A failed call, classified: throttling, 5xx and anything that never reached the service
/// (connection refused, timeout) are retried, with the service's Retry-After when it sent one;
/// denied access, bad credentials and other client errors are fatal (retrying the same request
/// cannot help; the records stay queued until the config is fixed).
pub fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    op: &str,
    err: &SdkError<E, HttpResponse>,
) -> SendError {
    let retry = |reason: String, after: Option<Duration>| SendError::Retry { reason, after };
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("");
            let status = se.raw().status().as_u16();
            let after = se
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let reason = format!(
                "{op}: HTTP {status} {code}: {}",
                e.message().unwrap_or("no message")
            );
            if transient_code(code) || status == 429 || status >= 500 {
                retry(reason, after)
            } else {
                SendError::Fatal(reason)
            }
        }
        // A response that could not be read: the service may be restarting.
        SdkError::ResponseError(_) => retry(format!("{op}: unreadable response: {err:?}"), None),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            retry(format!("{op}: {}", chain(err)), None)
        }
        // The request could not even be built (bad endpoint URL, no credentials in the chain).
        _ => SendError::Fatal(format!("{op}: {}", chain(err))),
    }
}

/// An error and its causes on one line: the SDK's Display says only "dispatch failure".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A batch's results in order: a record no call got to (a later call of a split batch failed
/// first) is retried.
pub fn settle(results: Vec<Option<EntryResult>>) -> Vec<EntryResult> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| EntryResult::Retry("not sent".into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        for c in [
            "ThrottlingException",
            "Throttled",
            "LimitExceededException",
            "TooManyRequestsException",
            "InternalException",
            "InternalFailure",
            "ServiceUnavailable",
        ] {
            assert!(transient_code(c), "{c}");
        }
        for c in [
            "InvalidInput",
            "AccessDeniedException",
            "InvalidArgument",
            "MalformedDetail",
            "",
        ] {
            assert!(!transient_code(c), "{c}");
        }
    }
}
