//! `--fix`: put keepalive settings into the user's ssh config where ssh will
//! actually use them, without disturbing anything else.
//!
//! ssh uses the *first* value it finds for a keyword, reading the file top to
//! bottom (Includes inline, Host/Match blocks only when they apply). So:
//! - a value already set by the first applicable line is respected or changed
//!   in place, never duplicated below it (a duplicate would be dead);
//! - a new `Host HOST` block goes before the first block that could set the
//!   keyword for HOST (e.g. an earlier `Host *`), or at the end if none does;
//! - if the global lines at the top set it, the new block goes above them and
//!   a `Host *` line after it keeps those lines applying to every host.
//!
//! Writing: a timestamped backup first, then an atomic replace (temp file +
//! rename) with the original's permissions; a read-only file is an error.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::cfgfile::{self, Block, BlockKind, Kind};
use super::timefmt;

/// The host name used to ask "what applies to any host" (`--all-hosts`, or
/// doctor without HOST). `.invalid` is reserved (RFC 2606): no real host block
/// names it.
pub const GENERIC_HOST: &str = "abide-doctor-any-host.invalid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host(String),
    AllHosts,
}

impl Target {
    fn host(&self) -> &str {
        match self {
            Target::Host(h) => h,
            Target::AllHosts => GENERIC_HOST,
        }
    }
    fn pattern(&self) -> &str {
        match self {
            Target::Host(h) => h,
            Target::AllHosts => "*",
        }
    }
}

/// A setting `--fix` wants in effect.
#[derive(Debug, Clone)]
pub struct Want {
    /// As written into the file, e.g. `ServerAliveInterval`.
    pub key: &'static str,
    pub value: String,
    /// A companion is added only where nothing sets it yet: it completes the
    /// recommended pair but never overrides a choice the user made.
    pub companion: bool,
}

#[derive(Debug)]
pub struct Plan {
    pub new_text: String,
    /// What will change, one sentence each.
    pub actions: Vec<String>,
    /// Wanted settings left alone, and why.
    pub kept: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        !self.actions.is_empty()
    }
}

/// Where a new block goes; the derived order is "earliest first".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum NewBlockAt {
    /// Above the global lines (needs a `Host *` after it).
    Top(usize),
    Before(usize),
    End,
}

