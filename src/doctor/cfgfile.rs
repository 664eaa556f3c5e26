//! A lexical view of an ssh_config file, for *editing* it.
//!
//! Effective values always come from `ssh -G`. To decide where a new line takes
//! effect we still need to know the file's layout: which lines are `Host` or
//! `Match` headers, where blocks end, which blocks could apply to a host, and
//! whether an `Include` could set a keyword. That is all this module does.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Blank,
    Comment,
    Host(Vec<String>),
    Match,
    Include(Vec<String>),
    /// `key` is lower-case; `key_as_written` keeps the user's spelling.
    Setting {
        key: String,
        key_as_written: String,
        value: String,
    },
}

/// Splits `Keyword value`, `Keyword=value` or `Keyword = value` (ssh accepts all).
fn split_keyword(t: &str) -> (&str, &str) {
    let end = t
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(t.len());
    let (key, rest) = t.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    (key, rest.trim())
}

/// Whitespace-separated arguments, with "double quotes" grouping as in ssh.
pub fn split_args(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

pub fn classify(line: &str) -> Kind {
    let t = line.trim();
    if t.is_empty() {
        return Kind::Blank;
    }
    if t.starts_with('#') {
        return Kind::Comment;
    }
    let (key, value) = split_keyword(t);
    match key.to_ascii_lowercase().as_str() {
        "host" => Kind::Host(split_args(value)),
        "match" => Kind::Match,
        "include" => Kind::Include(split_args(value)),
        lower => Kind::Setting {
            key: lower.to_string(),
            key_as_written: key.to_string(),
            value: value.to_string(),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// Lines before the first Host/Match: they apply to every host.
    Preamble,
    Host(Vec<String>),
    Match,
}

/// Lines `start..end` (the header, if any, is `start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub start: usize,
    pub end: usize,
}

pub fn blocks(kinds: &[Kind]) -> Vec<Block> {
    let mut out = vec![Block {
        kind: BlockKind::Preamble,
        start: 0,
        end: kinds.len(),
    }];
    for (i, k) in kinds.iter().enumerate() {
        let kind = match k {
            Kind::Host(p) => BlockKind::Host(p.clone()),
            Kind::Match => BlockKind::Match,
            _ => continue,
        };
        out.last_mut().expect("preamble").end = i;
        out.push(Block {
            kind,
            start: i,
            end: kinds.len(),
        });
    }
    out
}

/// ssh's wildcard matching: `*` any run, `?` one character, case-insensitive.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

/// Whether a `Host` line's patterns select `host`: some pattern matches and no
/// negated (`!pattern`) one does, as in ssh.
pub fn host_matches(patterns: &[String], host: &str) -> bool {
    let mut any = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, host) {
                return false;
            }
        } else if wildcard(p, host) {
            any = true;
        }
    }
    any
}

/// Whether the files an `Include` names could set `key` (lower-case). It reads
/// them only for the keyword, not for meaning; an unreadable file counts as
/// "could", which at worst places a new setting earlier than necessary.
pub fn include_may_set(args: &[String], key: &str, home: &Path, depth: u32) -> bool {
    // ssh itself refuses deeper nesting than 16.
    if depth > 16 {
        return true;
    }
    args.iter().any(|arg| {
        expand(arg, home)
            .iter()
            .any(|file| match std::fs::read_to_string(file) {
                Err(_) => true,
                Ok(text) => text.lines().any(|l| match classify(l) {
                    Kind::Setting { key: k, .. } => k == key,
                    Kind::Include(inner) => include_may_set(&inner, key, home, depth + 1),
                    _ => false,
                }),
            })
    })
}

/// Include paths as ssh resolves them for a user config: `~` is the home,
/// relative paths are relative to `~/.ssh`, and wildcards are globbed.
fn expand(arg: &str, home: &Path) -> Vec<PathBuf> {
    let path = if let Some(rest) = arg.strip_prefix("~/") {
        home.join(rest)
    } else if Path::new(arg).is_absolute() {
        PathBuf::from(arg)
    } else {
        home.join(".ssh").join(arg)
    };
    let mut found = vec![PathBuf::from("/")];
    for comp in path.components().skip(1) {
        let name = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &found {
            if name.contains(['*', '?']) {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && wildcard(&name, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            } else {
                next.push(dir.join(&*name));
            }
        }
        found = next;
    }
    found.into_iter().filter(|p| p.is_file()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_all_spellings() {
        assert_eq!(classify("  # c"), Kind::Comment);
        assert_eq!(classify("   "), Kind::Blank);
        assert_eq!(
            classify("Host a \"b c\" !d"),
            Kind::Host(vec!["a".into(), "b c".into(), "!d".into()])
        );
        assert_eq!(classify("match host x exec \"true\""), Kind::Match);
        assert_eq!(
            classify("Include config.d/*"),
            Kind::Include(vec!["config.d/*".into()])
        );
        for line in [
            "ServerAliveInterval 30",
            "serveraliveinterval=30",
            "  ServerAliveInterval = 30",
        ] {
            match classify(line) {
                Kind::Setting { key, value, .. } => {
                    assert_eq!(key, "serveraliveinterval");
                    assert_eq!(value, "30");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn blocks_split_at_host_and_match() {
        let kinds: Vec<Kind> = ["User me", "", "Host a", "  Port 2", "Match all", "  X y"]
            .iter()
            .map(|l| classify(l))
            .collect();
        let b = blocks(&kinds);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].start, b[0].end), (0, 2));
        assert_eq!(b[1].kind, BlockKind::Host(vec!["a".into()]));
        assert_eq!((b[1].start, b[1].end), (2, 4));
        assert_eq!(
            (b[2].kind.clone(), b[2].start, b[2].end),
            (BlockKind::Match, 4, 6)
        );
    }

    #[test]
    fn host_patterns_like_ssh() {
        let p = |s: &str| split_args(s);
        assert!(host_matches(&p("*"), "example.com"));
        assert!(host_matches(&p("*.example.com"), "Web.Example.com"));
        assert!(!host_matches(&p("*.example.com"), "example.com"));
        assert!(host_matches(&p("web? db"), "web1"));
        assert!(!host_matches(&p("* !bastion"), "bastion"));
        assert!(host_matches(&p("* !bastion"), "web"));
        assert!(
            !host_matches(&p("!bastion"), "web"),
            "only negations never match"
        );
    }

    #[test]
    fn include_scan_follows_globs_and_nesting() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(ssh.join("config.d")).unwrap();
        std::fs::write(ssh.join("config.d/10-work"), "Host w\n  Include deep\n").unwrap();
        std::fs::write(ssh.join("config.d/20-home"), "Host h\n  User me\n").unwrap();
        std::fs::write(ssh.join("deep"), "ServerAliveInterval 5\n").unwrap();
        let args = vec!["config.d/*".to_string()];
        assert!(include_may_set(
            &args,
            "serveraliveinterval",
            home.path(),
            0
        ));
        assert!(!include_may_set(&args, "connecttimeout", home.path(), 0));
        assert!(!include_may_set(
            &["nothing-*".to_string()],
            "user",
            home.path(),
            0
        ));
        let abs = vec![ssh.join("config.d/20-home").display().to_string()];
        assert!(include_may_set(&abs, "user", home.path(), 0));
    }
}
