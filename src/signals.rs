//! SIGINT and SIGTERM: the first asks for a clean stop, a second one exits at once.

use anyhow::Context;

/// Calls `on_first` at the first SIGINT or SIGTERM (it asks the process to stop cleanly:
/// flush, checkpoint, commit); a second signal exits at once with status 130.
pub fn install(on_first: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    std::thread::Builder::new()
        .name("authtrail-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut terminate =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("install SIGTERM handler");
                let mut on_first = Some(on_first);
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = terminate.recv() => {}
                    }
                    match on_first.take() {
                        Some(stop) => stop(),
                        None => {
                            eprintln!("authtrail: second signal, exiting without flushing");
                            std::process::exit(130);
                        }
                    }
                }
            });
        })
        .context("spawning the signal handler thread")?;
    Ok(())
}
