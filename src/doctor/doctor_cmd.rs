//! `abide doctor`: runs the checks in order (client config, optional fix,
//! server, path) and prints one report.

use serde_json::json;

use super::client::{self, RECOMMENDED_COUNT_MAX, RECOMMENDED_INTERVAL};
use super::fix::{self, FixError, Target, Want};
use super::report::{Check, Report, Status};
use super::ssh::Ssh;
use super::sshconfig::{self, Effective, SshGError};
use super::style::{write_stdout, Style};
use super::{kb, logind, matcher, paths, probe_idle, remote, sshd, udp, DoctorArgs};

const BAD_USAGE: i32 = 2;

pub fn run(args: DoctorArgs) -> anyhow::Result<i32> {
    if let Some(msg) = usage_error(&args) {
        eprintln!("abide doctor: {msg}");
        return Ok(BAD_USAGE);
    }
    let durations = if args.probe_idle {
        Some(probe_idle::durations(&args.probe_idle_durations)?)
    } else {
        None
    };
    let home = paths::ssh_home()?;
    let config_path = paths::user_config(args.config_file.as_deref(), &home);
    let shown_config = paths::display(&config_path, &home);
    let ssh = Ssh::new(&args.ssh, args.config_file.clone())?;
    let query_host = args
        .host
        .clone()
        .unwrap_or_else(|| fix::GENERIC_HOST.to_string());

    let mut report = Report {
        heading: match &args.host {
            Some(h) => format!("abide doctor: {h}  (ssh config: {shown_config})"),
            None => format!(
                "abide doctor: settings for hosts without a block of their own  (ssh config: {shown_config})"
            ),
        },
        ..Report::default()
    };
    report.extra.insert("host".into(), json!(args.host));
    report.extra.insert(
        "config_file".into(),
        json!(config_path.display().to_string()),
    );

    let client_title = match &args.host {
        Some(h) => format!("ssh client (effective settings from `ssh -G {h}`)"),
        None => "ssh client (effective settings from `ssh -G`, for any host)".to_string(),
    };
    let dash_f = args
        .config_file
        .as_ref()
        .map(|f| format!(" -F {}", f.display()))
        .unwrap_or_default();
    let fix_hint = match &args.host {
        Some(h) => format!("abide doctor {h}{dash_f} --fix"),
        None => format!("abide doctor{dash_f} --all-hosts --fix"),
    };

    let mut effective = match sshconfig::read(&ssh, &query_host) {
        Ok(e) => Some(e),
        Err(e) => {
            report.section(&client_title, vec![ssh_g_failed(&e)]);
            None
        }
    };

    if args.fix {
        let target = if args.all_hosts {
            Target::AllHosts
        } else {
            Target::Host(host_for_config(&query_host))
        };
        let checks = match &effective {
            Some(eff) => {
                let (mut checks, changed) = run_fix(&mut report, eff, &config_path, &home, &target);
                if changed {
                    let (after, check) = verify_after_fix(&ssh, &query_host, eff);
                    checks.push(check);
                    effective = Some(after);
                }
                checks
            }
            None => vec![Check::new(
                "fix",
                Status::Problem,
                "Not changed: the effective settings are unknown because `ssh -G` failed.",
                "Fix the error above first.",
            )],
        };
        report.section(&format!("--fix: {shown_config}"), checks);
    }

    if let Some(eff) = &effective {
        let kernel = client::kernel_keepalive_secs();
        let checks = client::checks(eff, kernel, &fix_hint);
        // The client section comes first even when --fix ran.
        report.sections.insert(
            0,
            super::report::Section {
                title: client_title,
                checks,
            },
        );
    }

    if let (Some(host), false) = (&args.host, args.no_remote) {
        let (server_interval, abide) =
            server_checks(&mut report, &ssh, host, args.fix, effective.as_ref())?;
        let probe = match &abide {
            Ok(path) => udp::probe_udp(&ssh, host, path),
            Err(why) => Err(why.clone()),
        };
        let mut path = vec![udp::check(host, probe)];
        if let Some(durations) = durations {
            let interval = effective
                .as_ref()
                .and_then(|e| e.number("serveraliveinterval"))
                .unwrap_or(0);
            let results = probe_idle::run(&ssh, host, &durations);
            path.push(probe_idle::check(host, &results, interval, server_interval));
            report.extra.insert("probe_idle".into(), json!(results));
        }
        report.section(&format!("path to {host}"), path);
    }

    if args.json {
        write_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json())?
        ))?;
    } else {
        write_stdout(&report.render(Style::for_stdout()))?;
    }
    Ok(report.exit_code())
}

