//! One client connection of the clamd listener, Unix or TCP: buffered reads against deadlines,
//! command framing (`z`, `n` and the legacy one-packet form), and the descriptors a Unix peer
//! passes for FILDES. Every read has a deadline, so a silent or trickling client costs its
//! slot for a bounded time only.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use super::protocol::{Form, MAX_COMMAND};

/// A connected client socket.
#[derive(Debug)]
pub enum Sock {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Sock {
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
        })
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.shutdown(how),
            Sock::Tcp(s) => s.shutdown(how),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.set_read_timeout(t),
            Sock::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.set_write_timeout(t),
            Sock::Tcp(s) => s.set_write_timeout(t),
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.set_nonblocking(on),
            Sock::Tcp(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => s.read(buf),
            Sock::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => s.write(buf),
            Sock::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What [`Conn::read_frame`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One command, prefix included, terminator excluded.
    Command(Vec<u8>),
    /// The client closed the connection, or sent nothing for the idle time.
    End,
    /// More than [`MAX_COMMAND`] bytes without a terminator.
    TooLong,
    /// A command started but did not end within its deadline.
    TooSlow,
}

/// Descriptors kept waiting for a FILDES command; more are closed at once, so a peer cannot
/// fill the agent's descriptor table.
const MAX_PENDING_FDS: usize = 1;

/// Bytes read from the socket per call.
const READ_CHUNK: usize = 64 << 10;

pub struct Conn {
    sock: Sock,
    /// Received and not yet consumed.
    buf: Vec<u8>,
    /// Descriptors passed with the bytes (SCM_RIGHTS), oldest first.
    fds: VecDeque<OwnedFd>,
}

impl Conn {
    pub fn new(sock: Sock) -> Self {
        Self {
            sock,
            buf: Vec::new(),
            fds: VecDeque::new(),
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self.sock, Sock::Unix(_))
    }

    /// Reads the next command. The first byte may take `idle`; from then on the whole command
    /// must arrive within `whole`. A legacy command (no `z`/`n` prefix) is, as in clamd, what
    /// the first read brought up to its newline, or all of it when there is none.
    pub fn read_frame(&mut self, idle: Duration, whole: Duration) -> io::Result<Frame> {
        if self.buf.is_empty() {
            match self.fill(Instant::now() + idle) {
                Ok(0) => return Ok(Frame::End),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Ok(Frame::End),
                Err(e) => return Err(e),
            }
        }
        let deadline = Instant::now() + whole;
        loop {
            let Some(&first) = self.buf.first() else {
                return Ok(Frame::End);
            };
            let form = Form::of(first);
            if let Some(i) = memchr::memchr(form.terminator(), &self.buf) {
                if i > MAX_COMMAND {
                    return Ok(Frame::TooLong);
                }
                let frame = self.buf[..i].to_vec();
                self.consume(i + 1);
                return Ok(Frame::Command(frame));
            }
            if self.buf.len() > MAX_COMMAND {
                return Ok(Frame::TooLong);
            }
            if form == Form::Legacy {
                let frame = std::mem::take(&mut self.buf);
                return Ok(Frame::Command(frame));
            }
            match self.fill(deadline) {
                // A command cut off by the end of input is not a command.
                Ok(0) => return Ok(Frame::End),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Ok(Frame::TooSlow),
                Err(e) => return Err(e),
            }
        }
    }

    /// Fills `out` completely before `deadline`, or fails (`UnexpectedEof`, `TimedOut`).
    pub fn read_exact(&mut self, out: &mut [u8], deadline: Instant) -> io::Result<()> {
        let mut done = 0;
        while done < out.len() {
            let n = self.read_some(&mut out[done..], deadline)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }

    /// Copies exactly `n` bytes to `sink` before `deadline`.
    pub fn copy_to(
        &mut self,
        mut n: u64,
        sink: &mut dyn Write,
        deadline: Instant,
    ) -> io::Result<()> {
        let mut chunk = vec![0u8; READ_CHUNK];
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(chunk.len());
            let got = self.read_some(&mut chunk[..want], deadline)?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            sink.write_all(&chunk[..got])?;
            n -= got as u64;
        }
        Ok(())
    }

    /// The oldest descriptor the peer passed, waiting for one until `deadline`; then drops the
    /// byte that carried it (clamdscan sends one NUL with the descriptor).
    pub fn take_fd(&mut self, deadline: Instant) -> io::Result<OwnedFd> {
        if !self.is_unix() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "descriptors pass only over a Unix socket",
            ));
        }
        while self.fds.is_empty() {
            if self.fill(deadline)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let fd = self.fds.pop_front().ok_or(io::ErrorKind::UnexpectedEof)?;
        if !self.buf.is_empty() {
            self.consume(1);
        }
        Ok(fd)
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Reads from what is buffered, or else from the socket.
    fn read_some(&mut self, out: &mut [u8], deadline: Instant) -> io::Result<usize> {
        if !self.buf.is_empty() {
            let n = out.len().min(self.buf.len());
            out[..n].copy_from_slice(&self.buf[..n]);
            self.consume(n);
            return Ok(n);
        }
        self.recv(out, deadline)
    }

    /// Appends one read to the buffer; 0 at the end of input.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let mut chunk = vec![0u8; READ_CHUNK];
        let n = self.recv(&mut chunk, deadline)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// One read from the socket before `deadline` (`TimedOut` after it), keeping descriptors
    /// that arrive with the bytes.
    fn recv(&mut self, out: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.sock.set_read_timeout(Some(left))?;
            let got = match &mut self.sock {
                Sock::Tcp(s) => s.read(out),
                Sock::Unix(s) => recv_with_fds(s, out, &mut self.fds),
            };
            match got {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::ErrorKind::TimedOut.into())
                }
                other => return other,
            }
        }
    }
}

