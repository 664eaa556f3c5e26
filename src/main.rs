use clap::Parser;

fn main() {
    let cli = abide::cli::Cli::parse();
    let result = match cli.command {
        Some(abide::cli::Command::Explain(a)) => abide::doctor::run_explain(a),
        Some(abide::cli::Command::Doctor(a)) => abide::doctor::run_doctor(a),
        None => Ok(0),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("abide: {e:#}");
            std::process::exit(1);
        }
    }
}
