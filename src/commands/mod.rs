//! What each subcommand does, on top of the library pieces.

mod demo;
mod docs;
mod local;
mod remote;
mod server;
mod watch;

pub use crate::client::options::client_env;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<i32> {
    crate::client::predict_overlay::set_mode(cli.connect.remote.predict.into());
    match cli.command {
        // Synchronous commands that need no runtime.
        Some(Command::Explain(a)) => crate::doctor::run_explain(a),
        Some(Command::Doctor(a)) => crate::doctor::run_doctor(a),
        Some(Command::Server(a)) if a.daemon => server::daemon(),
        Some(Command::Completions(a)) => docs::completions(a),
        Some(Command::Man) => docs::man(),
        cmd => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(async move {
                match cmd {
                    Some(Command::New(a)) => local::new(a).await,
                    Some(Command::Attach(mut a)) => {
                        let opts = std::mem::take(&mut a.remote).resolve(&cli.connect.remote);
                        remote::attach(a, opts).await
                    }
                    Some(Command::Ls(mut a)) => {
                        let opts = std::mem::take(&mut a.remote).resolve(&cli.connect.remote);
                        remote::ls(a, opts).await
                    }
                    Some(Command::Kill(mut a)) => {
                        let opts = std::mem::take(&mut a.remote).resolve(&cli.connect.remote);
                        remote::kill(a, opts).await
                    }
                    Some(Command::KillServer) => local::kill_server().await,
                    Some(Command::History(mut a)) => {
                        let opts = std::mem::take(&mut a.remote).resolve(&cli.connect.remote);
                        remote::history(a, opts).await
                    }
                    Some(Command::Server(a)) => server::run(a).await,
                    Some(Command::Demo(a)) => demo::run(a).await,
                    Some(Command::Watch(mut a)) => {
                        let opts = std::mem::take(&mut a.remote).resolve(&cli.connect.remote);
                        watch::run(a, opts).await
                    }
                    None => match cli.connect.destination {
                        Some(_) => remote::open(cli.connect).await,
                        None => {
                            use clap::CommandFactory;
                            Cli::command().print_help()?;
                            Ok(2)
                        }
                    },
                    Some(Command::Explain(_))
                    | Some(Command::Doctor(_))
                    | Some(Command::Completions(_))
                    | Some(Command::Man) => unreachable!(),
                }
            })
        }
    }
}
