//! `abide server ...`: the daemon, the bootstrap and the stdio relay.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::ServerArgs;
use crate::config::Config;

pub fn daemon() -> Result<i32> {
    crate::server::daemon::run_blocking(Config::load()?)?;
    Ok(0)
}

fn bootstrap_args(args: &ServerArgs) -> crate::server::bootstrap::BootstrapArgs {
    crate::server::bootstrap::BootstrapArgs {
        udp_ports: args.udp_ports.clone(),
        env: args.env.clone(),
        session: args.session.clone(),
        command: args.command.clone(),
        new: args.new,
        existing: args.existing,
        watch: args.watch,
        then_stdio: args.then_stdio,
        restricted: false,
    }
}

pub async fn run(args: ServerArgs) -> Result<i32> {
    if args.bootstrap {
        return crate::server::bootstrap::run(bootstrap_args(&args)).await;
    }
    if args.stdio {
        if let Some(name) = args.session.clone() {
            if crate::server::stdio::forced_bootstrap() {
                // A forced command standing in for the client's bootstrap:
                // a grant for NAME, which must exist, and nothing else.
                let forced = crate::server::bootstrap::BootstrapArgs {
                    udp_ports: args.udp_ports.clone(),
                    session: Some(name),
                    existing: true,
                    then_stdio: crate::server::stdio::forced_then_stdio(),
                    restricted: true,
                    ..Default::default()
                };
                return crate::server::bootstrap::run(forced).await;
            }
        }
        return crate::server::stdio::run(args.session.clone()).await;
    }
    if args.probe_udp {
        return probe_udp(args).await;
    }
    bail!("abide server needs one of --daemon, --bootstrap, --stdio, --probe-udp")
}

/// How long `--probe-udp` waits for the client's handshake.
const PROBE_WAIT: Duration = Duration::from_secs(15);

async fn probe_udp(args: ServerArgs) -> Result<i32> {
    use crate::transport::quic_probe::{ProbeLine, Responder};
    let range = match &args.udp_ports {
        Some(r) => crate::config::parse_port_range(r)?,
        None => Config::load()?.udp_ports,
    };
    let responder = Responder::bind(range)?;
    let line = ProbeLine {
        port: responder.port,
        fingerprint: responder.fingerprint.clone(),
        server_ip: crate::server::bootstrap::ssh_server_ip(),
    };
    {
        // The client acts on the line while we wait: it must not sit in a buffer.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line.render())?;
        out.flush()?;
    }
    Ok(if responder.answer_one(PROBE_WAIT).await {
        0
    } else {
        1
    })
}