/// `include_sets(args, key)`: could the files of an Include set `key`?
pub fn plan(
    original: &str,
    target: &Target,
    wants: &[Want],
    include_sets: &dyn Fn(&[String], &str) -> bool,
    today: &str,
) -> Plan {
    let eol = if original.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let lines: Vec<&str> = original.lines().collect();
    let kinds: Vec<Kind> = lines.iter().map(|l| cfgfile::classify(l)).collect();
    let blocks = cfgfile::blocks(&kinds);
    let host = target.host();
    let applies = |b: &Block| match &b.kind {
        BlockKind::Preamble => true,
        BlockKind::Host(p) => cfgfile::host_matches(p, host),
        // Match conditions (exec, canonical, …) cannot be judged here;
        // assuming they apply can only place our lines earlier, never dead.
        BlockKind::Match => true,
    };
    let is_exact = |b: &Block| match (&b.kind, target) {
        (BlockKind::Host(p), _) => p.len() == 1 && p[0].eq_ignore_ascii_case(target.pattern()),
        (BlockKind::Preamble, Target::AllHosts) => true,
        _ => false,
    };
    // The first block written just for the target, which we may add lines to:
    // `Host HOST` (or `Host *`); for all hosts, failing that, the global lines
    // at the top if there are any settings there.
    let exact = blocks
        .iter()
        .find(|b| is_exact(b) && b.kind != BlockKind::Preamble)
        .or_else(|| {
            blocks.first().filter(|b| {
                *target == Target::AllHosts
                    && (b.start..b.end).any(|i| matches!(kinds[i], Kind::Setting { .. }))
            })
        });

    let mut replace: BTreeMap<usize, String> = BTreeMap::new();
    let mut into_exact: Vec<String> = Vec::new();
    let mut new_block: Vec<String> = Vec::new();
    let mut new_at: Option<NewBlockAt> = None;
    let mut actions = Vec::new();
    let mut kept = Vec::new();
    // For the one sentence describing a new block: what goes in, and why there.
    let mut new_keys: Vec<String> = Vec::new();
    let mut new_reasons: Vec<String> = Vec::new();
    let block_of = |i: usize| {
        blocks
            .iter()
            .find(|b| b.start <= i && i < b.end)
            .expect("every line is in a block")
    };

    for want in wants {
        let key = want.key.to_ascii_lowercase();
        let setter = (0..lines.len()).find(|&i| {
            applies(block_of(i))
                && match &kinds[i] {
                    Kind::Setting { key: k, .. } => *k == key,
                    Kind::Include(args) => include_sets(args, &key),
                    _ => false,
                }
        });
        let indent = exact
            .map(|b| indent_of(&lines, &kinds, b))
            .unwrap_or("    ");
        let line_for = |indent: &str| format!("{indent}{} {}", want.key, want.value);
        match setter {
            Some(i) => {
                let b = block_of(i);
                if let Kind::Setting {
                    value,
                    key_as_written,
                    ..
                } = &kinds[i]
                {
                    if value.eq_ignore_ascii_case(&want.value) {
                        kept.push(format!(
                            "{} {} is already set on line {}.",
                            want.key,
                            want.value,
                            i + 1
                        ));
                        continue;
                    }
                    if want.companion {
                        kept.push(format!(
                            "{} left as is: line {} sets it to {value}.",
                            want.key,
                            i + 1
                        ));
                        continue;
                    }
                    if is_exact(b) {
                        let lead = &lines[i][..lines[i].len() - lines[i].trim_start().len()];
                        replace.insert(i, format!("{lead}{key_as_written} {}", want.value));
                        actions.push(format!(
                            "{} changed from {value} to {} on line {}.",
                            want.key,
                            want.value,
                            i + 1
                        ));
                        continue;
                    }
                } else if want.companion {
                    kept.push(format!(
                        "{} left as is: the Include on line {} may set it.",
                        want.key,
                        i + 1
                    ));
                    continue;
                }
                // Set by a block that is not ours (e.g. `Host *`) or an Include:
                // our value has to come before it.
                let what = match &kinds[i] {
                    Kind::Include(_) => {
                        format!("the Include on line {} may set {}", i + 1, want.key)
                    }
                    _ => format!(
                        "line {} sets {} and ssh uses the first value it finds",
                        i + 1,
                        want.key
                    ),
                };
                match exact {
                    Some(e) if e.start < b.start => {
                        into_exact.push(line_for(indent));
                        actions.push(format!(
                            "{} ({what}).",
                            added_to(want, target, e).trim_end_matches('.')
                        ));
                    }
                    _ => {
                        let at = if b.kind == BlockKind::Preamble {
                            NewBlockAt::Top(first_global_line(&kinds))
                        } else {
                            NewBlockAt::Before(attach_comments(&kinds, b.start))
                        };
                        new_at = Some(new_at.map_or(at, |old| old.min(at)));
                        new_block.push(line_for("    "));
                        new_keys.push(format!("{} {}", want.key, want.value));
                        new_reasons.push(what);
                    }
                }
            }
            // Nothing sets it: anywhere works. Keep the pair together if a
            // new block is being made for the main setting.
            None => match exact.filter(|_| !(want.companion && new_at.is_some())) {
                Some(e) => {
                    into_exact.push(line_for(indent));
                    actions.push(added_to(want, target, e));
                }
                None => {
                    new_at = Some(new_at.unwrap_or(NewBlockAt::End));
                    new_block.push(line_for("    "));
                    new_keys.push(format!("{} {}", want.key, want.value));
                }
            },
        }
    }

    // Assemble: insertions keyed by the line they go before (len = end).
    let mut before: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    if let Some(e) = exact.filter(|_| !into_exact.is_empty()) {
        let last = (e.start..e.end)
            .rev()
            .find(|&i| !matches!(kinds[i], Kind::Blank | Kind::Comment))
            .unwrap_or(e.start);
        before.entry(last + 1).or_default().extend(into_exact);
    }
    if let Some(at) = new_at {
        let header = format!(
            "# Added by `abide doctor --fix` on {today}: keepalives so idle sessions survive NAT and firewall timeouts."
        );
        let mut block = Vec::new();
        let pos = match at {
            NewBlockAt::Top(p) | NewBlockAt::Before(p) => p,
            NewBlockAt::End => lines.len(),
        };
        let place = match at {
            NewBlockAt::End => "at the end".to_string(),
            _ => format!("before line {}", pos + 1),
        };
        let why = if new_reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", new_reasons.join("; "))
        };
        actions.push(format!(
            "{} added in a new `Host {}` block {place}{why}.",
            new_keys.join(", "),
            target.pattern()
        ));
        let prev_blank = pos == 0 || matches!(kinds[pos - 1], Kind::Blank);
        if at == NewBlockAt::End && !prev_blank {
            block.push(String::new());
        }
        block.push(header);
        block.push(format!("Host {}", target.pattern()));
        block.extend(new_block);
        if let NewBlockAt::Top(_) = at {
            block.push(String::new());
            block.push(
                "# Added by `abide doctor --fix`: the lines below applied to every host before the block above was added; `Host *` keeps it that way."
                    .to_string(),
            );
            block.push("Host *".to_string());
        } else if at != NewBlockAt::End {
            block.push(String::new());
        }
        before.entry(pos).or_default().splice(0..0, block);
    }

    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 8);
    for (i, line) in lines.iter().enumerate() {
        if let Some(ins) = before.remove(&i) {
            out.extend(ins);
        }
        out.push(replace.remove(&i).unwrap_or_else(|| line.to_string()));
    }
    if let Some(ins) = before.remove(&lines.len()) {
        out.extend(ins);
    }
    let mut new_text = out.join(eol);
    if !new_text.is_empty() && (original.is_empty() || original.ends_with('\n')) {
        new_text.push_str(eol);
    }
    Plan {
        new_text,
        actions,
        kept,
    }
}

