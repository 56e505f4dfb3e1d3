//! `cloudbroker`: the thin binary. Parses the command line, loads the one
//! configuration, and hands over to the services. Every file and directory
//! it creates is private to its user: the process starts with umask 077.
//! Memory the process frees goes back to the system once idle: no
//! transparent huge pages (one touched byte would keep 2 MiB), and a
//! blocking thread (where Argon2's 19 MiB live) ends soon after its work.

mod cli;
mod dbtools;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long an idle thread of the blocking pool lives (tokio's default: 10
/// s). mimalloc returns freed memory to the system after its purge delay (1
/// s), but only when some thread next frees a page or ends: an idle broker
/// does neither, so the 19 MiB of the last Argon2 hash (run on the blocking
/// pool) stayed resident. A blocking thread now ends 2 s after its last
/// task, and its end returns what was freed more than a second before.
const BLOCKING_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> ExitCode {
    // Before anything is created: the data directory (0700), the database
    // and its -wal/-shm files, key and password files (0600).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // mimalloc asks for transparent huge pages on its arenas: every 2 MiB
    // region touched at all is then resident in full (idle: 37 MB of heap
    // instead of 24). Off for this process (and its children); best effort.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
