//! The repository layout is plain static files: nginx serving a published directory is enough
//! for tough's HTTP loader to verify and download everything. Skips (saying so) without nginx.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use vigil_format::container::{DatabaseBuilder, SectionKind};
use vigil_format::SecretKey;
use vigil_repository::layout;
use vigil_repository::publish::{self, OnlineKeys, PublishOptions};
use vigil_repository::storage::{DirStorage, Storage};
use vigil_repository::tuf::Expiry;
use vigil_tests::{free_port, wait_for_port, ChildGuard};

const NGINX: &str = "/usr/sbin/nginx";

fn db(version: u64) -> Vec<u8> {
    let body: String = (0..1000)
        .map(|i| {
            format!(
                "Vigil.Nginx.Sig{i}:0:*:{:032x}\n",
                (i as u128 + 1) * 0x1234_5678_9abc_def1
            )
        })
        .collect();
    let mut b = DatabaseBuilder::new(version, 0);
    b.section(SectionKind::Ndb, 1000, body.into_bytes());
    b.build(&SecretKey::from_seed([3; 32])).unwrap()
}

fn nginx_conf(dir: &Path, root: &Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    // As root, nginx workers drop to `nobody`, who cannot read a private temp dir.
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let user = if is_root { "user root;" } else { "" };
    std::fs::write(
        &conf,
        format!(
            "{user} daemon off; master_process off; worker_processes 1; error_log stderr; pid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/px;\n\
               fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;\n\
               server {{ listen 127.0.0.1:{port}; root {}; }} }}\n",
            root.display()
        ),
    )
    .unwrap();
    conf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_a_repository_that_tough_loads() {
    if !Path::new(NGINX).exists() {
        eprintln!("SKIP: {NGINX} not found (apt-get install nginx); .ci/run installs it");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let st: Arc<dyn Storage> = Arc::new(DirStorage::new(&repo_dir));
    let keys = work.path().join("keys");
    publish::init(st.as_ref(), &keys, &Expiry::default())
        .await
        .unwrap();
    let root = std::fs::read(keys.join("root.json")).unwrap();
    let online = OnlineKeys::load(&keys).unwrap();
    let dbs = [db(1), db(2)];
    for d in &dbs {
        publish::publish(
            st.clone(),
            &root,
            &online,
            Some(d.clone()),
            &PublishOptions::default(),
        )
        .await
        .unwrap();
    }
    // nginx runs as this user and must be able to read the tree.
    let port = free_port();
    let conf = nginx_conf(work.path(), &repo_dir, port);
    let _nginx = ChildGuard(
        Command::new(NGINX)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for_port(&addr, 20);
    let base = url::Url::parse(&format!("http://{addr}/")).unwrap();
    let datastore = work.path().join("client-state");
    std::fs::create_dir(&datastore).unwrap();
    let repo = tough::RepositoryLoader::new(
        &root,
        base.join("metadata/").unwrap(),
        base.join("targets/").unwrap(),
    )
    .transport(tough::HttpTransportBuilder::new().build())
    .datastore(&datastore)
    .load()
    .await
    .unwrap();
    assert_eq!(repo.timestamp().signed.version.get(), 2);
    for (i, d) in dbs.iter().enumerate() {
        let name = tough::TargetName::new(layout::full_name(i as u64 + 1)).unwrap();
        let got = tough::IntoVec::into_vec(repo.read_target(&name).await.unwrap().unwrap())
            .await
            .unwrap();
        assert_eq!(&got, d);
    }
    let delta = tough::TargetName::new(layout::delta_name(1, 2)).unwrap();
    let got = tough::IntoVec::into_vec(repo.read_target(&delta).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(
        vigil_format::delta::Delta::apply(&dbs[0], &got).unwrap(),
        dbs[1]
    );
}