fn usage_error(args: &DoctorArgs) -> Option<&'static str> {
    if args.all_hosts && !args.fix {
        return Some("--all-hosts only applies to --fix");
    }
    if args.fix && args.host.is_none() && !args.all_hosts {
        return Some("--fix needs a HOST, or --all-hosts to change the settings for every host");
    }
    if args.probe_idle && (args.host.is_none() || args.no_remote) {
        return Some("--probe-idle needs a HOST to connect to");
    }
    None
}

/// `ssh -G` failing usually means a broken config; say which, and what the
/// knowledge base knows about the message.
fn ssh_g_failed(e: &SshGError) -> Check {
    let reason = match e {
        SshGError::Failed { reason, .. } => reason.as_str(),
        SshGError::Spawn { .. } => "",
    };
    Check::new(
        "client.ssh_config",
        Status::Problem,
        e.to_string(),
        kb_hint(reason).unwrap_or_else(|| "Run it yourself to see the full error.".to_string()),
    )
}

/// "`abide explain` knows this: TITLE" for a known error message.
fn kb_hint(text: &str) -> Option<String> {
    let kb = kb::get().ok()?;
    let found = matcher::scan(kb, text);
    let f = found.first()?;
    let line = &f.lines.first()?.text;
    Some(format!(
        "{} — `abide explain '{}'` has the fix.",
        f.entry.title,
        line.replace('\'', "")
    ))
}

/// Decides what to change, writes it, and returns the checklist lines and
/// whether the file changed.
fn run_fix(
    report: &mut Report,
    eff: &Effective,
    config: &std::path::Path,
    home: &std::path::Path,
    target: &Target,
) -> (Vec<Check>, bool) {
    let interval = eff.number("serveraliveinterval").unwrap_or(0);
    let count = eff.number("serveralivecountmax").unwrap_or(3);
    let mut wants = Vec::new();
    let fixing_interval = !client::interval_ok(interval);
    if fixing_interval {
        wants.push(Want {
            key: "ServerAliveInterval",
            value: RECOMMENDED_INTERVAL.to_string(),
            companion: false,
        });
    }
    let final_interval = if fixing_interval {
        RECOMMENDED_INTERVAL
    } else {
        interval
    };
    if !client::count_ok(final_interval, count) || fixing_interval {
        wants.push(Want {
            key: "ServerAliveCountMax",
            value: RECOMMENDED_COUNT_MAX.to_string(),
            // Only required when the current count is too small; otherwise it
            // just completes the pair and must not override the user's value.
            companion: client::count_ok(final_interval, count),
        });
    }
    let shown = paths::display(config, home);
    if wants.is_empty() {
        return (
            vec![Check::new(
                "fix",
                Status::Ok,
                format!(
                    "Nothing to change: ssh already uses ServerAliveInterval {interval}, ServerAliveCountMax {count}."
                ),
                "",
            )],
            false,
        );
    }
    let prepared = match fix::prepare(config, home, target, &wants) {
        Ok(p) => p,
        Err(e) => return (vec![fix_failed(&e)], false),
    };
    let mut checks: Vec<Check> = prepared
        .plan
        .kept
        .iter()
        .map(|k| Check::new("fix.kept", Status::Info, k.clone(), ""))
        .collect();
    if !prepared.plan.changes() {
        checks.push(Check::new(
            "fix",
            Status::Ok,
            format!("Nothing to change in {shown}."),
            "",
        ));
        report.extra.insert(
            "fix".into(),
            json!({"file": prepared.path, "changed": false}),
        );
        return (checks, false);
    }
    match prepared.write() {
        Ok(written) => {
            for a in &prepared.plan.actions {
                checks.push(Check::new("fix.change", Status::Ok, a.clone(), ""));
            }
            let what = if written.created {
                format!("Created {shown} (mode 0600).")
            } else {
                let b = written
                    .backup
                    .as_deref()
                    .map(|b| paths::display(b, home))
                    .unwrap_or_default();
                format!("Wrote {shown}; the previous version is in {b}.")
            };
            checks.push(Check::new("fix.written", Status::Ok, what, ""));
            report.note(&format!("Changes to {shown}"), prepared.diff.clone());
            report.extra.insert(
                "fix".into(),
                json!({
                    "file": prepared.path,
                    "changed": true,
                    "created": written.created,
                    "backup": written.backup,
                    "actions": prepared.plan.actions,
                    "diff": prepared.diff,
                }),
            );
            (checks, true)
        }
        Err(e) => {
            checks.push(fix_failed(&e));
            report.note(
                &format!("The change abide would make to {shown}"),
                prepared.diff.clone(),
            );
            report.extra.insert(
                "fix".into(),
                json!({"file": prepared.path, "changed": false, "error": e.to_string(), "diff": prepared.diff}),
            );
            (checks, false)
        }
    }
}

