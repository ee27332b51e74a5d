//! S3 scanning end to end against moto's server (S3, SQS and S3's own event notifications,
//! which moto delivers to SQS like S3 does): `vigil-scan s3://…` one-off scans, and `vigil-scan
//! s3-worker` tagging uploads GuardDuty-style, keeping the owner's tags within S3's 10,
//! quarantining, surviving a SIGKILL mid-object, sharing one queue between two workers, and
//! re-scanning after a database update. SKIPs when moto is not installed.
//!
//! The EICAR zip and the encrypted zip need the engine's container support
//! (`containers_…`); the plain EICAR object works without it.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{NotificationConfiguration, QueueConfiguration};
use vigil_tests::moto::MotoServer;
use vigil_tests::{bin, run, ChildGuard, Run};

const EICAR_HEX: &str = "58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a";
const EICAR_SIG: &str = "Multi.Test.Eicar-Body";
/// A sample database v1 misses and v2 detects.
const LATE: &[u8] = b"VIGIL-S3-LATE-SAMPLE-0123456789abcdef";
const LATE_SIG: &str = "Vigil.Test.S3Late";
const STATUS: &str = "VigilMalwareScanStatus";
const DBTAG: &str = "VigilDatabaseVersion";

fn eicar() -> Vec<u8> {
    (0..EICAR_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&EICAR_HEX[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One moto server, its clients, a runtime for them, and databases v1 (EICAR) and v2 (EICAR
/// and [`LATE`]) signed by the test key.
struct Env {
    moto: MotoServer,
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    tmp: tempfile::TempDir,
    pubkey: PathBuf,
}

impl Env {
    fn start() -> Option<Env> {
        let moto = MotoServer::start()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let conf = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
            .force_path_style(true)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(conf);
        let sqs = moto.sqs();
        let tmp = tempfile::tempdir().unwrap();
        let pubkey = tmp.path().join("test.pub");
        std::fs::write(&pubkey, vigil_tests::rules::test_key().public().to_text()).unwrap();
        let env = Env {
            moto,
            rt,
            s3,
            sqs,
            tmp,
            pubkey,
        };
        env.db(1, false);
        env.db(2, true);
        Some(env)
    }

    /// Writes database `version` (with the late sample's signature when `late`).
    fn db(&self, version: u64, late: bool) -> PathBuf {
        let rules = self.tmp.path().join(format!("rules{version}"));
        std::fs::create_dir_all(&rules).unwrap();
        let mut ndb = format!("{EICAR_SIG}:0:0:{EICAR_HEX}\n");
        if late {
            ndb.push_str(&format!("{LATE_SIG}:0:*:{}\n", hex(LATE)));
        }
        std::fs::write(rules.join("s3.ndb"), ndb).unwrap();
        let path = self.tmp.path().join(format!("v{version}.vdb"));
        if !path.exists() {
            std::fs::write(&path, vigil_tests::rules::db_from(&rules, version)).unwrap();
        }
        path
    }

    fn bucket(&self, name: &str) {
        self.rt
            .block_on(self.s3.create_bucket().bucket(name).send())
            .unwrap();
    }

    /// A queue, and `bucket`'s ObjectCreated notifications delivered to it (S3's own shape).
    fn notify(&self, bucket: &str, queue: &str) -> String {
        self.rt.block_on(async {
            let url = self
                .sqs
                .create_queue()
                .queue_name(queue)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            let arn = self
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
                .clone();
            self.s3
                .put_bucket_notification_configuration()
                .bucket(bucket)
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
            url
        })
    }

    fn put(&self, bucket: &str, key: &str, body: &[u8], tags: &[(String, String)]) {
        let mut req = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()));
        if !tags.is_empty() {
            let q: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.tagging(q.join("&"));
        }
        self.rt.block_on(req.send()).unwrap();
    }

    fn tags(&self, bucket: &str, key: &str) -> HashMap<String, String> {
        let out = self
            .rt
            .block_on(self.s3.get_object_tagging().bucket(bucket).key(key).send())
            .unwrap();
        out.tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    }

    fn exists(&self, bucket: &str, key: &str) -> bool {
        self.rt
            .block_on(self.s3.head_object().bucket(bucket).key(key).send())
            .is_ok()
    }

    /// Messages in the queue, visible or in flight.
    fn queued(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
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
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|k| a[k].parse::<u64>().unwrap())
        .sum()
    }

    fn send(&self, queue: &str, body: &str) {
        self.rt
            .block_on(
                self.sqs
                    .send_message()
                    .queue_url(queue)
                    .message_body(body)
                    .send(),
            )
            .unwrap();
    }

    fn vigil_scan(&self) -> Command {
        let mut c = Command::new(bin("vigil-scan"));
        c.envs(self.moto.env())
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE");
        c
    }

    /// `vigil-scan s3-worker` with database `db` and `extra` flags.
    fn worker(&self, db: u64, extra: &[&str]) -> Command {
        let mut c = self.vigil_scan();
        c.arg("s3-worker")
            .args(["-d", &p(&self.db(db, db >= 2))])
            .args(["--pubkey", &p(&self.pubkey)])
            .args(["--endpoint-url", &self.moto.endpoint()])
            .args(extra);
        c
    }
}

fn p(x: &Path) -> String {
    x.display().to_string()
}

fn tags_of(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("owner{i}"), format!("v{i}")))
        .collect()
}

