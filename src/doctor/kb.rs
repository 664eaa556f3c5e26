//! The knowledge base of error messages: data in `kb.toml`, embedded in the
//! binary so `abide explain` works offline and from a single file.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::matcher::Template;

const KB_TOML: &str = include_str!("kb.toml");

/// Whether abide itself avoids the problem a message describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Avoids {
    /// abide's design removes the cause (e.g. sessions survive the disconnect).
    Yes,
    /// abide softens it (reconnects afterwards) but the cause remains.
    Partly,
    /// Independent of the transport: abide hits it too.
    No,
    /// The message is abide's own.
    Own,
}

impl Avoids {
    pub fn label(self) -> &'static str {
        match self {
            Avoids::Yes => "Yes",
            Avoids::Partly => "Partly",
            Avoids::No => "No",
            Avoids::Own => "This is abide's own message",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    source: String,
    title: String,
    patterns: Vec<String>,
    #[serde(default)]
    covers: Vec<String>,
    what: String,
    why: String,
    fix: String,
    abide: Avoids,
    abide_note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKb {
    entry: Vec<RawEntry>,
}

#[derive(Debug)]
pub struct Entry {
    pub id: String,
    /// Which program prints the message: ssh, sshd, mosh, tmux, screen, abide.
    pub source: String,
    pub title: String,
    pub patterns: Vec<Template>,
    /// Ids of entries that describe a consequence of this one; when both match
    /// the same input, only this one is explained.
    pub covers: Vec<String>,
    pub what: String,
    pub why: String,
    pub fix: String,
    pub abide: Avoids,
    pub abide_note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("kb.toml does not parse: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("kb.toml entry '{id}': pattern {pattern:?}: {reason}")]
    Pattern {
        id: String,
        pattern: String,
        reason: String,
    },
    #[error("kb.toml: duplicate entry id '{0}'")]
    DuplicateId(String),
    #[error("kb.toml entry '{id}' covers unknown entry '{covered}'")]
    UnknownCover { id: String, covered: String },
    #[error("kb.toml entry '{0}' has no patterns")]
    NoPatterns(String),
    #[error("kb.toml: entry '{0}' covers itself through a cycle of `covers`")]
    CoverCycle(String),
}

/// Parses and validates a knowledge base. Separate from `get` so tests can feed
/// broken data and see the validation fail.
pub fn parse(text: &str) -> Result<Vec<Entry>, KbError> {
    let raw: RawKb = toml::from_str(text)?;
    let mut entries = Vec::with_capacity(raw.entry.len());
    let mut seen = std::collections::HashSet::new();
    for e in raw.entry {
        if !seen.insert(e.id.clone()) {
            return Err(KbError::DuplicateId(e.id));
        }
        if e.patterns.is_empty() {
            return Err(KbError::NoPatterns(e.id));
        }
        let mut patterns = Vec::new();
        for p in &e.patterns {
            let t = Template::compile(p).map_err(|reason| KbError::Pattern {
                id: e.id.clone(),
                pattern: p.clone(),
                reason,
            })?;
            patterns.push(t);
        }
        entries.push(Entry {
            id: e.id,
            source: e.source,
            title: e.title,
            patterns,
            covers: e.covers,
            what: e.what.trim_end().to_string(),
            why: e.why.trim_end().to_string(),
            fix: e.fix.trim_end().to_string(),
            abide: e.abide,
            abide_note: e.abide_note.trim_end().to_string(),
        });
    }
    for e in &entries {
        for c in &e.covers {
            if !seen.contains(c) {
                return Err(KbError::UnknownCover {
                    id: e.id.clone(),
                    covered: c.clone(),
                });
            }
        }
    }
    check_cover_cycles(&entries)?;
    Ok(entries)
}

/// A cycle would make every entry in it hide the others, and then nothing is
/// explained at all.
fn check_cover_cycles(entries: &[Entry]) -> Result<(), KbError> {
    let covers = |id: &str| -> &[String] {
        entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.covers.as_slice())
            .unwrap_or(&[])
    };
    for e in entries {
        let mut stack: Vec<&str> = e.covers.iter().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = stack.pop() {
            if id == e.id {
                return Err(KbError::CoverCycle(e.id.clone()));
            }
            if seen.insert(id) {
                stack.extend(covers(id).iter().map(String::as_str));
            }
        }
    }
    Ok(())
}

/// The embedded knowledge base, parsed once.
pub fn get() -> Result<&'static [Entry], &'static KbError> {
    static KB: OnceLock<Result<Vec<Entry>, KbError>> = OnceLock::new();
    KB.get_or_init(|| parse(KB_TOML))
        .as_ref()
        .map(|v| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_kb_is_valid_and_large_enough() {
        let kb = get().expect("embedded kb.toml must be valid");
        assert!(
            kb.len() >= 40,
            "issue 6 asks for at least 40 messages, have {}",
            kb.len()
        );
        for e in kb {
            assert!(
                !e.what.is_empty() && !e.why.is_empty() && !e.fix.is_empty(),
                "{}",
                e.id
            );
            assert!(
                ["ssh", "sshd", "mosh", "tmux", "screen", "abide"].contains(&e.source.as_str()),
                "{}: unknown source {}",
                e.id,
                e.source
            );
        }
    }

    const ONE: &str = r#"
[[entry]]
id = "a"
source = "ssh"
title = "t"
patterns = ["hello there {host}"]
what = "w"
why = "y"
fix = "f"
abide = "yes"
abide_note = "n"
"#;

    fn entry(id: &str, covers: &str) -> String {
        ONE.replace("id = \"a\"", &format!("id = \"{id}\"\ncovers = {covers}"))
    }

    #[test]
    fn validation_rejects_duplicates_and_bad_covers() {
        assert!(parse(ONE).is_ok());
        let dup = format!("{ONE}{ONE}");
        assert!(matches!(parse(&dup), Err(KbError::DuplicateId(id)) if id == "a"));
        let bad_cover = ONE.replace("abide = \"yes\"", "abide = \"yes\"\ncovers = [\"nope\"]");
        assert!(matches!(
            parse(&bad_cover),
            Err(KbError::UnknownCover { .. })
        ));
        let cycle = format!("{}{}", entry("a", "[\"b\"]"), entry("b", "[\"a\"]"));
        assert!(matches!(parse(&cycle), Err(KbError::CoverCycle(_))));
        let chain = format!("{}{}", entry("a", "[\"b\"]"), entry("b", "[]"));
        assert!(parse(&chain).is_ok());
        let bad_placeholder = ONE.replace("{host}", "{hots}");
        assert!(matches!(
            parse(&bad_placeholder),
            Err(KbError::Pattern { .. })
        ));
    }
}
