//! `abide completions SHELL` and `abide man`: generated from the same clap
//! definitions as the parser, so they never drift from the real options.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// The completion script for `shell`, on stdout.
pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut Cli::command(), "abide", &mut out);
    out.flush()?;
    Ok(0)
}

/// The manual page in roff, on stdout: abide(1), with a section per
/// subcommand (clap_mangen renders one page per command; they are joined).
pub fn man() -> Result<i32> {
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("abide {}", sub.get_name());
        let sub = sub.clone().display_name(name.clone()).bin_name(name);
        let mut section = Vec::new();
        let man = clap_mangen::Man::new(sub);
        man.render_name_section(&mut section)?;
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        man.render_options_section(&mut section)?;
        // Subsections under one heading so `man abide` reads as one page.
        let text = String::from_utf8_lossy(&section).replace(".SH ", ".SS ");
        page.extend_from_slice(text.as_bytes());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&page)?;
    out.flush()?;
    Ok(0)
}
