//! Matching pasted terminal output against the knowledge base.
//!
//! Patterns are templates, not raw regexes, so the data file stays reviewable:
//! literal text plus placeholders for the parts that vary between occurrences
//! (`{host}`, `{port}`, `{num}`, `{user}`, `{any}`), optionally anchored with a
//! leading `^` or trailing `$`. Matching is case-insensitive, any run of spaces
//! matches any run of whitespace, and a template may match anywhere in a line,
//! which is what makes prefixes such as `ssh: ` or `client_loop: ` and
//! surrounding noise harmless.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::kb::Entry;

#[derive(Debug)]
pub struct Template {
    pub source: String,
    tokens: Vec<Token>,
    anchored_start: bool,
    anchored_end: bool,
    /// Count of literal letters and digits: a longer literal is a more specific
    /// pattern, and the most specific match on a line wins.
    pub specificity: usize,
    /// The template's literal words, for ranking near misses.
    words: HashSet<String>,
    /// The literal runs between placeholders, lower-cased, single-spaced:
    /// what a pasted fragment of the message is looked up in.
    literals: Vec<String>,
}

/// Templates are simple enough for a small backtracking matcher, which avoids
/// compiling ~150 regexes on every run (noticeable in debug builds and tests).
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// Lower-cased literal text without whitespace.
    Literal(Vec<char>),
    /// One or more whitespace characters.
    Space,
    /// `{host}` / `{user}`: one or more non-whitespace characters, shortest first.
    Word,
    /// `{port}` / `{num}`: one or more digits.
    Digits,
    /// `{any}`: anything, shortest first.
    Any,
}

impl Template {
    pub fn compile(template: &str) -> Result<Template, String> {
        let mut body = template;
        let anchored_start = body.starts_with('^');
        if anchored_start {
            body = &body[1..];
        }
        let anchored_end = body.ends_with('$');
        if anchored_end {
            body = &body[..body.len() - 1];
        }
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut literals = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or_else(|| "unclosed '{' in template".to_string())?;
                tokens.push(placeholder(&after[..end])?);
                literal.push(' ');
                literals.push(String::new());
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let chunk = &rest[..end];
                push_literal(&mut tokens, chunk);
                literal.push_str(chunk);
                match literals.last_mut() {
                    Some(l) => l.push_str(chunk),
                    None => literals.push(chunk.to_string()),
                }
                rest = &rest[end..];
            }
        }
        let specificity = literal.chars().filter(|c| c.is_alphanumeric()).count();
        if specificity < 6 {
            // A template like "{any} failed" would match half of all terminal output.
            return Err("too little literal text to be a reliable pattern".to_string());
        }
        Ok(Template {
            source: template.to_string(),
            tokens,
            anchored_start,
            anchored_end,
            specificity,
            words: words(&literal),
            literals: literals.iter().map(|l| normalise(l)).collect(),
        })
    }

    /// Whether `fragment` (already [`normalise`]d) is part of the message's
    /// literal text: "Broken pipe" is part of "send disconnect: Broken pipe".
    pub fn contains_fragment(&self, fragment: &str) -> bool {
        self.literals.iter().any(|l| l.contains(fragment))
    }

    pub fn is_match(&self, line: &str) -> bool {
        let text: Vec<char> = line.chars().flat_map(char::to_lowercase).collect();
        if self.anchored_start {
            return self.match_at(0, &text, 0);
        }
        (0..=text.len()).any(|start| self.match_at(0, &text, start))
    }

    fn match_at(&self, tok: usize, text: &[char], pos: usize) -> bool {
        let Some(token) = self.tokens.get(tok) else {
            return !self.anchored_end || pos == text.len();
        };
        let rest = &text[pos..];
        match token {
            Token::Literal(lit) => {
                rest.starts_with(lit) && self.match_at(tok + 1, text, pos + lit.len())
            }
            Token::Space => {
                // Greedy without backtracking is exact: the next token never
                // starts with whitespace (spaces are merged into one token).
                let n = rest.iter().take_while(|c| c.is_whitespace()).count();
                n > 0 && self.match_at(tok + 1, text, pos + n)
            }
            Token::Word => {
                let run = rest.iter().take_while(|c| !c.is_whitespace()).count();
                (1..=run).any(|n| self.match_at(tok + 1, text, pos + n))
            }
            Token::Digits => {
                let run = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                (1..=run)
                    .rev()
                    .any(|n| self.match_at(tok + 1, text, pos + n))
            }
            Token::Any => (0..=rest.len()).any(|n| self.match_at(tok + 1, text, pos + n)),
        }
    }
}

