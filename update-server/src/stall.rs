//! The body half of the request timeout: a response that is being sent may take as long as it
//! likes while bytes move, but not sit still. Two sides can stall it:
//!
//! - the client stops taking bytes ([`SendTimeout`], around the connection's socket): a write
//!   that the socket does not accept for the whole limit ends the connection;
//! - storage stops yielding bytes of a streamed body ([`storage_stall`]): the body ends with an
//!   error, which cuts the connection (the client sees a short body, never a wrong one).
//!
//! Each clock runs only while its side is the one being waited for, so a slow client never
//! trips the storage clock and slow storage never trips the client's. The response head has
//! its own deadline, in the handler.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use vigil_repository::storage::{ByteStream, StorageError};

/// Wraps a connection's socket: fails a write that has waited `limit` for the socket to accept
/// a single byte, which happens only when the client has stopped reading (its receive window
/// and our send buffer are full). Any accepted byte restarts the clock; reads are untouched
/// (the header-read timeout covers them).
///
/// The clock is checked when the connection's task wakes. hyper writes again on every wake
/// while it has unsent bytes, so the timer's wake-up is enough to end the stalled write.
pub(crate) struct SendTimeout<T> {
    io: T,
    limit: Option<Duration>,
    /// Made at the first stalled write and reused, so a fast download that often fills the
    /// socket buffer for a moment costs a timer reset, not an allocation.
    timer: Option<Pin<Box<Sleep>>>,
    /// A write is waiting and `timer` holds its deadline.
    waiting: bool,
}

/// The error a stalled write ends with; found in the connection's error to count it.
#[derive(Debug, thiserror::Error)]
#[error("the client took no bytes for {} s", .0.as_secs())]
pub(crate) struct ClientStalled(pub Duration);

impl<T> SendTimeout<T> {
    pub(crate) fn new(io: T, limit: Option<Duration>) -> Self {
        Self {
            io,
            limit,
            timer: None,
            waiting: false,
        }
    }

    /// `r`, the outcome of a write; or the stall error if the write has been pending too long.
    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match &r {
            // Only a byte taken is progress (hyper never writes an empty buffer, but an empty
            // write must not restart the clock).
            Poll::Ready(Ok(0)) => return r,
            Poll::Ready(_) => {
                self.waiting = false;
                return r;
            }
            Poll::Pending => {}
        }
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        if !self.waiting {
            let deadline = Instant::now() + limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.waiting = true;
        }
        let Some(timer) = &mut self.timer else {
            return Poll::Pending; // not reached: set just above
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                ClientStalled(limit),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    // Not watched: a TCP flush is a no-op that is always ready, which is no sign of progress.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// `body`, ended with an error if storage yields nothing for `limit` while the response waits
/// for it. The clock runs only while hyper is asking for the next piece, that is while the
/// client keeps up.
pub(crate) fn storage_stall(body: ByteStream, limit: Option<Duration>, key: &str) -> ByteStream {
    let Some(limit) = limit else {
        return body;
    };
    let key: std::sync::Arc<str> = key.into();
    Box::pin(futures::stream::unfold(Some(body), move |body| {
        let key = key.clone();
        async move {
            let mut body = body?;
            match tokio::time::timeout(limit, body.next()).await {
                Ok(Some(item)) => Some((item, Some(body))),
                Ok(None) => None,
                // Reported once; the stream then ends.
                Err(_) => Some((
                    Err(StorageError::Io {
                        what: "read",
                        key: key.to_string(),
                        source: io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("storage sent nothing for {} s", limit.as_secs()),
                        ),
                    }),
                    None,
                )),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Real time (tokio's paused clock needs its test-util feature, which would rebuild the
    // workspace's tokio); short limits, generous upper bounds.
    const LIMIT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails_after_the_limit() {
        // A pipe of 16 bytes whose reader never reads: the second write waits forever.
        let (client, _server) = tokio::io::duplex(16);
        let mut io = SendTimeout::new(client, Some(LIMIT));
        io.write_all(&[0; 16]).await.unwrap();
        let start = Instant::now();
        let e = tokio::time::timeout(LIMIT * 100, io.write_all(&[0; 16]))
            .await
            .expect("the stalled write is never given up")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.get_ref().is_some_and(|e| e.is::<ClientStalled>()));
        let took = start.elapsed();
        assert!(took >= LIMIT && took < LIMIT * 20, "{took:?}");
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_never_cut() {
        let limit = Duration::from_secs(1);
        let (client, mut server) = tokio::io::duplex(16);
        let mut io = SendTimeout::new(client, Some(limit));
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0; 4];
            // 4 bytes every 50 ms: the whole takes over 3 limits, no wait is near one.
            while got < 256 {
                tokio::time::sleep(limit / 20).await;
                got += server.read(&mut buf).await.unwrap();
            }
        });
        let start = Instant::now();
        io.write_all(&[0; 256]).await.unwrap();
        reader.await.unwrap();
        assert!(start.elapsed() > limit * 2);
    }

    #[tokio::test]
    async fn storage_that_goes_quiet_ends_the_body() {
        let chunks = futures::stream::iter([Ok(bytes::Bytes::from_static(b"abc"))])
            .chain(futures::stream::pending());
        let mut body = storage_stall(Box::pin(chunks), Some(LIMIT), "k");
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"abc");
        let start = Instant::now();
        let e = body.next().await.unwrap().unwrap_err();
        assert!(e.to_string().contains("storage sent nothing"), "{e}");
        assert!(start.elapsed() >= LIMIT);
        assert!(body.next().await.is_none());
    }
}
