//! clamd's command language, parsed from bytes a client sent: which command, its argument, and
//! how the reply must be terminated. No I/O here, so the parser can be fuzzed on its own
//! (`fuzz/fuzz_targets/clamd_command.rs`); the server ([`super::server`]) frames the bytes.
//!
//! A command comes in one of three forms (clamd(8), and clamd's `get_cmd`/`parse_command`):
//! `zCMD arg\0` (NUL-terminated, replies end in NUL), `nCMD arg\n` (newline-terminated, replies
//! end in a newline) and the bare legacy `CMD arg\n`, which clamd accepts only for its older
//! commands (SCAN, CONTSCAN, MULTISCAN, PING, VERSION, RELOAD, SHUTDOWN, QUIT, FILDES), and
//! never inside an IDSESSION. Command names are case-sensitive, as in clamd. Path commands take
//! everything after one space as the path, bytes as they are (Unix paths need not be UTF-8).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use thiserror::Error;

/// The longest command the server reads, terminator and prefix included: a path of PATH_MAX
/// (4096) bytes after the longest command name, with room to spare.
pub const MAX_COMMAND: usize = 8 << 10;

/// How a command was terminated, and so how each reply line must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `z` prefix: NUL-terminated.
    Nul,
    /// `n` prefix: newline-terminated.
    Newline,
    /// No prefix: one command per connection, newline-terminated (clamd's "old style").
    Legacy,
}

impl Form {
    /// The byte that ends each reply line.
    pub fn terminator(self) -> u8 {
        match self {
            Form::Nul => 0,
            Form::Newline | Form::Legacy => b'\n',
        }
    }

    /// The form a command starting with `first` has.
    pub fn of(first: u8) -> Self {
        match first {
            b'z' => Form::Nul,
            b'n' => Form::Newline,
            _ => Form::Legacy,
        }
    }
}

/// What a path command does with a file or directory (clamd scans directories recursively
/// for all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanMode {
    /// SCAN: stop at the first infected file.
    Scan,
    /// CONTSCAN: scan everything, report every infected file.
    Cont,
    /// MULTISCAN: as CONTSCAN, with several threads.
    Multi,
    /// ALLMATCHSCAN: as SCAN, listing every signature that matched the infected file.
    AllMatch,
}

impl ScanMode {
    pub fn name(self) -> &'static str {
        match self {
            ScanMode::Scan => "SCAN",
            ScanMode::Cont => "CONTSCAN",
            ScanMode::Multi => "MULTISCAN",
            ScanMode::AllMatch => "ALLMATCHSCAN",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ping,
    Version,
    /// The version, then `| COMMANDS:` and the commands this server knows.
    VersionCommands,
    Reload,
    /// SHUTDOWN or QUIT.
    Shutdown,
    Stats,
    IdSession,
    End,
    /// Followed by chunks: a 4-byte big-endian length, that many bytes, ..., a zero length.
    InStream,
    /// Followed by a descriptor passed over the Unix socket (SCM_RIGHTS).
    Fildes,
    /// A path command; the path is the client's bytes, not yet checked.
    Scan {
        mode: ScanMode,
        path: PathBuf,
    },
}

/// A command as read, with the form its replies must take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub form: Form,
    pub command: Command,
}