fn added_to(want: &Want, target: &Target, b: &Block) -> String {
    match b.kind {
        BlockKind::Preamble => format!(
            "{} {} added to the global settings at the top.",
            want.key, want.value
        ),
        _ => format!(
            "{} {} added to the `Host {}` block on line {}.",
            want.key,
            want.value,
            target.pattern(),
            b.start + 1
        ),
    }
}

/// Indentation of the settings in a block, so added lines look like the rest.
fn indent_of<'a>(lines: &[&'a str], kinds: &[Kind], b: &Block) -> &'a str {
    if b.kind == BlockKind::Preamble {
        return "";
    }
    (b.start + 1..b.end)
        .find(|&i| matches!(kinds[i], Kind::Setting { .. }))
        .map(|i| &lines[i][..lines[i].len() - lines[i].trim_start().len()])
        .filter(|s| !s.is_empty())
        .unwrap_or("    ")
}

/// Comments directly above a header describe it; insert above them.
fn attach_comments(kinds: &[Kind], mut header: usize) -> usize {
    while header > 0 && kinds[header - 1] == Kind::Comment {
        header -= 1;
    }
    header
}

/// The first line of the global part that is not a comment or blank, so the
/// file's opening comments stay at the top.
fn first_global_line(kinds: &[Kind]) -> usize {
    kinds
        .iter()
        .position(|k| !matches!(k, Kind::Blank | Kind::Comment))
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error(
        "{path} is read-only (mode {mode:04o}); not changing it. Make it writable \
         (chmod u+w {path}) and run again, or add the lines shown below yourself"
    )]
    ReadOnly { path: String, mode: u32 },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FixError + 'a {
    move |source| FixError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// A planned change, read and diffed but not yet written.
#[derive(Debug)]
pub struct Prepared {
    /// The file to write (the symlink target, if the config is a symlink).
    pub path: PathBuf,
    existing: Option<String>,
    pub plan: Plan,
    pub diff: String,
    now: SystemTime,
}

#[derive(Debug)]
pub struct Written {
    pub created: bool,
    pub backup: Option<PathBuf>,
}

/// Reads `path` (a missing file is fine) and plans the change. `home`
/// resolves Include paths the way ssh does for a user config.
pub fn prepare(
    path: &Path,
    home: &Path,
    target: &Target,
    wants: &[Want],
) -> Result<Prepared, FixError> {
    // Dotfile managers often make the config a symlink; edit what it points to
    // rather than replacing the link with a file.
    let real = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(io("resolving", path)(e)),
    };
    let existing = match fs::read_to_string(&real) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("reading", &real)(e)),
    };
    let include_sets = |args: &[String], key: &str| cfgfile::include_may_set(args, key, home, 0);
    let now = SystemTime::now();
    let plan = plan(
        existing.as_deref().unwrap_or(""),
        target,
        wants,
        &include_sets,
        &timefmt::date(now),
    );
    let shown = real.display().to_string();
    let old_name = if existing.is_some() {
        shown.as_str()
    } else {
        "/dev/null"
    };
    let diff = super::diff::unified(
        existing.as_deref().unwrap_or(""),
        &plan.new_text,
        old_name,
        &shown,
        3,
    );
    Ok(Prepared {
        path: real,
        existing,
        plan,
        diff,
        now,
    })
}