fn placeholder(name: &str) -> Result<Token, String> {
    Ok(match name {
        "host" | "user" => Token::Word,
        "port" | "num" => Token::Digits,
        "any" => Token::Any,
        other => return Err(format!("unknown placeholder {{{other}}}")),
    })
}

fn push_literal(tokens: &mut Vec<Token>, chunk: &str) {
    for c in chunk.chars() {
        if c.is_whitespace() {
            if tokens.last() != Some(&Token::Space) {
                tokens.push(Token::Space);
            }
        } else {
            let lower = c.to_lowercase();
            match tokens.last_mut() {
                Some(Token::Literal(lit)) => lit.extend(lower),
                _ => tokens.push(Token::Literal(lower.collect())),
            }
        }
    }
}

/// Words for similarity ranking: lower-case, at least two characters with a
/// letter, common short words dropped, and cut to five characters so that
/// "connect"/"connection" or "resolve"/"resolving" count as the same word.
fn words(text: &str) -> HashSet<String> {
    const STOP: &[&str] = &[
        "the", "to", "by", "on", "of", "for", "from", "in", "is", "a", "an", "and", "or", "at",
        "was", "be", "it",
    ];
    text.split(|c: char| !c.is_alphanumeric() && c != '_')
        .map(|w| w.to_lowercase())
        .filter(|w| w.len() >= 2 && w.chars().any(|c| c.is_alphabetic()))
        .filter(|w| !STOP.contains(&w.as_str()))
        .map(|w| w.chars().take(5).collect())
        .collect()
}

/// Lower case, whitespace runs as one space, trimmed.
fn normalise(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The entry a short pasted fragment names, when no template matches it
/// whole: the entry titled exactly so, else the entry with a message that
/// contains the fragment and says least besides it (the fragment is most of
/// that message), the first in kb.toml on a tie. A fragment needs two words
/// and as much literal text as a template, so "error" alone names nothing.
fn fragment_entry<'a>(kb: &'a [Entry], text: &str) -> Option<&'a Entry> {
    let frag = normalise(text);
    let letters = frag.chars().filter(|c| c.is_alphanumeric()).count();
    if frag.split(' ').count() < 2 || letters < 6 || frag.len() > 200 {
        return None;
    }
    let frag = frag
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '.')
        .to_string();
    if let Some(e) = kb.iter().find(|e| normalise(&e.title) == frag) {
        return Some(e);
    }
    let mut best: Option<(&Entry, usize)> = None;
    for e in kb {
        for t in &e.patterns {
            if t.contains_fragment(&frag) && best.is_none_or(|(_, s)| t.specificity < s) {
                best = Some((e, t.specificity));
            }
        }
    }
    best.map(|(e, _)| e)
}

/// One input line, numbered from 1 as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
}

/// Splits pasted text into cleaned lines. Accepts `\n`, `\r\n` and bare `\r`
/// endings, removes terminal escape sequences (colours, titles) and turns
/// typographic quotes from web pages and chat tools back into ASCII ones.
pub fn clean_lines(text: &str) -> Vec<Line> {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    let ansi = ANSI.get_or_init(|| {
        Regex::new(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
            .expect("static regex")
    });
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    normalised
        .split('\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let stripped = ansi.replace_all(raw, "");
            let cleaned: String = stripped
                .chars()
                .map(|c| match c {
                    '\u{2018}' | '\u{2019}' | '`' => '\'',
                    '\u{201c}' | '\u{201d}' => '"',
                    c if c.is_control() && c != '\t' => ' ',
                    c => c,
                })
                .collect();
            let cleaned = cleaned.trim();
            (!cleaned.is_empty()).then(|| Line {
                number: i + 1,
                text: cleaned.to_string(),
            })
        })
        .collect()
}

/// A knowledge-base entry found in the input, with the lines that show it.
#[derive(Debug)]
pub struct Finding<'a> {
    pub entry: &'a Entry,
    /// Lines that matched this entry (line number 0: only across joined lines).
    pub lines: Vec<Line>,
    /// Lines of entries this one `covers` (consequences of the same event).
    pub related: Vec<(&'a Entry, Line)>,
}

