//! The open-file limit against `max_connections`: every connection is a file descriptor, and
//! every download streamed from a directory one more. systemd and most shells start services
//! with a soft limit of 1024 and a far higher hard one; past the soft limit, accepting fails
//! and the cap would never be reached. So the soft limit is raised (never beyond the hard one)
//! to what the cap may need, as Go's runtime does at start for every program.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors for everything but connections: the listener, logs, the runtime, storage.
const SPARE: u64 = 64;

/// Raises the soft limit on open files to what `max_connections` may need, if it is lower and
/// the hard limit allows; warns when it stays too low.
pub fn make_room_for(max_connections: usize) {
    let need = (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(SPARE);
    let now = getrlimit(Resource::Nofile);
    // None is unlimited.
    let soft = now.current.unwrap_or(u64::MAX);
    if soft >= need {
        return;
    }
    let target = now.maximum.map_or(need, |hard| hard.min(need));
    let raised = target > soft
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: now.maximum,
            },
        )
        .is_ok();
    let have = if raised { target } else { soft };
    if have < need {
        tracing::warn!(
            "the open-file limit ({have}) is below what max_connections = {max_connections} \
             may need ({need}: a socket and a file per download); raise it (LimitNOFILE= in a \
             systemd unit) or lower max_connections"
        );
    } else {
        tracing::debug!("raised the open-file limit from {soft} to {have}");
    }
}
