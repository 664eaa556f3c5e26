//! `abide server ...`: the daemon, the bootstrap and the stdio relay.

use anyhow::{bail, Result};

use crate::cli::ServerArgs;
use crate::config::Config;

pub fn daemon() -> Result<i32> {
    crate::server::daemon::run_blocking(Config::load()?)?;
    Ok(0)
}

pub async fn run(args: ServerArgs) -> Result<i32> {
    if args.bootstrap {
        return crate::server::bootstrap::run(args).await;
    }
    if args.stdio {
        return crate::server::stdio::run().await;
    }
    bail!("abide server needs one of --daemon, --bootstrap, --stdio")
}