/// A zip with one stored member; with `encrypted` its general-purpose flag says encrypted
/// (the bytes are stored as they are: the flag alone is what a scanner sees first).
fn zip_one(name: &str, data: &[u8], encrypted: bool) -> Vec<u8> {
    fn crc32(d: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in d {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let (crc, len, flag) = (crc32(data), data.len() as u32, u16::from(encrypted));
    let mut z = Vec::new();
    z.extend_from_slice(b"PK\x03\x04");
    z.extend_from_slice(&20u16.to_le_bytes());
    z.extend_from_slice(&flag.to_le_bytes());
    z.extend_from_slice(&[0; 6]); // stored, time, date
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(data);
    let cd = z.len() as u32;
    z.extend_from_slice(b"PK\x01\x02");
    z.extend_from_slice(&20u16.to_le_bytes());
    z.extend_from_slice(&20u16.to_le_bytes());
    z.extend_from_slice(&flag.to_le_bytes());
    z.extend_from_slice(&[0; 6]);
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&[0; 12]); // extra, comment, disk, internal and external attributes
    z.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    z.extend_from_slice(name.as_bytes());
    let cd_len = z.len() as u32 - cd;
    z.extend_from_slice(b"PK\x05\x06");
    z.extend_from_slice(&[0; 4]);
    z.extend_from_slice(&1u16.to_le_bytes());
    z.extend_from_slice(&1u16.to_le_bytes());
    z.extend_from_slice(&cd_len.to_le_bytes());
    z.extend_from_slice(&cd.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z
}

/// Lines a child writes on stderr, as they come.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn show(r: &Run) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.stdout, r.stderr
    )
}

#[test]
fn one_off_scan_of_a_prefix() {
    let Some(env) = Env::start() else { return };
    env.bucket("uploads");
    env.put("uploads", "dir/clean.txt", b"hello", &[]);
    env.put("uploads", "dir/sub/eicar file.com", &eicar(), &[]);
    env.put("uploads", "other/eicar.com", &eicar(), &[]);
    let r = run(env
        .vigil_scan()
        .args(["-d", &p(&env.db(1, false)), "--pubkey", &p(&env.pubkey)])
        .args(["--endpoint-url", &env.moto.endpoint()])
        .arg("s3://uploads/dir/"));
    assert_eq!(r.code, 1, "{}", show(&r));
    assert!(
        r.stdout.contains(&format!(
            "s3://uploads/dir/sub/eicar file.com: {EICAR_SIG} FOUND"
        )),
        "{}",
        show(&r)
    );
    assert!(
        r.stdout.contains("s3://uploads/dir/clean.txt: OK"),
        "{}",
        show(&r)
    );
    assert!(
        !r.stdout.contains("other/"),
        "outside the prefix: {}",
        show(&r)
    );
    assert!(r.stdout.contains("Scanned files: 2"), "{}", show(&r));
    // Nothing is written in one-off mode.
    assert!(env.tags("uploads", "dir/clean.txt").is_empty());

    // A bucket that does not exist: an error, exit 2.
    let r = run(env
        .vigil_scan()
        .args(["-d", &p(&env.db(1, false)), "--pubkey", &p(&env.pubkey)])
        .args(["--endpoint-url", &env.moto.endpoint()])
        .arg("s3://no-such-bucket/"));
    assert_eq!(r.code, 2, "{}", show(&r));
    assert!(r.stderr.contains("no-such-bucket"), "{}", show(&r));
}

