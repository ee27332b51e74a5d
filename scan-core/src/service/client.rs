//! The client side: what `vigil-scan --daemon` (and anything else local) uses to ask the
//! service for scans.

use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use super::{FileResult, Pong, Request, ScanDone, VersionInfo};

/// Reply lines longer than this are refused (a file's findings fit in far less).
const MAX_REPLY_LINE: u64 = 64 << 20;

/// Stdin is held in memory up to this size before a `stream` request, then in a temporary file.
const SPOOL_MEMORY: usize = 32 << 20;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    // `cause`, not `source`: the message includes it, and a source would print it twice in
    // an error chain.
    #[error("cannot connect to scan service at {}: {cause}", socket.display())]
    Connect { socket: PathBuf, cause: io::Error },
    #[error("connection to scan service: {0}")]
    Io(io::Error),
    #[error("scan service closed the connection")]
    Closed,
    #[error("request cannot be sent: {0}")]
    Encode(serde_json::Error),
    #[error("unexpected reply from scan service: {0}")]
    Protocol(String),
    /// The service answered `{"error":…}` (`busy`, a refused request, shutting down).
    #[error("scan service: {0}")]
    Server(String),
}

// Not `#[from]`: that would make it the source too and print the cause twice in a chain.
impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// Options of a `scan` request (`recursive` and `exclude` do not apply to streams).
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub recursive: bool,
    pub exclude: Vec<PathBuf>,
    /// Lower the service's size limit for this request.
    pub max_filesize: Option<u64>,
    /// Lower the service's per-file timeout for this request.
    pub timeout_secs: Option<u64>,
}

/// A connection to the scan service. Requests are sent one at a time, in order.
pub struct Client {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects with a 5-second timeout.
    pub fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::connect_timeout(socket, Duration::from_secs(5))
    }

    /// Connects, giving up after `timeout` (a service that stopped accepting leaves
    /// connections waiting in its backlog). Replies are then waited for without a timeout
    /// (a scan may take long); see [`Client::set_timeout`].
    pub fn connect_timeout(
        socket: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let socket = socket.as_ref().to_path_buf();
        let connect_err = |cause| ClientError::Connect {
            socket: socket.clone(),
            cause,
        };
        // std has no connect timeout for Unix sockets: connect on a helper thread.
        let (tx, rx) = mpsc::channel();
        let path = socket.clone();
        std::thread::Builder::new()
            .name("vigil-scan-connect".into())
            .spawn(move || {
                let _ = tx.send(UnixStream::connect(path));
            })
            .map_err(connect_err)?;
        let stream = match rx.recv_timeout(timeout) {
            Ok(r) => r.map_err(connect_err)?,
            Err(_) => {
                return Err(connect_err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timed out",
                )))
            }
        };
        let writer = stream.try_clone().map_err(connect_err)?;
        Ok(Self {
            socket,
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Gives up on a reply (and on sending) after `timeout`; `None`: wait forever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer.set_read_timeout(timeout)?;
        self.writer.set_write_timeout(timeout)?;
        Ok(())
    }

    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.send(&Request::Ping)?;
        let pong: Pong = typed(self.reply()?)?;
        if pong.pong {
            Ok(())
        } else {
            Err(ClientError::Protocol("pong is false".into()))
        }
    }

    /// The service's engine and database versions, signature counts and limits.
    pub fn version(&mut self) -> Result<VersionInfo, ClientError> {
        self.send(&Request::Version)?;
        typed(self.reply()?)
    }

    /// Scans absolute `paths`, calling `on_result` for every file as results arrive.
    pub fn scan(
        &mut self,
        paths: &[PathBuf],
        recursive: bool,
        on_result: impl FnMut(FileResult),
    ) -> Result<ScanDone, ClientError> {
        let opts = ScanOptions {
            recursive,
            ..ScanOptions::default()
        };
        self.scan_with(paths, &opts, on_result)
    }

    /// [`Client::scan`] with every option of the request.
    pub fn scan_with(
        &mut self,
        paths: &[PathBuf],
        opts: &ScanOptions,
        mut on_result: impl FnMut(FileResult),
    ) -> Result<ScanDone, ClientError> {
        self.send(&Request::Scan {
            paths: paths.to_vec(),
            recursive: opts.recursive,
            exclude: opts.exclude.clone(),
            max_filesize: opts.max_filesize,
            timeout_secs: opts.timeout_secs,
        })?;
        loop {
            let v = self.reply()?;
            if v.get("done").is_some() {
                return typed(v);
            }
            on_result(typed(v)?);
        }
    }

    /// Sends everything `reader` yields (stdin) as one `stream` request. The data is spooled
    /// first, since the request states its length, but never more than the service's size
    /// limit and one byte: a longer stream is reported skipped, as a local scan would.
    pub fn scan_stream(
        &mut self,
        reader: impl Read,
    ) -> Result<(FileResult, ScanDone), ClientError> {
        self.scan_stream_with(reader, &ScanOptions::default())
    }

    /// [`Client::scan_stream`] with a lower size limit or timeout.
    pub fn scan_stream_with(
        &mut self,
        reader: impl Read,
        opts: &ScanOptions,
    ) -> Result<(FileResult, ScanDone), ClientError> {
        let service_limit = self.version()?.max_filesize;
        let limit = opts
            .max_filesize
            .map_or(service_limit, |m| m.min(service_limit));
        let mut spool = tempfile::spooled_tempfile(SPOOL_MEMORY);
        let len = io::copy(&mut reader.take(limit.saturating_add(1)), &mut spool)?;
        spool.rewind()?;
        self.send(&Request::Stream {
            len,
            max_filesize: opts.max_filesize,
            timeout_secs: opts.timeout_secs,
        })?;
        // Over the limit the service replies at once and reads none of the bytes.
        let sent = if len > limit {
            Ok(())
        } else {
            io::copy(&mut spool, &mut self.writer)
                .and_then(|_| self.writer.flush())
                .map(|_| ())
        };
        // Read the reply even if sending failed: the service may have refused the stream.
        let first = match (self.reply(), sent) {
            (Ok(v), _) => v,
            (Err(_), Err(e)) => return Err(ClientError::Io(e)),
            (Err(e), Ok(())) => return Err(e),
        };
        let result: FileResult = typed(first)?;
        let done: ScanDone = typed(self.reply()?)?;
        Ok((result, done))
    }

    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(req).map_err(ClientError::Encode)?;
        line.push(b'\n');
        match self.writer.write_all(&line) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                // The service may have answered (`busy`) and closed before reading the request.
                match self.reply() {
                    Err(ClientError::Server(m)) => Err(ClientError::Server(m)),
                    _ => Err(ClientError::Io(e)),
                }
            }
            Err(e) => Err(ClientError::Io(e)),
        }
    }

    /// The next reply line; an `{"error":…}` line becomes [`ClientError::Server`].
    fn reply(&mut self) -> Result<Value, ClientError> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_REPLY_LINE + 1)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(ClientError::Closed);
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.len() as u64 > MAX_REPLY_LINE {
                ClientError::Protocol(format!("reply line longer than {MAX_REPLY_LINE} bytes"))
            } else {
                ClientError::Closed
            });
        }
        let v: Value =
            serde_json::from_slice(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if v.get("status").is_none() {
            if let Some(e) = v.get("error") {
                return Err(ClientError::Server(
                    e.as_str().map_or_else(|| e.to_string(), str::to_string),
                ));
            }
        }
        Ok(v)
    }
}

fn typed<T: DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    T::deserialize(&v).map_err(|e| ClientError::Protocol(format!("{e}: {v}")))
}