/// The most specific entry whose template matches `text`, if any.
fn best_entry<'a>(kb: &'a [Entry], text: &str) -> Option<&'a Entry> {
    let mut best: Option<(&Entry, usize)> = None;
    for e in kb {
        for t in &e.patterns {
            // Strictly greater: on a tie the entry listed first in kb.toml wins.
            if t.is_match(text) && best.is_none_or(|(_, s)| t.specificity > s) {
                best = Some((e, t.specificity));
            }
        }
    }
    best.map(|(e, _)| e)
}

/// Finds the entries that explain `text`, in the order their first line appears.
pub fn scan<'a>(kb: &'a [Entry], text: &str) -> Vec<Finding<'a>> {
    let lines = clean_lines(text);
    let mut found: Vec<Finding<'a>> = Vec::new();
    for line in &lines {
        if let Some(entry) = best_entry(kb, &line.text) {
            match found.iter_mut().find(|f| f.entry.id == entry.id) {
                Some(f) => f.lines.push(line.clone()),
                None => found.push(Finding {
                    entry,
                    lines: vec![line.clone()],
                    related: Vec::new(),
                }),
            }
        }
    }
    if let ([line], true) = (lines.as_slice(), found.is_empty()) {
        if let Some(entry) = fragment_entry(kb, &line.text) {
            found.push(Finding {
                entry,
                lines: vec![line.clone()],
                related: Vec::new(),
            });
        }
    }
    if found.is_empty() && lines.len() > 1 {
        // A narrow terminal or an email client may have wrapped one message
        // over two lines; try once more with the lines joined.
        let joined: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        let joined = joined.join(" ");
        if let Some(entry) = best_entry(kb, &joined) {
            found.push(Finding {
                entry,
                lines: vec![Line {
                    number: 0,
                    text: joined,
                }],
                related: Vec::new(),
            });
        }
    }
    apply_covers(found)
}

/// Drops findings that another finding in the same input `covers`, keeping
/// their lines as related to the cause. Chains (A covers B, B covers C) end at
/// the finding that is kept; the knowledge base rejects cycles.
fn apply_covers(found: Vec<Finding<'_>>) -> Vec<Finding<'_>> {
    let present: HashSet<String> = found.iter().map(|f| f.entry.id.clone()).collect();
    let covered_by = |id: &str| -> Option<String> {
        found
            .iter()
            .find(|f| f.entry.covers.iter().any(|c| c == id))
            .map(|f| f.entry.id.clone())
    };
    let covered: HashSet<String> = present
        .iter()
        .filter(|id| covered_by(id).is_some())
        .cloned()
        .collect();
    // Where each dropped finding's lines go: up the chain to a kept one.
    let mut owner: Vec<(String, String)> = Vec::new();
    for id in &covered {
        let mut at = id.clone();
        while covered.contains(&at) {
            at = covered_by(&at).expect("covered ids have a coverer");
        }
        owner.push((id.clone(), at));
    }
    let (mut kept, dropped): (Vec<_>, Vec<_>) = found
        .into_iter()
        .partition(|f| !covered.contains(&f.entry.id));
    for d in dropped {
        let to = &owner
            .iter()
            .find(|(id, _)| *id == d.entry.id)
            .expect("owner")
            .1;
        if let Some(k) = kept.iter_mut().find(|k| k.entry.id == *to) {
            k.related.extend(d.lines.into_iter().map(|l| (d.entry, l)));
            k.related.extend(d.related);
        }
    }
    for k in &mut kept {
        k.related.sort_by_key(|(_, l)| l.number);
    }
    kept
}

/// A known message that resembles the input without matching it.
#[derive(Debug)]
pub struct Candidate<'a> {
    pub entry: &'a Entry,
    /// 0..=1: how much of the known message's wording the input shares.
    pub score: f64,
}

