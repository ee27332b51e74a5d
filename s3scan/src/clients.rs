//! S3 and SQS clients from the standard credential chain (environment, profile, web identity,
//! IMDS), with an endpoint override for S3-compatible stores and local test servers.

use aws_config::{BehaviorVersion, Region};

/// Where and how to connect.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    /// `--endpoint-url`; `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_S3`, `_SQS`) also work
    /// through the SDK. With an endpoint, S3 is addressed path-style (what MinIO, Ceph and
    /// moto need).
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
}

pub async fn connect(c: &Connect) -> Clients {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = &c.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(ep) = &c.endpoint_url {
        loader = loader.endpoint_url(ep);
    }
    let shared = loader.load().await;
    let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
    let custom = c.endpoint_url.is_some()
        || ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if custom {
        s3 = s3.force_path_style(true);
    }
    let mut sqs = aws_sdk_sqs::config::Builder::from(&shared);
    if shared.region().is_none() {
        // The SDK refuses to sign without one; S3-compatible stores rarely care which.
        s3 = s3.region(Region::new("us-east-1"));
        sqs = sqs.region(Region::new("us-east-1"));
    }
    Clients {
        s3: aws_sdk_s3::Client::from_conf(s3.build()),
        sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
    }
}
