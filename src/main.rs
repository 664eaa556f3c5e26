use clap::{CommandFactory, FromArgMatches};

use abide::cli::{Cli, Command};

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = cli.check(matches.subcommand_name()) {
        e.exit();
    }
    // The daemon must fork before any thread exists.
    if let Some(Command::Server(s)) = &cli.command {
        if s.daemon && !s.foreground {
            if let Err(e) = abide::server::launch::detach_from_terminal() {
                eprintln!("abide: {e:#}");
                std::process::exit(1);
            }
        }
    }
    let daemon = matches!(&cli.command, Some(Command::Server(s)) if s.daemon);
    if daemon {
        abide::server::launch::harden_process();
    }
    let detached = matches!(&cli.command, Some(Command::Server(s)) if s.daemon && !s.foreground);
    abide::logging::init(daemon, detached);
    let code = match abide::commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            abide::client::tty::restore_if_raw();
            eprintln!("abide: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