/// Why a command was not understood. The server answers all of these as clamd does,
/// `UNKNOWN COMMAND`, except [`ProtocolError::Empty`] (nothing to answer).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("empty command")]
    Empty,
    #[error("unknown command")]
    Unknown,
    #[error("{0} needs a path")]
    MissingArgument(&'static str),
    #[error("{0} takes no argument")]
    TrailingGarbage(&'static str),
    /// INSTREAM, IDSESSION, END, STATS, VERSIONCOMMANDS and ALLMATCHSCAN need the `z` or `n`
    /// prefix.
    #[error("{0} must be sent with the z or n prefix")]
    NeedsPrefix(&'static str),
}

/// clamd's commands in the order it matches them (VERSIONCOMMANDS before VERSION: a shared
/// prefix), with whether the bare legacy form is accepted.
const COMMANDS: &[(&str, bool)] = &[
    ("SCAN", true),
    ("QUIT", true),
    ("RELOAD", true),
    ("PING", true),
    ("CONTSCAN", true),
    ("VERSIONCOMMANDS", false),
    ("VERSION", true),
    ("END", false),
    ("SHUTDOWN", true),
    ("MULTISCAN", true),
    ("FILDES", true),
    ("STATS", false),
    ("IDSESSION", false),
    ("INSTREAM", false),
    ("ALLMATCHSCAN", false),
];

/// The commands VERSIONCOMMANDS lists: those this server answers.
pub const SUPPORTED: &str = "SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END SHUTDOWN \
                             MULTISCAN FILDES STATS IDSESSION INSTREAM ALLMATCHSCAN";

/// Parses one command as the client framed it: `frame` is everything the client sent for it,
/// the `z`/`n` prefix included and the terminator excluded. A legacy command's trailing `\r`
/// and `\n` are trimmed as clamd trims them (a `z` command's bytes are taken as they are).
pub fn parse_command(frame: &[u8]) -> Result<Request, ProtocolError> {
    let Some(&first) = frame.first() else {
        return Err(ProtocolError::Empty);
    };
    let form = Form::of(first);
    let body = match form {
        Form::Nul => &frame[1..],
        Form::Newline => trim_end(&frame[1..]),
        Form::Legacy => trim_end(frame),
    };
    if body.is_empty() {
        return Err(ProtocolError::Empty);
    }
    let (name, legacy_ok) = COMMANDS
        .iter()
        .copied()
        .find(|(name, _)| body.starts_with(name.as_bytes()))
        .ok_or(ProtocolError::Unknown)?;
    let rest = &body[name.len()..];
    if form == Form::Legacy && !legacy_ok {
        return Err(ProtocolError::NeedsPrefix(name));
    }
    let scan = |mode: ScanMode| -> Result<Command, ProtocolError> {
        match rest.split_first() {
            None => Err(ProtocolError::MissingArgument(name)),
            Some((b' ', path)) => Ok(Command::Scan {
                mode,
                path: PathBuf::from(OsStr::from_bytes(path)),
            }),
            Some(_) => Err(ProtocolError::Unknown),
        }
    };
    let bare = |c: Command| -> Result<Command, ProtocolError> {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(ProtocolError::TrailingGarbage(name))
        }
    };
    let command = match name {
        "SCAN" => scan(ScanMode::Scan)?,
        "CONTSCAN" => scan(ScanMode::Cont)?,
        "MULTISCAN" => scan(ScanMode::Multi)?,
        "ALLMATCHSCAN" => scan(ScanMode::AllMatch)?,
        "QUIT" | "SHUTDOWN" => bare(Command::Shutdown)?,
        "RELOAD" => bare(Command::Reload)?,
        "PING" => bare(Command::Ping)?,
        "VERSIONCOMMANDS" => bare(Command::VersionCommands)?,
        "VERSION" => bare(Command::Version)?,
        "END" => bare(Command::End)?,
        "FILDES" => bare(Command::Fildes)?,
        "STATS" => bare(Command::Stats)?,
        "IDSESSION" => bare(Command::IdSession)?,
        "INSTREAM" => bare(Command::InStream)?,
        _ => return Err(ProtocolError::Unknown),
    };
    Ok(Request { form, command })
}

/// Without trailing `\r` and `\n` (clamd's `cli_chomp`).
fn trim_end(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|&c| c != b'\n' && c != b'\r')
        .map_or(0, |i| i + 1);
    &b[..end]
}