/// `recvmsg` on a Unix socket: the bytes, and any descriptors passed with them (close-on-exec;
/// beyond [`MAX_PENDING_FDS`] waiting, closed at once).
fn recv_with_fds(s: &UnixStream, out: &mut [u8], fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        s,
        &mut [IoSliceMut::new(out)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = m {
            for fd in passed {
                if fds.len() < MAX_PENDING_FDS {
                    fds.push_back(fd);
                }
            }
        }
    }
    Ok(msg.bytes)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pair() -> (Conn, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Conn::new(Sock::Unix(a)), b)
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn frames_in_each_form() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"zPING\0nVERSION\nzSCAN /a\nb\0").unwrap();
        assert_eq!(
            c.read_frame(T, T).unwrap(),
            Frame::Command(b"zPING".to_vec())
        );
        assert_eq!(
            c.read_frame(T, T).unwrap(),
            Frame::Command(b"nVERSION".to_vec())
        );
        assert_eq!(
            c.read_frame(T, T).unwrap(),
            Frame::Command(b"zSCAN /a\nb".to_vec())
        );
        // Legacy: one packet is one command, with or without its newline.
        peer.write_all(b"PING").unwrap();
        assert_eq!(
            c.read_frame(T, T).unwrap(),
            Frame::Command(b"PING".to_vec())
        );
        drop(peer);
        assert_eq!(c.read_frame(T, T).unwrap(), Frame::End);
    }

    #[test]
    fn silent_slow_and_long_clients() {
        let (mut c, mut peer) = pair();
        let short = Duration::from_millis(100);
        assert_eq!(c.read_frame(short, short).unwrap(), Frame::End);
        peer.write_all(b"nPI").unwrap();
        assert_eq!(c.read_frame(T, short).unwrap(), Frame::TooSlow);
        let (mut c, mut peer) = pair();
        let long = vec![b'a'; MAX_COMMAND + 10];
        peer.write_all(b"z").unwrap();
        peer.write_all(&long).unwrap();
        assert_eq!(c.read_frame(T, T).unwrap(), Frame::TooLong);
    }

    #[test]
    fn exact_reads_use_the_buffer_first() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"nINSTREAM\n\0\0\0\x03abc").unwrap();
        assert_eq!(
            c.read_frame(T, T).unwrap(),
            Frame::Command(b"nINSTREAM".to_vec())
        );
        let mut len = [0u8; 4];
        c.read_exact(&mut len, Instant::now() + T).unwrap();
        assert_eq!(u32::from_be_bytes(len), 3);
        let mut body = Vec::new();
        c.copy_to(3, &mut body, Instant::now() + T).unwrap();
        assert_eq!(body, b"abc");
        drop(peer);
        let e = c.read_exact(&mut len, Instant::now() + T).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