fn fix_failed(e: &FixError) -> Check {
    Check::new(
        "fix",
        Status::Problem,
        format!("Not changed: {e}."),
        match e {
            FixError::ReadOnly { .. } => "The diff below shows the lines to add.",
            FixError::Io { .. } => "Nothing was written.",
        },
    )
}

/// Asks ssh again: the proof that the new lines are the ones ssh uses. A
/// Match condition or canonicalisation abide could not judge shows up here.
fn verify_after_fix(ssh: &Ssh, host: &str, before: &Effective) -> (Effective, Check) {
    match sshconfig::read(ssh, host) {
        Ok(after) => {
            let interval = after.number("serveraliveinterval").unwrap_or(0);
            let check = if client::interval_ok(interval) {
                Check::new(
                    "fix.verified",
                    Status::Ok,
                    format!("`ssh -G` now reports ServerAliveInterval {interval}."),
                    "",
                )
            } else {
                Check::new(
                    "fix.verified",
                    Status::Info,
                    format!("`ssh -G` still reports ServerAliveInterval {interval} after the change."),
                    "Something ssh reads first (a Match block, an Include, /etc/ssh/ssh_config with -F) wins; see `ssh -G HOST | grep -i serveralive`.",
                )
            };
            (after, check)
        }
        Err(e) => (
            before.clone(),
            Check::new(
                "fix.verified",
                Status::Info,
                format!("The change was written, but `ssh -G` could not check it: {e}"),
                "",
            ),
        ),
    }
}

/// The name a `Host` line matches for what the user typed: ssh matches Host
/// patterns against the host name alone, so `me@web` and `ssh://me@web:2222`
/// both mean `web`.
fn host_for_config(arg: &str) -> String {
    let (uri, rest) = match arg.strip_prefix("ssh://") {
        Some(r) => (true, r),
        None => (false, arg),
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if uri {
        // ssh://host:port, ssh://[v6]:port
        if let Some(inner) = host.strip_prefix('[') {
            return inner.split(']').next().unwrap_or(inner).to_string();
        }
        return host.split(':').next().unwrap_or(host).to_string();
    }
    host.to_string()
}

/// Server checks over ssh; returns sshd's ClientAliveInterval if known.
fn server_checks(
    report: &mut Report,
    ssh: &Ssh,
    host: &str,
    fixing: bool,
    effective: Option<&Effective>,
) -> anyhow::Result<(Option<u64>, Result<String, String>)> {
    let title = format!("server {host} (over ssh)");
    let r = match remote::run(ssh, host)? {
        Ok(r) => r,
        Err(reason) => {
            let advice = kb_hint(&reason).unwrap_or_else(|| {
                format!("`ssh -o BatchMode=yes {host} true` must work without a prompt.")
            });
            report.section(
                &title,
                vec![Check::new(
                    "server.reachable",
                    Status::Problem,
                    format!("Could not run the server checks over ssh: {reason}"),
                    advice,
                )],
            );
            return Ok((None, Err("the server could not be reached over ssh".into())));
        }
    };
    let mut checks = vec![remote::abide_check(&r, host, env!("CARGO_PKG_VERSION"))];
    let ca = r.client_alive();
    match &ca {
        Some(ca) => checks.push(sshd::check(ca)),
        None => checks.push(Check::new(
            "server.client_alive",
            Status::Info,
            "sshd's ClientAliveInterval could not be read (no `sshd -T`, /etc/ssh/sshd_config unreadable).",
            "",
        )),
    }
    checks.extend(logind::checks(&logind::parse(r.section_text("logind"))));
    let server_problem = checks
        .iter()
        .any(|c| c.id == "server.client_alive" && c.status == Status::Problem);
    let client_silent = effective
        .and_then(|e| e.number("serveraliveinterval"))
        .is_some_and(|i| i == 0);
    let server_silent = ca.as_ref().is_some_and(|c| c.interval == 0);
    if server_problem || (fixing && server_silent) || (client_silent && server_silent) {
        report.note(
            &format!("Server side (abide does not edit root-owned files on {host})"),
            sshd::server_lines(ca.as_ref(), r.unit()),
        );
    }
    report.section(&title, checks);
    let abide = remote::abide_path(&r).ok_or_else(|| "abide is not installed there".to_string());
    Ok((ca.map(|c| c.interval), abide))
}

#[cfg(test)]
mod tests {
    use super::host_for_config;

    #[test]
    fn host_lines_match_the_host_name_only() {
        assert_eq!(host_for_config("web"), "web");
        assert_eq!(host_for_config("me@web"), "web");
        assert_eq!(host_for_config("ssh://me@web:2222"), "web");
        assert_eq!(host_for_config("ssh://[2001:db8::1]:22"), "2001:db8::1");
        assert_eq!(host_for_config("2001:db8::1"), "2001:db8::1");
    }
}