/// Whether clamd accepts `command` inside an IDSESSION (its `execute_or_dispatch_command`):
/// path scans other than SCAN, RELOAD, SHUTDOWN and a nested IDSESSION are not.
pub fn allowed_in_session(command: &Command) -> bool {
    matches!(
        command,
        Command::Ping
            | Command::Version
            | Command::VersionCommands
            | Command::Stats
            | Command::End
            | Command::InStream
            | Command::Fildes
            | Command::Scan {
                mode: ScanMode::Scan,
                ..
            }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cmd(b: &[u8]) -> Result<(Form, Command), ProtocolError> {
        parse_command(b).map(|r| (r.form, r.command))
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(cmd(b"zPING"), Ok((Form::Nul, Command::Ping)));
        assert_eq!(cmd(b"nPING"), Ok((Form::Newline, Command::Ping)));
        assert_eq!(cmd(b"PING"), Ok((Form::Legacy, Command::Ping)));
        assert_eq!(cmd(b"PING\r\n"), Ok((Form::Legacy, Command::Ping)));
        assert_eq!(cmd(b"nPING\r"), Ok((Form::Newline, Command::Ping)));
        assert_eq!(Form::Nul.terminator(), 0);
        assert_eq!(Form::Legacy.terminator(), b'\n');
    }

    #[test]
    fn paths_are_bytes_after_one_space() {
        assert_eq!(
            cmd(b"zSCAN /a b/\xff"),
            Ok((
                Form::Nul,
                Command::Scan {
                    mode: ScanMode::Scan,
                    path: PathBuf::from(OsStr::from_bytes(b"/a b/\xff"))
                }
            ))
        );
        assert_eq!(
            cmd(b"nCONTSCAN /x").unwrap().1,
            Command::Scan {
                mode: ScanMode::Cont,
                path: "/x".into()
            }
        );
        assert_eq!(
            cmd(b"MULTISCAN /x").unwrap().1,
            Command::Scan {
                mode: ScanMode::Multi,
                path: "/x".into()
            }
        );
        // An empty path is a path (it fails to open), as in clamd.
        assert_eq!(
            cmd(b"nSCAN ").unwrap().1,
            Command::Scan {
                mode: ScanMode::Scan,
                path: "".into()
            }
        );
        assert_eq!(cmd(b"nSCAN"), Err(ProtocolError::MissingArgument("SCAN")));
        assert_eq!(cmd(b"nSCANX /x"), Err(ProtocolError::Unknown));
    }

    #[test]
    fn what_clamd_refuses() {
        for (b, e) in [
            (&b""[..], ProtocolError::Empty),
            (b"n", ProtocolError::Empty),
            (b"\r\n", ProtocolError::Empty),
            (b"nping", ProtocolError::Unknown),
            (b"xPING", ProtocolError::Unknown),
            (b"nFOO", ProtocolError::Unknown),
            (b"nPING x", ProtocolError::TrailingGarbage("PING")),
            (b"nPINGX", ProtocolError::TrailingGarbage("PING")),
            (b"INSTREAM", ProtocolError::NeedsPrefix("INSTREAM")),
            (b"IDSESSION", ProtocolError::NeedsPrefix("IDSESSION")),
            (
                b"ALLMATCHSCAN /x",
                ProtocolError::NeedsPrefix("ALLMATCHSCAN"),
            ),
            (
                b"VERSIONCOMMANDS",
                ProtocolError::NeedsPrefix("VERSIONCOMMANDS"),
            ),
            (b"STATS", ProtocolError::NeedsPrefix("STATS")),
            (b"END", ProtocolError::NeedsPrefix("END")),
        ] {
            assert_eq!(cmd(b), Err(e), "{:?}", String::from_utf8_lossy(b));
        }
        assert_eq!(
            cmd(b"nVERSIONCOMMANDS").unwrap().1,
            Command::VersionCommands
        );
        assert_eq!(cmd(b"VERSION").unwrap().1, Command::Version);
        assert_eq!(cmd(b"QUIT").unwrap().1, Command::Shutdown);
    }

    #[test]
    fn session_rules() {
        assert!(allowed_in_session(&Command::Ping));
        assert!(allowed_in_session(&Command::InStream));
        assert!(!allowed_in_session(&Command::IdSession));
        assert!(!allowed_in_session(&Command::Reload));
        assert!(!allowed_in_session(&Command::Scan {
            mode: ScanMode::Cont,
            path: "/".into()
        }));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = parse_command(&b);
        }
    }
}
