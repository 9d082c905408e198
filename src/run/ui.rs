//! What a person sees during a run: every line prefixed with its step
//! (a stable colour per step on a TTY, plain with `NO_COLOR`, in CI or when
//! piped), a live progress line on a TTY, and the summary table at the end.
//! Everything goes through one lock so lines from parallel steps never mix.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::run::runtime::Stream;
use crate::run::scheduler::{RunReport, RunStatus, Status};

pub struct Ui {
    color: bool,
    interactive: bool,
    width: usize,
    /// Print nothing at all (tests that drive the scheduler directly).
    silent: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The progress line currently on screen (to erase before printing).
    progress: Option<String>,
}

const PALETTE: [u8; 6] = [36, 33, 35, 32, 34, 96];

/// Colours on when stdout is a terminal and neither `NO_COLOR` nor `CI` is set.
pub fn want_color(no_color_flag: bool) -> bool {
    !no_color_flag
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("CI").is_none()
        && std::io::stdout().is_terminal()
}

/// Progress and prompts only for a person at a terminal.
pub fn is_interactive() -> bool {
    std::env::var_os("CI").is_none()
        && std::io::stdout().is_terminal()
        && std::io::stdin().is_terminal()
}

impl Ui {
    pub fn new(color: bool, interactive: bool, names: impl IntoIterator<Item = String>) -> Ui {
        let width = names
            .into_iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(4)
            .min(24);
        Ui {
            color,
            interactive,
            width,
            silent: false,
            state: Mutex::new(State::default()),
        }
    }

    /// A UI that prints nothing.
    pub fn silent() -> Ui {
        Ui {
            silent: true,
            ..Ui::new(false, false, [])
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn prefix(&self, name: &str) -> String {
        let padded = format!("{name:<w$}", w = self.width);
        if self.color {
            let h = name
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let c = PALETTE[(h as usize) % PALETTE.len()];
            format!("\x1b[{c}m{padded} │\x1b[0m")
        } else {
            format!("{padded} |")
        }
    }

    fn print(&self, text: &str) {
        if self.silent {
            return;
        }
        let mut st = self.lock();
        let mut out = std::io::stdout().lock();
        if st.progress.is_some() {
            let _ = write!(out, "\r\x1b[2K");
        }
        let _ = writeln!(out, "{text}");
        if let Some(p) = &st.progress {
            let _ = write!(out, "{p}");
        }
        let _ = out.flush();
        drop(out);
        if !self.interactive {
            st.progress = None;
        }
    }

    /// A line the step printed.
    pub fn line(&self, name: &str, stream: Stream, text: &str) {
        let body = if stream == Stream::Stderr && self.color {
            format!("\x1b[31m{text}\x1b[0m")
        } else {
            text.to_string()
        };
        self.print(&format!("{} {body}", self.prefix(name)));
    }

    /// A message from topsail about the step.
    pub fn system(&self, name: &str, text: &str) {
        let body = if self.color {
            format!("\x1b[2m▸ {text}\x1b[0m")
        } else {
            format!("> {text}")
        };
        self.print(&format!("{} {body}", self.prefix(name)));
    }

    pub fn failure(&self, name: &str, text: &str) {
        let body = if self.color {
            format!("\x1b[1;31m✗ {text}\x1b[0m")
        } else {
            format!("! {text}")
        };
        self.print(&format!("{} {body}", self.prefix(name)));
    }

    pub fn error(&self, text: &str) {
        if self.silent {
            return;
        }
        let mut st = self.lock();
        if st.progress.take().is_some() {
            print!("\r\x1b[2K");
        }
        let _ = std::io::stdout().flush();
        // Not `eprintln!`: it panics when stderr is gone (a closed terminal
        // after SIGHUP), and this runs while the run stops cleanly.
        let _ = writeln!(std::io::stderr(), "topsail: {text}");
    }

    pub fn progress(&self, running: &[&str], done: usize, total: usize) {
        if !self.interactive {
            return;
        }
        let mut names = running.join(", ");
        if names.chars().count() > 60 {
            names = names.chars().take(57).collect::<String>() + "...";
        }
        let waiting = total - done - running.len();
        let line = format!(
            "\x1b[2m[{done}/{total} done, {} running, {waiting} waiting] {names}\x1b[0m",
            running.len()
        );
        let mut st = self.lock();
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K{line}");
        let _ = out.flush();
        st.progress = Some(line);
    }

    pub fn clear_progress(&self) {
        let mut st = self.lock();
        if st.progress.take().is_some() {
            print!("\r\x1b[2K");
            let _ = std::io::stdout().flush();
        }
    }

    /// Ask a yes/no question on the terminal (blocking).
    pub fn prompt(&self, question: &str) -> Option<bool> {
        let st = self.lock();
        let mut out = std::io::stdout().lock();
        if st.progress.is_some() {
            let _ = write!(out, "\r\x1b[2K");
        }
        let _ = write!(out, "approve? {question} [y/N] ");
        let _ = out.flush();
        drop(out);
        let mut answer = String::new();
        let read = std::io::stdin().read_line(&mut answer);
        drop(st);
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")),
        }
    }

    pub fn summary(&self, report: &RunReport, record_dir: Option<&std::path::Path>) {
        self.clear_progress();
        println!("{}", summary_table(report, self.color));
        let count = |s: Status| report.steps.iter().filter(|u| u.status == s).count();
        let verdict = match report.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed | RunStatus::Running => "failed",
            RunStatus::Interrupted => "interrupted",
        };
        let mut line = format!(
            "run {} {verdict} in {:.1}s: {} succeeded, {} failed, {} skipped, {} cancelled",
            report.run_id,
            report.duration_ms as f64 / 1000.0,
            count(Status::Succeeded),
            count(Status::Failed),
            count(Status::Skipped),
            count(Status::Cancelled),
        );
        if let Some(dir) = record_dir {
            let _ = write!(line, "\nrecord: {}", dir.display());
        }
        println!("{line}");
    }
}

/// The table: step, status, attempts, duration, and why when it did not run.
pub fn summary_table(report: &RunReport, color: bool) -> String {
    let w = report
        .steps
        .iter()
        .map(|u| u.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<w$}  {:<9}  {:>8}  {:>8}",
        "STEP", "STATUS", "ATTEMPTS", "DURATION"
    );
    for u in &report.steps {
        let status = u.status.as_str();
        let painted = if color {
            let c = match u.status {
                Status::Succeeded => 32,
                Status::Failed => 31,
                Status::Skipped => 2,
                _ => 33,
            };
            format!("\x1b[{c}m{status:<9}\x1b[0m")
        } else {
            format!("{status:<9}")
        };
        let dur = if u.attempts == 0 {
            "-".to_string()
        } else {
            format!("{:.1}s", u.duration_ms as f64 / 1000.0)
        };
        let why = match (&u.reason, &u.cause) {
            (_, Some(cause)) => format!("  {cause}"),
            (Some(r), None) => format!("  {r}"),
            (None, None) => String::new(),
        };
        let _ = write!(
            out,
            "\n{:<w$}  {painted}  {:>8}  {:>8}{why}",
            u.name, u.attempts, dur
        );
    }
    out
}
