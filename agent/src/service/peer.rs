//! Who is asking, and scanning with their rights rather than ours.
//!
//! The service usually runs as root and can read every file; a client may be anyone allowed
//! to connect. So a `scan` request runs with the client's filesystem rights: the kernel gives
//! the peer's uid, gid and supplementary groups at connect time (`SO_PEERCRED`,
//! `SO_PEERGROUPS`), and the threads that walk and open files for that request take them as
//! their effective ids (Linux keeps credentials per thread; the raw `setresuid`/`setresgid`/
//! `setgroups` system calls change only the calling thread, unlike their libc wrappers).
//! Effective ids drop the capabilities that bypass permission checks, so the kernel answers
//! `EACCES` exactly where the client itself would get it: a client learns nothing about a
//! file or directory it could not read itself. The real and saved ids stay the service's, so
//! the client cannot signal or trace those threads, and the threads end with the request.
//!
//! When the service does not run as root and the client is another user, the service cannot
//! take the client's rights, so it refuses to scan paths for it (streams still work: the
//! client sends the bytes it could read).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use rustix::process::{Gid, Uid};

/// A connected client's credentials, as the kernel recorded them when it connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Peer {
    pub fn of(stream: &UnixStream) -> io::Result<Self> {
        let cred = rustix::net::sockopt::socket_peercred(stream.as_fd())?;
        Ok(Self {
            pid: cred.pid.as_raw_nonzero().get(),
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
            groups: peer_groups(stream)?,
        })
    }
}

/// How a request's threads get the peer's filesystem rights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rights {
    /// The peer is the service's own user: nothing to change.
    Same,
    /// Take the peer's ids in each thread that touches the filesystem for it.
    Become(Peer),
    /// The service cannot take another user's ids (it is not root).
    Cannot { service_uid: u32, peer_uid: u32 },
}

impl Rights {
    pub fn for_peer(peer: &Peer) -> Self {
        let me = rustix::process::geteuid().as_raw();
        if peer.uid == me {
            Rights::Same
        } else if me == 0 {
            Rights::Become(peer.clone())
        } else {
            Rights::Cannot {
                service_uid: me,
                peer_uid: peer.uid,
            }
        }
    }

    /// Gives the calling thread these rights for the rest of its life. Call it only on a
    /// thread that ends with the request (the ids are never given back).
    pub fn enter(&self) -> io::Result<()> {
        match self {
            Rights::Same => Ok(()),
            Rights::Cannot {
                service_uid,
                peer_uid,
            } => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the service runs as uid {service_uid} and cannot scan with uid {peer_uid}'s \
                     rights; send the file's bytes with a stream request instead"
                ),
            )),
            Rights::Become(p) => {
                // Threads inherit their creator's ids: one started by a thread that already
                // took them has them (and could no longer set them).
                if rustix::process::geteuid().as_raw() == p.uid
                    && rustix::process::getegid().as_raw() == p.gid
                {
                    return Ok(());
                }
                let groups: Vec<Gid> = p.groups.iter().map(|&g| Gid::from_raw(g)).collect();
                // Groups and gid first: once the euid is not 0, the thread may not set them.
                rustix::thread::set_thread_groups(&groups)?;
                rustix::thread::set_thread_res_gid(None, Gid::from_raw(p.gid), None)?;
                // SAFETY of the design (no unsafe here): the real and saved uid stay 0, so
                // the peer gains no power over this thread; only the effective (and so the
                // filesystem) uid changes, and with it the effective capabilities go.
                rustix::thread::set_thread_res_uid(None, Uid::from_raw(p.uid), None)?;
                Ok(())
            }
        }
    }
}

/// The peer's supplementary groups (`SO_PEERGROUPS`, Linux 4.13+). std and rustix have no
/// safe wrapper, hence the one `unsafe` block of this module.
#[allow(unsafe_code)]
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    use std::os::fd::AsRawFd;
    // NGROUPS_MAX is 65536; ask with a small buffer first, the kernel says how much it needs.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of `len` bytes; the kernel writes at most `len`
        // bytes into it and stores the length it used (or needs, with ERANGE) in `len`.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n.min(groups.len()));
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() && n <= 65536 {
            groups.resize(n, 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_credentials_are_read() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let p = Peer::of(&a).expect("peer");
        assert_eq!(p.uid, rustix::process::geteuid().as_raw());
        assert_eq!(p.gid, rustix::process::getegid().as_raw());
        assert_eq!(p.pid as u32, std::process::id());
        assert_eq!(Rights::for_peer(&p), Rights::Same);
    }

    #[test]
    fn another_user_is_taken_on_by_root_only() {
        let p = Peer {
            pid: 1,
            uid: rustix::process::geteuid().as_raw().wrapping_add(1),
            gid: 1,
            groups: vec![],
        };
        match Rights::for_peer(&p) {
            Rights::Become(q) => assert_eq!(q, p),
            Rights::Cannot { .. } => assert_ne!(rustix::process::geteuid().as_raw(), 0),
            Rights::Same => panic!("another uid is not the same"),
        }
    }
}
