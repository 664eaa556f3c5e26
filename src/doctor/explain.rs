//! `abide explain`: read the message, match it, print the explanation.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use serde_json::json;

use super::kb::{self, Entry};
use super::matcher::{self, Candidate, Finding};
use super::style::{write_stdout, Style};
use super::ExplainArgs;

/// Exit codes, documented in `--help` of the issue: scripts rely on them.
const RECOGNISED: i32 = 0;
const NOT_RECOGNISED: i32 = 1;
const BAD_USAGE: i32 = 2;

/// How many near misses to offer for an unknown message.
const CANDIDATES: usize = 3;

pub fn run(args: ExplainArgs) -> anyhow::Result<i32> {
    let kb =
        kb::get().map_err(|e| anyhow::anyhow!("the built-in knowledge base is broken: {e}"))?;
    let style = Style::for_stdout();
    if args.list {
        print_list(kb, args.json, style)?;
        return Ok(RECOGNISED);
    }
    let text = match read_input(&args.text)? {
        Some(t) => t,
        None => {
            eprintln!(
                "abide explain: nothing to explain: give the error message as an argument, \
                 or paste it on stdin (`abide explain -`)"
            );
            return Ok(BAD_USAGE);
        }
    };
    let findings = matcher::scan(kb, &text);
    let candidates = if findings.is_empty() {
        matcher::nearest(kb, &text, CANDIDATES)
    } else {
        Vec::new()
    };
    if args.json {
        let json = serde_json::to_string_pretty(&to_json(&findings, &candidates))?;
        write_stdout(&format!("{json}\n"))?;
    } else {
        write_stdout(&render(&findings, &candidates, style))?;
    }
    Ok(if findings.is_empty() {
        NOT_RECOGNISED
    } else {
        RECOGNISED
    })
}

/// The message from the arguments, or stdin for `-` / no argument.
/// `None` when there is nothing but whitespace.
fn read_input(words: &[String]) -> anyhow::Result<Option<String>> {
    let from_stdin = words.is_empty() || (words.len() == 1 && words[0] == "-");
    let text = if from_stdin {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("Paste the error message, then press Ctrl-D:");
        }
        let mut buf = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut buf)
            .context("reading the message from stdin")?;
        // Pasted output may contain bytes from other encodings; keep what we can.
        String::from_utf8_lossy(&buf).into_owned()
    } else {
        words.join(" ")
    };
    Ok((!text.trim().is_empty()).then_some(text))
}

fn render(findings: &[Finding], candidates: &[Candidate], s: Style) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str(&format!(
            "{} This message is not in abide's knowledge base.\n",
            s.red("✗")
        ));
        if candidates.is_empty() {
            out.push_str("  Nothing similar is known either; abide will not guess.\n");
            out.push_str("  `abide explain --list` shows every message it knows.\n");
        } else {
            out.push_str(
                "  It does not match any known message exactly. The nearest known ones:\n",
            );
            for c in candidates {
                out.push_str(&format!(
                    "    {:>3.0}%  {}  {}\n",
                    c.score * 100.0,
                    s.bold(&c.entry.id),
                    c.entry.title
                ));
            }
            out.push_str("  If one of them is what you saw, paste that exact message.\n");
        }
        return out;
    }
    let n = findings.len();
    for (i, f) in findings.iter().enumerate() {
        if i > 0 {
            out.push_str(&format!("\n{}\n\n", s.dim(&"─".repeat(60))));
        }
        let counter = if n > 1 {
            format!(" ({} of {n})", i + 1)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{} {}{}  {}\n",
            s.green("✓"),
            s.bold(&f.entry.title),
            counter,
            s.dim(&format!("[{}]", f.entry.id))
        ));
        for l in &f.lines {
            out.push_str(&format!("  {}\n", s.dim(&line_label(l))));
        }
        for (e, l) in &f.related {
            out.push_str(&format!(
                "  {}\n",
                s.dim(&format!("{} — a consequence ({})", line_label(l), e.id))
            ));
        }
        section(&mut out, s, "What happened", &f.entry.what);
        section(&mut out, s, "Why", &f.entry.why);
        section(&mut out, s, "Fix", &f.entry.fix);
        let abide = format!("{}. {}", f.entry.abide.label(), f.entry.abide_note);
        let heading = if f.entry.source == "abide" {
            "About abide"
        } else {
            "Does abide avoid it?"
        };
        section(&mut out, s, heading, &abide);
    }
    out
}

fn line_label(l: &matcher::Line) -> String {
    if l.number == 0 {
        format!("(across lines) {}", l.text)
    } else {
        format!("line {}: {}", l.number, l.text)
    }
}

fn section(out: &mut String, s: Style, heading: &str, body: &str) {
    out.push_str(&format!("\n{}\n", s.bold(heading)));
    for line in body.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("  {line}\n"));
        }
    }
}

fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "id": e.id,
        "source": e.source,
        "title": e.title,
        "what": e.what,
        "why": e.why,
        "fix": e.fix,
        "abide_avoids": e.abide,
        "abide_note": e.abide_note,
    })
}

fn to_json(findings: &[Finding], candidates: &[Candidate]) -> serde_json::Value {
    let matches: Vec<_> = findings
        .iter()
        .map(|f| {
            let mut v = entry_json(f.entry);
            v["lines"] = json!(f
                .lines
                .iter()
                .map(|l| json!({"line": l.number, "text": l.text}))
                .collect::<Vec<_>>());
            v["related"] = json!(f
                .related
                .iter()
                .map(|(e, l)| json!({"id": e.id, "line": l.number, "text": l.text}))
                .collect::<Vec<_>>());
            v
        })
        .collect();
    let candidates: Vec<_> = candidates
        .iter()
        .map(|c| json!({"id": c.entry.id, "title": c.entry.title, "score": (c.score * 100.0).round() / 100.0}))
        .collect();
    json!({
        "recognised": !findings.is_empty(),
        "matches": matches,
        "candidates": candidates,
    })
}

fn print_list(kb: &[Entry], as_json: bool, s: Style) -> anyhow::Result<()> {
    if as_json {
        let list: Vec<_> = kb
            .iter()
            .map(|e| {
                let mut v = entry_json(e);
                v["patterns"] = json!(e.patterns.iter().map(|t| &t.source).collect::<Vec<_>>());
                v
            })
            .collect();
        write_stdout(&format!("{}\n", serde_json::to_string_pretty(&list)?))?;
        return Ok(());
    }
    let mut out = format!("{} known messages:\n\n", kb.len());
    for e in kb {
        // Pad before styling: escape codes would count as width.
        out.push_str(&format!(
            "{} {:<7} {}\n",
            s.bold(&format!("{:<34}", e.id)),
            e.source,
            e.title
        ));
        for t in &e.patterns {
            out.push_str(&format!("{:44}{}\n", "", s.dim(&t.source)));
        }
    }
    write_stdout(&out)?;
    Ok(())
}