impl Prepared {
    /// Writes the planned text: backup first, then an atomic replace. Does
    /// nothing when the plan has no changes.
    pub fn write(&self) -> Result<Written, FixError> {
        let mut w = Written {
            created: false,
            backup: None,
        };
        if !self.plan.changes() {
            return Ok(w);
        }
        let real = &self.path;
        match &self.existing {
            None => {
                create_new_config(real, &self.plan.new_text)?;
                w.created = true;
            }
            Some(old) => {
                let meta = fs::metadata(real).map_err(io("inspecting", real))?;
                let mode = meta.permissions().mode() & 0o7777;
                // The write bits, not only access(2): root may write anything,
                // but a config made read-only on purpose (or by a dotfile
                // manager) must not be replaced behind the owner's back.
                let writable = mode & 0o222 != 0
                    && nix::unistd::access(real.as_path(), nix::unistd::AccessFlags::W_OK).is_ok();
                if !writable {
                    return Err(FixError::ReadOnly {
                        path: real.display().to_string(),
                        mode,
                    });
                }
                w.backup = Some(backup(real, old, mode, self.now)?);
                replace_atomically(real, &self.plan.new_text, mode)?;
            }
        }
        Ok(w)
    }
}

/// A missing config: create `~/.ssh` (0700) if needed and the file as 0600,
/// the modes ssh insists on.
fn create_new_config(path: &Path, text: &str) -> Result<(), FixError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
            fs::set_permissions(dir, Permissions::from_mode(0o700))
                .map_err(io("setting permissions of", dir))?;
        }
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating", path))?;
    f.write_all(text.as_bytes()).map_err(io("writing", path))?;
    f.sync_all().map_err(io("writing", path))
}

/// `config.abide-backup-20250601-101500` next to the file, same mode; never
/// overwrites an earlier backup.
fn backup(path: &Path, text: &str, mode: u32, now: SystemTime) -> Result<PathBuf, FixError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let stamp = timefmt::stamp(now);
    for n in 0..100 {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = path.with_file_name(format!("{name}.abide-backup-{stamp}{suffix}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&candidate)
        {
            Ok(mut f) => {
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io("writing the backup", &candidate))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("creating the backup", &candidate)(e)),
        }
    }
    Err(FixError::Io {
        action: "finding a free backup name for",
        path: path.display().to_string(),
        source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    })
}

