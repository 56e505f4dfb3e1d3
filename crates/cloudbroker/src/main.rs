//! `cloudbroker`: the thin binary. Parses the command line, loads the one
//! configuration, and hands over to the services. Every file and directory
//! it creates is private to its user: the process starts with umask 077.
//! Memory the process frees goes back to the system once idle: no
//! transparent huge pages (one touched byte would keep 2 MiB); Argon2's
//! 19 MiB go back soon after a hash (`identity::passwords`).

mod cli;
mod dbtools;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
