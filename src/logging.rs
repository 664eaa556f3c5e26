//! tracing setup: the daemon logs to its log file (stderr is redirected there);
//! clients stay quiet unless ABIDE_LOG asks, because their stderr is the user's terminal.

pub fn init(daemon: bool) {
    let filter = std::env::var("ABIDE_LOG").unwrap_or_else(|_| {
        if daemon {
            "info".into()
        } else {
            "off".into()
        }
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