#[test]
fn worker_tags_uploads_keeps_owner_tags_and_quarantines() {
    let Some(env) = Env::start() else { return };
    env.bucket("uploads");
    env.bucket("quarantine");
    env.bucket("eb-uploads");
    let queue = env.notify("uploads", "scan-queue");
    env.put("uploads", "clean.txt", b"just text", &[]);
    env.put("uploads", "dir/eicar+1 x.com", &eicar(), &[]);
    env.put("uploads", "owned.txt", b"owned", &tags_of(3));
    env.put("uploads", "nine.txt", b"nine", &tags_of(9));
    env.put("uploads", "ten.txt", b"ten", &tags_of(10));
    // Deleted before any worker runs: its notification names an object that is gone.
    env.put("uploads", "gone.txt", b"short-lived", &[]);
    env.rt
        .block_on(
            env.s3
                .delete_object()
                .bucket("uploads")
                .key("gone.txt")
                .send(),
        )
        .unwrap();
    // The EventBridge-to-SQS shape, for a bucket without S3 notifications.
    env.put("eb-uploads", "from eb/evt.com", &eicar(), &[]);
    env.send(
        &queue,
        r#"{"version":"0","id":"1","detail-type":"Object Created","source":"aws.s3",
            "detail":{"version":"0","bucket":{"name":"eb-uploads"},
            "object":{"key":"from eb/evt.com","size":68}}}"#,
    );
    // Garbage on the queue is dropped, not retried forever.
    env.send(&queue, "not json");

    let r = run(&mut env.worker(
        1,
        &[
            "--queue-url",
            &queue,
            "--wait-seconds",
            "1",
            "--idle-exit",
            "8",
            "--visibility-timeout",
            "5",
            "--quarantine-bucket",
            "quarantine",
            "--quarantine-prefix",
            "infected",
        ],
    ));
    assert_eq!(r.code, 0, "{}", show(&r));

    let clean = env.tags("uploads", "clean.txt");
    assert_eq!(
        clean.get(STATUS).map(String::as_str),
        Some("NO_THREATS_FOUND")
    );
    assert_eq!(clean.get(DBTAG).map(String::as_str), Some("1"));

    // EICAR: tagged, then moved (with its tags) and the original deleted.
    assert!(!env.exists("uploads", "dir/eicar+1 x.com"), "{}", show(&r));
    let q = env.tags("quarantine", "infected/uploads/dir/eicar+1 x.com");
    assert_eq!(
        q.get(STATUS).map(String::as_str),
        Some("THREATS_FOUND"),
        "{}",
        show(&r)
    );
    assert!(
        r.stdout.contains(&format!(
            "s3://uploads/dir/eicar+1 x.com: THREATS_FOUND {EICAR_SIG} (moved to s3://quarantine/infected/uploads/dir/eicar+1 x.com)"
        )),
        "{}",
        show(&r)
    );
    let eb = env.tags("quarantine", "infected/eb-uploads/from eb/evt.com");
    assert_eq!(
        eb.get(STATUS).map(String::as_str),
        Some("THREATS_FOUND"),
        "{}",
        show(&r)
    );

    // The owner's tags are kept beside ours.
    let owned = env.tags("uploads", "owned.txt");
    assert_eq!(owned.len(), 5, "{owned:?}");
    for (k, v) in tags_of(3) {
        assert_eq!(owned.get(&k), Some(&v));
    }
    // Nine of the owner's: the status fits, the database version does not.
    let nine = env.tags("uploads", "nine.txt");
    assert_eq!(nine.len(), 10);
    assert_eq!(
        nine.get(STATUS).map(String::as_str),
        Some("NO_THREATS_FOUND")
    );
    assert!(!nine.contains_key(DBTAG));
    // Ten of the owner's: nothing of ours fits, nothing is dropped, and it is an error.
    let ten = env.tags("uploads", "ten.txt");
    assert_eq!(ten, tags_of(10).into_iter().collect());
    assert!(
        r.stderr.contains("s3://uploads/ten.txt: ERROR") && r.stderr.contains("10 tags"),
        "{}",
        show(&r)
    );
    assert!(
        r.stderr
            .contains("s3://uploads/gone.txt: deleted before its scan"),
        "{}",
        show(&r)
    );
    // Every message settled: the test event, the garbage, the deleted object, the rest.
    assert_eq!(env.queued(&queue), 0, "{}", show(&r));

    // A second pass over the same notifications is a quick skip: tagged by this database.
    env.put(
        "uploads",
        "clean.txt",
        b"just text",
        &[
            (STATUS.into(), "NO_THREATS_FOUND".into()),
            (DBTAG.into(), "1".into()),
        ],
    );
    let r = run(&mut env.worker(
        1,
        &[
            "--queue-url",
            &queue,
            "--wait-seconds",
            "1",
            "--idle-exit",
            "8",
            "--visibility-timeout",
            "5",
        ],
    ));
    assert_eq!(r.code, 0, "{}", show(&r));
    assert!(
        r.stdout
            .contains("s3://uploads/clean.txt: NO_THREATS_FOUND already tagged"),
        "{}",
        show(&r)
    );
}

