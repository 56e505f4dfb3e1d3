//! `cloudbroker`: the thin binary. Parses the command line, loads the one
//! configuration, and hands over to the services. Every file and directory
//! it creates is private to its user: the process starts with umask 077.
//! Memory the process frees goes back to the system once idle: no
//! transparent huge pages (one touched byte would keep 2 MiB); Argon2's
//! 19 MiB go back soon after a hash (`identity::passwords`); the allocator
//! runs with the options of [`ALLOCATOR_OPTIONS`] (set before it starts,
//! through the environment: see [`with_allocator_options`]).

mod cli;
mod dbtools;

use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options, read from the environment when the process starts
/// (before `main`; setting one from code needs `unsafe`, which the
/// workspace forbids). `PURGE_DELAY=0`: memory freed goes back to the
/// system at once; by default it waits 1 s and then for the thread that
/// freed it to free or end something else, which an idle broker's threads
/// do not (idle RSS 49.8 -> 39.8 MB). `ARENA_EAGER_COMMIT=0`: the arena is
/// committed as it is used, not in whole chunks (-> 36.3 MB).
/// bench/README.md, "Issue 28, session 37".
const ALLOCATOR_OPTIONS: [(&str, &str); 2] = [("MIMALLOC_PURGE_DELAY", "0"), ("MIMALLOC_ARENA_EAGER_COMMIT", "0")];

/// Starts this program again (the same process: `exec`) with the options
/// of [`ALLOCATOR_OPTIONS`] that the environment does not set (one set
/// there is kept: an operator may choose otherwise); returns only when
/// every option is set already or the `exec` failed (then the process goes
/// on with the allocator's defaults).
fn with_allocator_options() {
    let missing: Vec<_> = ALLOCATOR_OPTIONS.iter().filter(|(k, _)| std::env::var_os(k).is_none()).collect();
    if missing.is_empty() {
        return;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("cloudbroker"));
    // `/proc/self/exe`: this very program, even if its file was replaced or moved since.
    let mut again = std::process::Command::new("/proc/self/exe");
    std::os::unix::process::CommandExt::arg0(&mut again, arg0);
    again.args(args);
    for (k, v) in missing {
        again.env(k, v);
    }
    let e = std::os::unix::process::CommandExt::exec(&mut again);
    eprintln!("warning: cannot restart with the allocator's options ({e}); going on without them");
}

fn main() -> ExitCode {
    with_allocator_options();
    // Before anything is created: the data directory (0700), the database
    // and its -wal/-shm files, key and password files (0600).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // mimalloc asks for transparent huge pages on its arenas: every 2 MiB
    // region touched at all is then resident in full (idle: 37 MB of heap
    // instead of 24). Off for this process (and its children); best effort.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
