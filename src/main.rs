//! The `authtrail` binary: parses the command line, loads the configuration and wires the
//! stage crates together. Logic lives in the crates.

mod cli;
mod collect;
mod config;
mod demo;
mod eval;
mod export;
mod gen;
mod http;
mod ingest;
mod lake;
mod live;
mod metrics;
mod query;
mod report;
mod respond;
mod rules;
mod run;
mod signals;
mod ui;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a query's scan allocates and frees buffers per page
/// and per batch from several threads, and glibc's malloc and free took 14% of the CPU
/// of a lookup on the 10M-event forensic bench (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli);
    disable_transparent_huge_pages();
    let result = match &cli.command {
        cli::Command::Ingest(args) => ingest::run(&cli, args),
        cli::Command::Alerts(args) => respond::alerts(&cli, args),
        cli::Command::Query(args) => query::run(&cli, args),
        cli::Command::Serve(args) => query::serve(&cli, args),
        cli::Command::Verify(args) => lake::verify_lake(&cli, args),
        cli::Command::Maintain(args) => lake::maintain(&cli, args),
        cli::Command::Run(args) => run::command(&cli, args),
        cli::Command::Gen(args) => gen::run(args),
        cli::Command::Eval(args) => eval::run(args),
        cli::Command::Rules(args) => rules::run(&cli, args),
        cli::Command::Demo(args) => demo::command(&cli, args),
        cli::Command::Collect(args) => collect::command(args),
        cli::Command::Export(args) => export::run(&cli, args),
        cli::Command::Report(args) => report::run(&cli, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            // An error may quote input (a config line, a path): one line, no escapes.
            eprintln!("authtrail: {}", cli::escaped(&format!("{error:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`, which is
/// what mimalloc's `MIMALLOC_ALLOW_THP=0` does; mimalloc's options cannot be set from safe
/// code). Where THP is `always`, memory mimalloc purges and touches again comes back as
/// whole 2 MiB pages the kernel zeroes: 19% of the CPU samples of a file ingest
/// (`clear_page_erms`). Off, ingest and reports spend less system time and memory, and
/// detection runs as fast (docs/benchmarks.md, "Transparent huge pages").
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%error, "transparent huge pages stay as the system sets them");
    }
}