/// Needs the engine's container support (zip): an EICAR zip is THREATS_FOUND and moved, an
/// encrypted zip UNSUPPORTED.
#[test]
fn containers_eicar_zip_quarantined_encrypted_zip_unsupported() {
    let Some(env) = Env::start() else { return };
    env.bucket("uploads");
    env.bucket("quarantine");
    let queue = env.notify("uploads", "zips");
    env.put(
        "uploads",
        "eicar.zip",
        &zip_one("eicar.com", &eicar(), false),
        &[],
    );
    env.put(
        "uploads",
        "secret.zip",
        &zip_one("doc.txt", b"some text", true),
        &[],
    );
    let r = run(&mut env.worker(
        1,
        &[
            "--queue-url",
            &queue,
            "--wait-seconds",
            "1",
            "--idle-exit",
            "8",
            "--visibility-timeout",
            "5",
            "--quarantine-bucket",
            "quarantine",
        ],
    ));
    assert_eq!(r.code, 0, "{}", show(&r));
    assert!(!env.exists("uploads", "eicar.zip"), "{}", show(&r));
    let q = env.tags("quarantine", "uploads/eicar.zip");
    assert_eq!(
        q.get(STATUS).map(String::as_str),
        Some("THREATS_FOUND"),
        "{}",
        show(&r)
    );
    assert!(
        r.stdout
            .contains(&format!("THREATS_FOUND {EICAR_SIG} in eicar.com")),
        "{}",
        show(&r)
    );
    let s = env.tags("uploads", "secret.zip");
    assert_eq!(
        s.get(STATUS).map(String::as_str),
        Some("UNSUPPORTED"),
        "{}",
        show(&r)
    );
    assert!(r.stdout.contains("encrypted"), "{}", show(&r));
}

