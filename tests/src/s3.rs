//! A real S3-compatible server for tests: s3s-fs over a temporary directory, on 127.0.0.1,
//! verifying SigV4 signatures. Nothing in the SDK is mocked; requests go over TCP.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "vigil-test-access";
pub const SECRET_KEY: &str = "vigil-test-secret-key-0123456789";
pub const BUCKET: &str = "vigil-repo";

pub struct S3Server {
    pub addr: SocketAddr,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Starts the server on the current tokio runtime with one bucket, [`BUCKET`].
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(BUCKET)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = b.build();
        // s3s-fs checks If-None-Match / If-Match and then writes, with nothing in between
        // held: two racing conditional PUTs can both pass, where real S3 decides them
        // atomically (the racing-publisher tests depend on that). So this server takes
        // writes one at a time; reads still run concurrently.
        let writes = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (service, writes) = (service.clone(), writes.clone());
                async move {
                    let write = matches!(
                        *req.method(),
                        http::Method::PUT | http::Method::POST | http::Method::DELETE
                    );
                    let _one_at_a_time = if write {
                        Some(writes.lock().await)
                    } else {
                        None
                    };
                    hyper::service::Service::call(&service, req).await
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let http = Builder::new(TokioExecutor::new());
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(sock), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Self {
            addr,
            root: dir.path().to_path_buf(),
            _dir: dir,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Environment for child processes (and this one) to reach the server through the standard
    /// AWS credential chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Files of the bucket as stored on disk, relative to the bucket (for assertions).
    pub fn objects(&self, prefix: &str) -> Vec<String> {
        let base = self.root.join(BUCKET);
        let mut out = Vec::new();
        let mut stack = vec![base.join(prefix)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&base) {
                    let s = rel.to_string_lossy().to_string();
                    // s3s-fs keeps its own bookkeeping files beside the objects.
                    if !s.contains(".s3s")
                        && !rel
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    {
                        out.push(s);
                    }
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
