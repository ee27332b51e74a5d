//! An object's body, from the SDK's async stream to the synchronous `Read` the engine's
//! `scan_reader` takes, through a channel of a few chunks: the download runs ahead of the scan
//! by at most [`CHUNKS`] chunks, so memory stays bounded (the engine spools past its own
//! in-memory threshold). A body that stalls for [`STALL`] or ends short of its length is an
//! error, never a hang or a truncated clean verdict.

use std::io::{self, Read};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Chunks in flight between the download and the scan.
pub const CHUNKS: usize = 8;
/// How long the body may send nothing before the download is abandoned.
pub const STALL: Duration = Duration::from_secs(60);

/// The blocking end: read it on a blocking thread (never inside the runtime).
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Starts pumping `body` (of `expected` bytes, when known) into a [`BodyReader`] on the
/// current runtime. `what` names the object in errors.
pub fn pump(mut body: ByteStream, expected: Option<u64>, what: String) -> BodyReader {
    let (tx, rx) = mpsc::channel(CHUNKS);
    tokio::spawn(async move {
        let mut got = 0u64;
        loop {
            let next = match tokio::time::timeout(STALL, body.next()).await {
                Ok(n) => n,
                Err(_) => {
                    let e = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{what}: no data for {}s after {got} bytes", STALL.as_secs()),
                    );
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            match next {
                Some(Ok(chunk)) => {
                    got += chunk.len() as u64;
                    // The scan stopped reading (a size limit): stop downloading.
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let _ = tx
                        .send(Err(io::Error::other(format!("{what}: body: {e}"))))
                        .await;
                    return;
                }
                None => {
                    if let Some(n) = expected.filter(|n| *n != got) {
                        let e = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{what}: body ended after {got} of {n} bytes"),
                        );
                        let _ = tx.send(Err(e)).await;
                    }
                    return;
                }
            }
        }
    });
    BodyReader {
        rx,
        cur: Bytes::new(),
    }
}