#[test]
fn a_worker_killed_mid_object_leaves_the_message_to_the_next() {
    let Some(env) = Env::start() else { return };
    env.bucket("uploads");
    let queue = env.notify("uploads", "big");
    // 96 MiB: EICAR at the start, then bytes that match nothing; big enough that moto takes
    // a while to serve it, so the kill lands while the object is in flight.
    let mut big = eicar();
    big.resize(96 << 20, b'.');
    env.put("uploads", "big.bin", &big, &[]);
    drop(big);
    let mut first = ChildGuard(
        env.worker(
            1,
            &[
                "--queue-url",
                &queue,
                "--wait-seconds",
                "1",
                "--visibility-timeout",
                "4",
            ],
        )
        .env("RUST_LOG", "vigil_s3scan=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let lines = stderr_lines(&mut first.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let l = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the first worker never started on big.bin");
        if l.contains("processing") && l.contains("big.bin") {
            break;
        }
    }
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let tagged_before = env.tags("uploads", "big.bin").contains_key(STATUS);
    assert!(
        !tagged_before,
        "the first worker finished before the kill: not mid-object"
    );
    // (S3's test event may still be there too, if the kill came before its deletion.)
    assert!(
        env.queued(&queue) >= 1,
        "the message is in flight, not lost"
    );

    // The second worker gets the message once its visibility runs out, and tags the object;
    // SIGTERM then stops it with exit 0.
    let mut second = ChildGuard(
        env.worker(
            1,
            &[
                "--queue-url",
                &queue,
                "--wait-seconds",
                "1",
                "--visibility-timeout",
                "4",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    wait_until("big.bin tagged by the second worker", 90, || {
        env.tags("uploads", "big.bin").contains_key(STATUS)
    });
    let t = env.tags("uploads", "big.bin");
    assert_eq!(t.get(STATUS).map(String::as_str), Some("THREATS_FOUND"));
    assert_eq!(t.get(DBTAG).map(String::as_str), Some("1"));
    wait_until("the message deleted", 30, || env.queued(&queue) == 0);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&second.0),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = second.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM stops the worker cleanly");
}

#[test]
fn two_workers_share_a_queue_of_a_thousand_objects() {
    let Some(env) = Env::start() else { return };
    env.bucket("uploads");
    let queue = env.notify("uploads", "many");
    let n = 1000;
    let infected = |i: usize| i.is_multiple_of(7);
    env.rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let s3 = env.s3.clone();
            let body = if infected(i) {
                eicar()
            } else {
                format!("clean object {i}").into_bytes()
            };
            set.spawn(async move {
                s3.put_object()
                    .bucket("uploads")
                    .key(format!("obj/{i:04}"))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .unwrap();
            });
            if set.len() >= 16 {
                set.join_next().await;
            }
        }
        while set.join_next().await.is_some() {}
    });
    // Both run until the queue has been empty for 10 s (they exit on their own); a message
    // left for a retry (a timeout under load) comes back within its 5 s visibility first.
    let start = || {
        env.worker(
            1,
            &[
                "--queue-url",
                &queue,
                "--wait-seconds",
                "1",
                "--idle-exit",
                "10",
                "--visibility-timeout",
                "5",
                "--s3-concurrency",
                "8",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (start(), start());
    let outs: Vec<_> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut per_worker = Vec::new();
    for o in &outs {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        per_worker.push(String::from_utf8_lossy(&o.stdout).lines().count());
    }
    assert!(
        per_worker.iter().all(|&c| c > 0),
        "both workers took a share: {per_worker:?}"
    );
    assert_eq!(env.queued(&queue), 0);
    let tags: Vec<(usize, Option<String>, Option<String>)> = env.rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..n {
            let t = env
                .s3
                .get_object_tagging()
                .bucket("uploads")
                .key(format!("obj/{i:04}"))
                .send()
                .await
                .unwrap();
            let get = |k: &str| {
                t.tag_set()
                    .iter()
                    .find(|x| x.key() == k)
                    .map(|x| x.value().to_owned())
            };
            out.push((i, get(STATUS), get(DBTAG)));
        }
        out
    });
    for (i, status, db) in tags {
        let want = if infected(i) {
            "THREATS_FOUND"
        } else {
            "NO_THREATS_FOUND"
        };
        assert_eq!(status.as_deref(), Some(want), "obj/{i:04}");
        assert_eq!(db.as_deref(), Some("1"), "obj/{i:04}");
    }
}

