//! S3 benchmark against a local moto server (S3, SQS and S3's own notifications): objects/s
//! through `vigil-scan s3-worker` with 1 and 2 workers on one queue (500 objects of 64 KiB,
//! each worker 8 at a time: GET, scan, GetObjectTagging, PutObjectTagging, DeleteMessage), and
//! one-off `vigil-scan s3://…` MB/s over the same small objects and over 8 objects of 32 MiB.
//! Moto is a Python server on the same 2 cores, so the figures bound what vigil does per
//! object rather than what S3 would allow.
//!
//! `cargo test --workspace --release --no-run && cargo bench --workspace --bench s3`.
//! SKIPs without moto (`pip install 'moto[server]'`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName as A;
use vigil_benchsuite::program;
use vigil_tests::moto::MotoServer;

const SMALL: usize = 500;
const SMALL_SIZE: usize = 64 << 10;
const BIG: usize = 8;
const BIG_SIZE: usize = 32 << 20;

struct Bench {
    moto: MotoServer,
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

/// Bytes that match nothing: a xorshift stream.
fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl Bench {
    fn bucket(&self, name: &str, queue: Option<&str>) -> Option<String> {
        self.rt.block_on(async {
            self.s3.create_bucket().bucket(name).send().await.unwrap();
            let q = queue?;
            let url = self
                .sqs
                .create_queue()
                .queue_name(q)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            let arn = self
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(A::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&A::QueueArn]
                .clone();
            self.s3
                .put_bucket_notification_configuration()
                .bucket(name)
                .notification_configuration(
                    NotificationConfiguration::builder()
                        .queue_configurations(
                            QueueConfiguration::builder()
                                .queue_arn(arn)
                                .events(aws_sdk_s3::types::Event::S3ObjectCreated)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
            Some(url)
        })
    }

    fn fill(&self, bucket: &str, n: usize, size: usize) {
        self.rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                let s3 = self.s3.clone();
                let (bucket, data) = (bucket.to_owned(), body(i as u64 + 1, size));
                set.spawn(async move {
                    s3.put_object()
                        .bucket(bucket)
                        .key(format!("o/{i:05}"))
                        .body(ByteStream::from(data))
                        .send()
                        .await
                        .unwrap();
                });
                if set.len() >= 8 {
                    set.join_next().await;
                }
            }
            while set.join_next().await.is_some() {}
        });
    }

    fn queued(&self, url: &str) -> u64 {
        let a = self
            .rt
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .unwrap()
            .attributes
            .unwrap();
        a[&A::ApproximateNumberOfMessages].parse::<u64>().unwrap()
            + a[&A::ApproximateNumberOfMessagesNotVisible]
                .parse::<u64>()
                .unwrap()
    }

    fn scan(&self, db: &Path, key: &Path) -> Command {
        let mut c = Command::new(program("vigil-scan"));
        c.envs(self.moto.env())
            .args(["-d", &db.display().to_string()])
            .args(["--pubkey", &key.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }
}

fn main() {
    let Some(moto) = MotoServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config())
            .force_path_style(true)
            .build(),
    );
    let sqs = moto.sqs();
    let b = Bench { moto, rt, s3, sqs };
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::copy(
        vigil_tests::rules::repo_root().join("rules-src/clamav/eicar.ndb"),
        rules.join("eicar.ndb"),
    )
    .unwrap();
    let db = tmp.path().join("v1.vdb");
    std::fs::write(&db, vigil_tests::rules::db_from(&rules, 1)).unwrap();
    let key = tmp.path().join("test.pub");
    std::fs::write(&key, vigil_tests::rules::test_key().public().to_text()).unwrap();
    let endpoint = b.moto.endpoint();

    let mut rows = Vec::new();
    // Workers: one bucket and queue per run, so every object is scanned (not skipped).
    for workers in [1usize, 2] {
        let bucket = format!("workers-{workers}");
        let queue = b.bucket(&bucket, Some(&bucket)).unwrap();
        b.fill(&bucket, SMALL, SMALL_SIZE);
        let start = Instant::now();
        let mut children: Vec<_> = (0..workers)
            .map(|_| {
                let mut w = Command::new(program("vigil-scan"));
                w.envs(b.moto.env())
                    .arg("s3-worker")
                    .args(["-d", &db.display().to_string()])
                    .args(["--pubkey", &key.display().to_string()])
                    .args(["--queue-url", &queue, "--wait-seconds", "1"])
                    .args(["--s3-concurrency", "8", "--endpoint-url", &endpoint])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                w.spawn().unwrap()
            })
            .collect();
        while b.queued(&queue) > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "workers stalled"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let secs = start.elapsed().as_secs_f64();
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        rows.push((
            format!("s3-worker x{workers}, 8 at a time each"),
            SMALL,
            SMALL * SMALL_SIZE,
            secs,
        ));
    }
    // One-off scans, read-only: the small objects again, then big ones.
    let start = Instant::now();
    let st = b
        .scan(&db, &key)
        .args(["--endpoint-url", &endpoint, "--s3-concurrency", "8"])
        .arg("s3://workers-1/")
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    rows.push((
        "vigil-scan s3:// (64 KiB objects)".into(),
        SMALL,
        SMALL * SMALL_SIZE,
        start.elapsed().as_secs_f64(),
    ));
    b.bucket("big-objects", None);
    b.fill("big-objects", BIG, BIG_SIZE);
    let start = Instant::now();
    let st = b
        .scan(&db, &key)
        .args(["--endpoint-url", &endpoint, "--s3-concurrency", "8"])
        .arg("s3://big-objects/")
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    rows.push((
        "vigil-scan s3:// (32 MiB objects)".into(),
        BIG,
        BIG * BIG_SIZE,
        start.elapsed().as_secs_f64(),
    ));

    println!(
        "\nS3 scanning against moto on 127.0.0.1 (includes vigil-scan's start and the engine load)"
    );
    println!(
        "| {:<40} | {:>7} | {:>8} | {:>7} | {:>9} | {:>6} |",
        "case", "objects", "MB", "s", "objects/s", "MB/s"
    );
    println!(
        "|{:-<42}|{:->9}|{:->10}|{:->9}|{:->11}|{:->8}|",
        "", "", "", "", "", ""
    );
    for (name, n, bytes, secs) in rows {
        let mb = bytes as f64 / 1e6;
        println!(
            "| {name:<40} | {n:>7} | {mb:>8.1} | {secs:>7.2} | {:>9.1} | {:>6.1} |",
            n as f64 / secs,
            mb / secs
        );
    }
}
