//! The clamd protocol's command parser (the agent runs as root; any local user allowed on the
//! clamd socket, or anyone reaching its TCP port, sends these bytes): never panics, and a
//! parsed path command keeps every byte of its path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::os::unix::ffi::OsStrExt;
use vigil_agent::clamd::{parse_command, Command};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_command(data) {
        if let Command::Scan { path, .. } = req.command {
            assert!(data.ends_with(path.as_os_str().as_bytes()) || data.ends_with(b"\n") || data.ends_with(b"\r"));
        }
    }
});
