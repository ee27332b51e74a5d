//! A real AWS-compatible endpoint for the findings outputs' tests: moto's server
//! (`pip install 'moto[server]'`, tested with moto 5.2) on 127.0.0.1 and a free port, speaking
//! Security Hub, EventBridge, SNS and SQS. Every test gets its own server, so its state is the
//! test's alone. `None`, with a SKIP line, when `moto_server` is not installed.
//!
//! Moto accepts any credentials; the account is its default, [`ACCOUNT`]. Its Security Hub
//! takes `BatchImportFindings` without `EnableSecurityHub` first.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;

/// Moto's default account: the one every request lands in.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
const ACCESS_KEY: &str = "vigil-test-access";
const SECRET_KEY: &str = "vigil-test-secret";

pub struct MotoServer {
    child: Child,
    port: u16,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MotoServer {
    /// Starts `moto_server` and waits (up to 30 s: Python imports every service first) until
    /// it answers HTTP.
    pub fn start() -> Option<MotoServer> {
        let port = crate::free_port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("SKIP: moto is not installed (pip install 'moto[server]')");
                return None;
            }
            Err(e) => panic!("starting moto_server: {e}"),
        };
        let mut server = MotoServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a child process (the agent, `vigil-scan`) needs to reach this server
    /// through the standard credential chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Test credentials and region, with no endpoint: what a sink gets as its shared config,
    /// so the test proves its `endpoint_url` override works.
    pub fn credentials_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(aws_sdk_sns::config::SharedCredentialsProvider::new(
                Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "vigil-tests"),
            ))
            .build()
    }

    /// Test credentials, region and this server's endpoint: for the tests' own clients.
    pub fn sdk_config(&self) -> SdkConfig {
        self.credentials_config()
            .into_builder()
            .endpoint_url(self.endpoint())
            .build()
    }

    pub fn securityhub(&self) -> aws_sdk_securityhub::Client {
        aws_sdk_securityhub::Client::new(&self.sdk_config())
    }

    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk_config())
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config())
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config())
    }
}

/// Whether something answers HTTP on the port (moto binds before it can serve).
fn answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
