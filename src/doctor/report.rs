//! The doctor's checklist: one line per check with ✓ / ✗ (or · for neutral
//! information) and one line of advice, as text or JSON.

use serde::Serialize;
use serde_json::json;

use super::style::Style;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Problem,
    /// Neither good nor bad: context, or a check that could not run.
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: String,
    pub status: Status,
    pub summary: String,
    pub advice: String,
}

impl Check {
    pub fn new(
        id: &str,
        status: Status,
        summary: impl Into<String>,
        advice: impl Into<String>,
    ) -> Check {
        Check {
            id: id.to_string(),
            status,
            summary: summary.into(),
            advice: advice.into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Section {
    pub title: String,
    pub checks: Vec<Check>,
}

/// Text blocks after the checklist: the diff of a fix, server lines to paste.
#[derive(Debug, Serialize)]
pub struct Note {
    pub title: String,
    pub body: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub heading: String,
    pub sections: Vec<Section>,
    pub notes: Vec<Note>,
    /// Extra machine-readable data for --json (fix outcome, probe results).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    pub fn section(&mut self, title: &str, checks: Vec<Check>) {
        if !checks.is_empty() {
            self.sections.push(Section {
                title: title.to_string(),
                checks,
            });
        }
    }

    pub fn note(&mut self, title: &str, body: impl Into<String>) {
        self.notes.push(Note {
            title: title.to_string(),
            body: body.into(),
        });
    }

    pub fn problems(&self) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.checks)
            .filter(|c| c.status == Status::Problem)
            .count()
    }

    /// 0 when nothing is wrong, 1 when something is: scripts can rely on it.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.problems() > 0)
    }

    pub fn render(&self, s: Style) -> String {
        let mut out = format!("{}\n", s.bold(&self.heading));
        for sec in &self.sections {
            out.push_str(&format!("\n{}\n", s.bold(&sec.title)));
            for c in &sec.checks {
                let mark = match c.status {
                    Status::Ok => s.green("✓"),
                    Status::Problem => s.red("✗"),
                    Status::Info => s.dim("·"),
                };
                out.push_str(&format!("  {mark} {}\n", c.summary));
                if !c.advice.is_empty() {
                    out.push_str(&format!("      {}\n", s.dim(&c.advice)));
                }
            }
        }
        for n in &self.notes {
            out.push_str(&format!("\n{}\n", s.bold(&n.title)));
            for line in n.body.lines() {
                let painted = if line.starts_with('+') && !line.starts_with("+++") {
                    s.green(line)
                } else if line.starts_with('-') && !line.starts_with("---") {
                    s.red(line)
                } else {
                    line.to_string()
                };
                out.push_str(&format!("  {painted}\n"));
            }
        }
        let n = self.problems();
        out.push('\n');
        out.push_str(&match n {
            0 => s.green("No problems found."),
            1 => s.red("1 problem found."),
            n => s.red(&format!("{n} problems found.")),
        });
        out.push('\n');
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<_> = self
            .sections
            .iter()
            .flat_map(|sec| {
                sec.checks.iter().map(move |c| {
                    let mut v = serde_json::to_value(c).expect("plain struct");
                    v["section"] = json!(sec.title);
                    v
                })
            })
            .collect();
        let mut v = json!({
            "ok": self.problems() == 0,
            "problems": self.problems(),
            "checks": checks,
            "notes": self.notes,
        });
        for (k, val) in &self.extra {
            v[k] = val.clone();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report {
            heading: "abide doctor".into(),
            ..Report::default()
        };
        r.section(
            "ssh client",
            vec![
                Check::new("a", Status::Ok, "fine", ""),
                Check::new("b", Status::Problem, "broken", "fix it like this"),
                Check::new("c", Status::Info, "context", "more"),
            ],
        );
        r.section("empty", vec![]);
        r
    }

    #[test]
    fn problems_decide_the_exit_code() {
        let r = sample();
        assert_eq!(r.problems(), 1);
        assert_eq!(r.exit_code(), 1);
        let ok = Report::default();
        assert_eq!(ok.exit_code(), 0);
    }

    #[test]
    fn text_has_marks_advice_and_no_empty_sections() {
        let text = sample().render(Style::plain());
        assert!(text.contains("  ✓ fine\n"));
        assert!(text.contains("  ✗ broken\n      fix it like this\n"));
        assert!(text.contains("  · context\n"));
        assert!(!text.contains("empty"));
        assert!(text.ends_with("1 problem found.\n"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn json_lists_checks_with_sections() {
        let v = sample().to_json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["checks"][1]["status"], "problem");
        assert_eq!(v["checks"][1]["section"], "ssh client");
    }
}
