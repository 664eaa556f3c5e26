//! `abide completions SHELL`, `abide man` and `--version`: generated from the
//! clap definitions, so they name every subcommand the parser knows.

mod common;

use common::BIN;

fn run(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "abide {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

const SUBCOMMANDS: [&str; 8] = [
    "new",
    "attach",
    "ls",
    "kill",
    "demo",
    "explain",
    "doctor",
    "completions",
];

#[test]
fn completions_name_every_subcommand_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(script.contains("no-deploy"), "{shell}: options too");
    }
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F _abide"),
        "a bash completion function"
    );
}

#[test]
fn man_page_is_roff_with_every_subcommand() {
    let page = run(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH abide 1"),
        "{page}"
    );
    assert!(page.contains(".TH abide 1"));
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("abide {sub}")) || page.contains(&format!("abide\\-{sub}")),
            "man page lacks {sub}"
        );
    }
    assert!(page.contains("no\\-deploy"));
}

#[test]
fn version_names_the_protocol() {
    let v = run(&["--version"]);
    assert_eq!(
        v.trim(),
        format!(
            "abide {} (protocol {})",
            env!("CARGO_PKG_VERSION"),
            abide::proto::frame::PROTOCOL_VERSION
        )
    );
}