#[test]
fn rescan_after_a_database_update_retags_where_it_should() {
    let Some(env) = Env::start() else { return };
    env.bucket("uploads");
    env.put("uploads", "late.bin", LATE, &[]);
    env.put("uploads", "clean.txt", b"clean", &tags_of(2));
    env.put("uploads", "eicar.com", &eicar(), &[]);
    let rescan = |db: u64| run(&mut env.worker(db, &["--rescan", "s3://uploads/"]));
    let r = rescan(1);
    assert_eq!(r.code, 1, "EICAR found: {}", show(&r));
    assert_eq!(
        env.tags("uploads", "late.bin")
            .get(STATUS)
            .map(String::as_str),
        Some("NO_THREATS_FOUND"),
        "v1 misses it"
    );
    // Tagged by a newer database than either: never downgraded, never downloaded.
    env.put(
        "uploads",
        "newer.txt",
        &eicar(),
        &[
            (STATUS.into(), "NO_THREATS_FOUND".into()),
            (DBTAG.into(), "99".into()),
        ],
    );
    // Run v1 again: everything is already tagged by v1, nothing is scanned.
    let r = rescan(1);
    assert!(
        r.stdout
            .contains("s3://uploads/late.bin: NO_THREATS_FOUND already tagged"),
        "{}",
        show(&r)
    );

    let r = rescan(2);
    assert_eq!(r.code, 1, "{}", show(&r));
    let late = env.tags("uploads", "late.bin");
    assert_eq!(
        late.get(STATUS).map(String::as_str),
        Some("THREATS_FOUND"),
        "{}",
        show(&r)
    );
    assert_eq!(late.get(DBTAG).map(String::as_str), Some("2"));
    assert!(
        r.stdout
            .contains(&format!("s3://uploads/late.bin: THREATS_FOUND {LATE_SIG}")),
        "{}",
        show(&r)
    );
    let clean = env.tags("uploads", "clean.txt");
    assert_eq!(
        clean.get(STATUS).map(String::as_str),
        Some("NO_THREATS_FOUND")
    );
    assert_eq!(
        clean.get(DBTAG).map(String::as_str),
        Some("2"),
        "re-scanned by v2"
    );
    assert_eq!(clean.len(), 4, "the owner's two tags kept: {clean:?}");
    let newer = env.tags("uploads", "newer.txt");
    assert_eq!(newer.get(DBTAG).map(String::as_str), Some("99"));
    assert_eq!(
        newer.get(STATUS).map(String::as_str),
        Some("NO_THREATS_FOUND")
    );
    assert!(
        r.stdout
            .contains("s3://uploads/newer.txt: NO_THREATS_FOUND already tagged"),
        "{}",
        show(&r)
    );
}

/// The worker's findings go through vigil-respond's outbox to the config's `[[outputs]]`
/// (here a JSON-lines file), named by the object's URL and member.
#[test]
fn worker_findings_reach_the_configured_outputs() {
    let Some(env) = Env::start() else { return };
    env.bucket("uploads");
    let queue = env.notify("uploads", "findings-queue");
    env.put("uploads", "incoming/bad.com", &eicar(), &[]);
    env.put("uploads", "incoming/fine.txt", b"nothing here", &[]);
    let dir = env.tmp.path();
    let log = dir.join("findings.jsonl");
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "mirrors = [\"http://127.0.0.1:9/\"]\ndatabase_dir = \"db\"\ntrusted_root = \"root.json\"\n\
             pubkeys = [{:?}]\n[fleet]\ncheckin = false\n\
             [findings]\nhostname = \"scanner-1\"\nimds = false\n\
             [[outputs]]\ntype = \"jsonl\"\nname = \"log\"\npath = {:?}\n",
            p(&env.pubkey),
            p(&log)
        ),
    )
    .unwrap();
    let r = run(&mut env.worker(
        1,
        &[
            "--config",
            &p(&config),
            "--queue-url",
            &queue,
            "--wait-seconds",
            "1",
            "--idle-exit",
            "6",
            "--visibility-timeout",
            "5",
        ],
    ));
    assert_eq!(r.code, 0, "{}", show(&r));
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let found: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{lines}\n{}", show(&r));
    let text = found[0].to_string();
    assert!(text.contains("s3://uploads/incoming/bad.com"), "{text}");
    assert!(text.contains(EICAR_SIG), "{text}");
    assert!(text.contains("scanner-1"), "{text}");
}