/// Temp file in the same directory, then rename: ssh never sees half a file.
fn replace_atomically(path: &Path, text: &str, mode: u32) -> Result<(), FixError> {
    let tmp = path.with_file_name(format!(
        ".{}.abide-tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("creating", &tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io("writing", &tmp))?;
        fs::rename(&tmp, path).map_err(io("replacing", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants() -> Vec<Want> {
        vec![
            Want {
                key: "ServerAliveInterval",
                value: "15".into(),
                companion: false,
            },
            Want {
                key: "ServerAliveCountMax",
                value: "4".into(),
                companion: true,
            },
        ]
    }

    fn host(h: &str) -> Target {
        Target::Host(h.into())
    }

    fn run(original: &str, target: &Target) -> Plan {
        plan(original, target, &wants(), &|_, _| false, "2025-01-02")
    }

    const HEADER: &str = "# Added by `abide doctor --fix` on 2025-01-02: keepalives so idle sessions survive NAT and firewall timeouts.";

    #[test]
    fn empty_file_gets_a_host_block() {
        let p = run("", &host("web"));
        assert_eq!(
            p.new_text,
            format!("{HEADER}\nHost web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n")
        );
        assert_eq!(
            p.actions,
            ["ServerAliveInterval 15, ServerAliveCountMax 4 added in a new `Host web` block at the end."]
        );
    }

    #[test]
    fn appends_to_an_existing_exact_block_with_its_indentation() {
        let original = "# mine\nHost web\n\tUser me\n\n# other\nHost db\n  User x\n";
        let p = run(original, &host("web"));
        assert_eq!(
            p.new_text,
            "# mine\nHost web\n\tUser me\n\tServerAliveInterval 15\n\tServerAliveCountMax 4\n\n# other\nHost db\n  User x\n"
        );
    }

    #[test]
    fn new_block_goes_before_an_earlier_host_star_that_sets_it() {
        let original = "Host *\n    ServerAliveInterval 0\n\nHost web\n    User me\n";
        let p = run(original, &host("web"));
        assert_eq!(
            p.new_text,
            format!(
                "{HEADER}\nHost web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n\nHost *\n    ServerAliveInterval 0\n\nHost web\n    User me\n"
            )
        );
        assert_eq!(
            p.actions,
            ["ServerAliveInterval 15, ServerAliveCountMax 4 added in a new `Host web` block before line 1 \
              (line 2 sets ServerAliveInterval and ssh uses the first value it finds)."]
        );
    }

    #[test]
    fn an_exact_block_before_the_setter_receives_the_line() {
        let original = "Host web\n    User me\n\nHost *\n    ServerAliveInterval 0\n";
        let p = run(original, &host("web"));
        assert_eq!(
            p.new_text,
            "Host web\n    User me\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n\nHost *\n    ServerAliveInterval 0\n"
        );
    }

    #[test]
    fn value_in_our_own_block_is_changed_in_place() {
        let original = "Host web\n  serveraliveinterval=0\n";
        let p = run(original, &host("web"));
        assert_eq!(
            p.new_text,
            "Host web\n  serveraliveinterval 15\n  ServerAliveCountMax 4\n"
        );
        assert!(p.actions[0].contains("changed from 0 to 15 on line 2"));
    }

    #[test]
    fn global_setting_at_the_top_needs_a_host_star_after_the_new_block() {
        let original = "# my config\n\nServerAliveInterval 0\nUser me\n\nHost web\n  Port 2\n";
        let p = run(original, &host("web"));
        let expected = format!(
            "# my config\n\n{HEADER}\nHost web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n\n\
             # Added by `abide doctor --fix`: the lines below applied to every host before the block above was added; `Host *` keeps it that way.\n\
             Host *\nServerAliveInterval 0\nUser me\n\nHost web\n  Port 2\n"
        );
        assert_eq!(p.new_text, expected);
    }

    #[test]
    fn match_blocks_are_assumed_to_apply() {
        let original = "Match exec \"on-vpn\"\n  ServerAliveInterval 300\n";
        let p = run(original, &host("web"));
        assert!(
            p.new_text.starts_with(&format!("{HEADER}\nHost web\n")),
            "{}",
            p.new_text
        );
        assert!(p
            .new_text
            .ends_with("Match exec \"on-vpn\"\n  ServerAliveInterval 300\n"));
    }

    #[test]
    fn a_block_for_another_host_is_ignored() {
        let original = "Host db\n  ServerAliveInterval 0\n";
        let p = run(original, &host("web"));
        assert!(p.new_text.starts_with(original));
        assert!(p
            .new_text
            .ends_with("Host web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n"));
    }

    #[test]
    fn an_include_that_may_set_it_counts_as_a_setter() {
        let original = "Include config.d/*\n\nHost web\n  User me\n";
        let p = plan(
            original,
            &host("web"),
            &wants(),
            &|args, key| args == ["config.d/*"] && key == "serveraliveinterval",
            "2025-01-02",
        );
        assert!(p.new_text.contains(&format!(
            "{HEADER}\nHost web\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n\n# Added"
        )));
        assert!(p.new_text.contains("Host *\nInclude config.d/*\n"));
    }

    #[test]
    fn companion_respects_a_users_value() {
        let original = "Host *\n  ServerAliveCountMax 10\n";
        let p = run(original, &host("web"));
        assert!(
            !p.new_text.contains("ServerAliveCountMax 4"),
            "{}",
            p.new_text
        );
        assert!(p.kept.iter().any(|k| k.contains("left as is")));
    }

    #[test]
    fn all_hosts_targets_host_star_and_edits_global_lines_in_place() {
        let p = run("Host web\n  User me\n", &Target::AllHosts);
        assert!(p
            .new_text
            .ends_with("Host *\n    ServerAliveInterval 15\n    ServerAliveCountMax 4\n"));
        let p = run("ServerAliveInterval 0\n", &Target::AllHosts);
        assert_eq!(
            p.new_text,
            "ServerAliveInterval 15\nServerAliveCountMax 4\n"
        );
    }

    #[test]
    fn planning_twice_changes_nothing_the_second_time() {
        let cases = [
            "",
            "Host *\n    ServerAliveInterval 0\n",
            "ServerAliveInterval 0\nHost web\n",
            "Host web\n  ServerAliveInterval 0\n",
            "Match all\n  ServerAliveInterval 0\n",
        ];
        for original in cases {
            for target in [host("web"), Target::AllHosts] {
                let first = run(original, &target);
                let second = run(&first.new_text, &target);
                assert!(
                    !second.changes(),
                    "{original:?} {target:?}: {:?}",
                    second.actions
                );
                assert_eq!(second.new_text, first.new_text);
            }
        }
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let p = run("Host web\r\n  User me\r\n", &host("web"));
        assert_eq!(
            p.new_text,
            "Host web\r\n  User me\r\n  ServerAliveInterval 15\r\n  ServerAliveCountMax 4\r\n"
        );
    }
}