/// The nearest entries for input nothing matched, best first. Only entries
/// that share a good part of their wording are returned, so unrelated input
/// gets an empty list rather than a random guess.
pub fn nearest<'a>(kb: &'a [Entry], text: &str, max: usize) -> Vec<Candidate<'a>> {
    const MIN_SCORE: f64 = 0.45;
    let lines: Vec<HashSet<String>> = clean_lines(text)
        .iter()
        .take(500)
        .map(|l| words(&l.text))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<Candidate<'a>> = kb
        .iter()
        .filter_map(|e| {
            let score = e
                .patterns
                .iter()
                .flat_map(|t| lines.iter().map(move |l| similarity(l, &t.words)))
                .fold(0.0, f64::max);
            (score >= MIN_SCORE).then_some(Candidate { entry: e, score })
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(max);
    out
}

/// Average of containment (how much of the pattern is in the line) and the Dice
/// coefficient (which penalises long unrelated lines).
/// One shared word is not resemblance ("connection" is in a dozen messages), so
/// at least two are required.
fn similarity(line: &HashSet<String>, pattern: &HashSet<String>) -> f64 {
    let common = line.intersection(pattern).count();
    if common < 2 {
        return 0.0;
    }
    let common = common as f64;
    let containment = common / pattern.len() as f64;
    let dice = 2.0 * common / (line.len() + pattern.len()) as f64;
    (containment + dice) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::compile(s).unwrap()
    }

    #[test]
    fn placeholders_absorb_varying_parts() {
        let p = t("connect to host {host} port {port}: Connection refused");
        assert!(p.is_match("ssh: connect to host example.com port 22: Connection refused"));
        assert!(p.is_match("ssh: connect to host 2001:db8::1 port 2222: Connection refused"));
        assert!(p.is_match("CONNECT TO HOST x PORT 22:   connection REFUSED"));
        assert!(!p.is_match("ssh: connect to host x port abc: Connection refused"));
    }

    #[test]
    fn anchors_and_literal_punctuation() {
        let p = t("^no sessions$");
        assert!(p.is_match("no sessions"));
        assert!(!p.is_match("there are no sessions today"));
        let dot = t("Connection to {host} closed.");
        assert!(dot.is_match("Connection to example.com closed."));
        assert!(!dot.is_match("Connection to example.com closed by remote host."));
    }

    #[test]
    fn templates_with_too_little_text_are_refused() {
        assert!(Template::compile("{any} pipe").is_err());
        assert!(Template::compile("{oops} and more text").is_err());
        assert!(Template::compile("open {brace").is_err());
    }

    #[test]
    fn placeholders_backtrack_into_punctuation() {
        let p = t("abide: no UDP reply from {host}:{port}");
        assert!(p.is_match("abide: no UDP reply from [2001:db8::1]:4433"));
        assert!(!p.is_match("abide: no UDP reply from example.com"));
        let any = t("The locale requested by {any} isn't available here");
        assert!(any.is_match("The locale requested by LANG=de_DE.UTF-8 isn't available here."));
    }

    #[test]
    fn clean_lines_handles_crlf_cr_ansi_and_quotes() {
        let lines =
            clean_lines("a\r\n\x1b[31mred\x1b[0m\rno session named \u{2018}x\u{2019}\n\n  ");
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["a", "red", "no session named 'x'"]);
        assert_eq!(lines[2].number, 3);
    }

    #[test]
    fn similarity_prefers_shared_wording() {
        let line = words("connection reset");
        let close = words("Connection reset by peer");
        let far = words("Host key verification failed");
        assert!(similarity(&line, &close) > 0.6);
        assert_eq!(similarity(&line, &far), 0.0);
    }

    /// Short fragments users paste name the entry they come from, including
    /// the example in `abide explain --help`.
    #[test]
    fn short_fragments_match_the_entry_they_name() {
        let kb = crate::doctor::kb::get().unwrap();
        let id = |text: &str| scan(kb, text).first().map(|f| f.entry.id.clone());
        assert_eq!(id("Broken pipe").as_deref(), Some("ssh-broken-pipe"));
        assert_eq!(id("broken  pipe").as_deref(), Some("ssh-broken-pipe"));
        assert_eq!(
            id("Connection refused").as_deref(),
            Some("ssh-connection-refused")
        );
        assert_eq!(
            id("\"Connection refused\"").as_deref(),
            Some("ssh-connection-refused")
        );
        assert_eq!(
            id("Host key verification failed").as_deref(),
            Some("ssh-host-key-verification-failed")
        );
        // One word, or words from no message, name nothing.
        assert_eq!(id("error"), None);
        assert_eq!(id("refused"), None);
        assert_eq!(id("hello world"), None);
    }
}
