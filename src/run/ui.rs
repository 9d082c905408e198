//! What a person sees during a run: every line prefixed with its step
//! (a stable colour per step on a TTY, plain with `NO_COLOR`, in CI or when
//! piped), a live progress line on a TTY, and the summary table at the end.
//! Everything goes through one lock so lines from parallel steps never mix.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::run::report::{RunReport, RunStatus, Status};
use crate::run::runtime::Stream;

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
    /// The progress line currently on screen, as plain text (to erase
    /// before printing, and to draw again after).
    progress: Option<String>,
    /// How many columns the progress line took when it was drawn.
    drawn: usize,
    /// Why the run is being stopped, when not by a signal.
    stop_reason: Option<String>,
}

const PALETTE: [u8; 6] = [36, 33, 35, 32, 34, 96];

/// Set by `--no-color`: no colour and no escape sequence anywhere.
static COLOR_FORBIDDEN: AtomicBool = AtomicBool::new(false);

/// `--no-color` was given.
pub fn forbid_color() {
    COLOR_FORBIDDEN.store(true, Ordering::Relaxed);
}

/// Neither `--no-color` nor a non-empty `NO_COLOR` (no-color.org).
pub fn color_allowed() -> bool {
    !COLOR_FORBIDDEN.load(Ordering::Relaxed)
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Colours on when stdout is a terminal, colour is allowed and `CI` is not set.
pub fn want_color() -> bool {
    color_allowed() && std::env::var_os("CI").is_none() && std::io::stdout().is_terminal()
}

/// Progress and prompts only for a person at a terminal.
pub fn is_interactive() -> bool {
    std::env::var_os("CI").is_none()
        && std::io::stdout().is_terminal()
        && std::io::stdin().is_terminal()
}

/// The width of the terminal on stdout in columns, read afresh (so a resize
/// is seen at the next line drawn): the tty's own size, else `$COLUMNS`.
/// `None` when stdout is not a terminal: lines are then not wrapped.
fn terminal_width() -> Option<usize> {
    let out = std::io::stdout();
    if !out.is_terminal() {
        return None;
    }
    if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size_of(&out)
        && w > 0
    {
        return Some(usize::from(w));
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
}

/// Display columns of `text` (wide characters count two, combining marks none).
fn columns(text: &str) -> usize {
    textwrap::core::display_width(text)
}

/// `text` cut to at most `max` display columns, with `...` where it was cut.
fn fit(text: &str, max: usize) -> String {
    if columns(text) <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(3);
    let mut out = String::new();
    let mut used = 0;
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let w = columns(c.encode_utf8(&mut buf));
        if used + w > keep {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push_str(&"..."[..max.min(3)]);
    out
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

    /// Take the progress line off the screen: `\r` and erase-line with
    /// colour, else (no escape sequence at all) `\r`, blanks over what was
    /// drawn, `\r`.
    fn erase(&self, st: &mut State, out: &mut impl Write) {
        if st.progress.is_none() {
            return;
        }
        if self.color {
            let _ = write!(out, "\r\x1b[K");
        } else {
            let _ = write!(out, "\r{:1$}\r", "", st.drawn);
        }
        st.drawn = 0;
    }

    /// Draw the progress line, cut to the terminal's width as it is now. It
    /// never reaches the last column: a line that wraps cannot be erased
    /// with `\r` and leaves a ghost copy behind.
    fn draw(&self, st: &mut State, out: &mut impl Write) {
        let Some(p) = &st.progress else { return };
        let max = terminal_width().unwrap_or(80).saturating_sub(1).max(1);
        let line = fit(p, max);
        st.drawn = columns(&line);
        if self.color {
            let _ = write!(out, "\x1b[2m{line}\x1b[0m");
        } else {
            let _ = write!(out, "{line}");
        }
    }

    fn print(&self, text: &str) {
        if self.silent {
            return;
        }
        let mut st = self.lock();
        let mut out = std::io::stdout().lock();
        self.erase(&mut st, &mut out);
        let _ = writeln!(out, "{text}");
        if !self.interactive {
            st.progress = None;
        }
        self.draw(&mut st, &mut out);
        let _ = out.flush();
    }

    /// A message of topsail's about a step: `mark` and `text` after the
    /// step's prefix, wrapped at word boundaries to the terminal's width
    /// (continuation lines indented under the text), each line painted with
    /// `paint` when colour is on.
    fn message(&self, name: &str, mark: &str, paint: &str, text: &str) {
        let prefix = self.prefix(name);
        let indent = self.width.max(columns(name)) + 2 + columns(mark) + 1;
        let lines: Vec<String> = match terminal_width() {
            Some(w) if w > indent + 10 => textwrap::wrap(text, w - indent - 1)
                .into_iter()
                .map(std::borrow::Cow::into_owned)
                .collect(),
            _ => text.lines().map(str::to_string).collect(),
        };
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let lead = if i == 0 { mark } else { "" };
            let body = format!("{lead:<w$} {line}", w = columns(mark));
            if self.color {
                let _ = write!(out, "{prefix} \x1b[{paint}m{body}\x1b[0m");
            } else {
                let _ = write!(out, "{prefix} {body}");
            }
        }
        if lines.is_empty() {
            out = format!("{prefix} {mark}");
        }
        self.print(&out);
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
        let mark = if self.color { "▸" } else { ">" };
        self.message(name, mark, "2", text);
    }

    pub fn failure(&self, name: &str, text: &str) {
        let mark = if self.color { "✗" } else { "!" };
        self.message(name, mark, "1;31", text);
    }

    pub fn error(&self, text: &str) {
        if self.silent {
            return;
        }
        let mut st = self.lock();
        let mut out = std::io::stdout().lock();
        self.erase(&mut st, &mut out);
        st.progress = None;
        let _ = out.flush();
        drop(out);
        // Not `eprintln!`: a closed stderr must not panic (and lose the run's status).
        let _ = writeln!(std::io::stderr(), "topsail: {text}");
    }

    /// Say why the run is being cancelled (before cancelling it), for the
    /// messages that follow: `--watch` cancels a run when files change.
    pub fn set_stop_reason(&self, reason: &str) {
        self.lock().stop_reason = Some(reason.to_string());
    }

    /// Why the run is being cancelled; `None`: interrupted (a signal).
    pub fn stop_reason(&self) -> Option<String> {
        self.lock().stop_reason.clone()
    }

    pub fn progress(&self, running: &[&str], done: usize, total: usize) {
        if !self.interactive || self.silent {
            return;
        }
        let waiting = total - done - running.len();
        let line = format!(
            "[{done}/{total} done, {} running, {waiting} waiting] {}",
            running.len(),
            running.join(", ")
        );
        let mut st = self.lock();
        let mut out = std::io::stdout().lock();
        self.erase(&mut st, &mut out);
        st.progress = Some(line);
        self.draw(&mut st, &mut out);
        let _ = out.flush();
    }

    pub fn clear_progress(&self) {
        let mut st = self.lock();
        let mut out = std::io::stdout().lock();
        self.erase(&mut st, &mut out);
        st.progress = None;
        let _ = out.flush();
    }

    /// Ask a yes/no question on the terminal (blocking).
    pub fn prompt(&self, question: &str) -> Option<bool> {
        let mut st = self.lock();
        let mut out = std::io::stdout().lock();
        self.erase(&mut st, &mut out);
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
        // Not `println!`: a closed stdout (`| head`) must not panic.
        let _ = writeln!(std::io::stdout(), "{}", summary_table(report, self.color));
        let count = |s: Status| report.steps.iter().filter(|u| u.status == s).count();
        let verdict = match (report.status, self.stop_reason()) {
            (RunStatus::Succeeded, _) => "succeeded".to_string(),
            (RunStatus::Failed | RunStatus::Running, _) => "failed".to_string(),
            (RunStatus::Interrupted, Some(why)) => format!("cancelled ({why})"),
            (RunStatus::Interrupted, None) => "interrupted".to_string(),
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
        let _ = writeln!(std::io::stdout(), "{line}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_counts_display_columns_not_bytes() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("abcdefghijkl", 8), "abcde...");
        // Wide characters take two columns each; é is one column, two bytes.
        let cut = fit("構建構建構建構建", 9);
        assert_eq!(columns(&cut), 9);
        assert_eq!(cut, "構建構...");
        assert_eq!(columns(&fit("éééééééééé", 6)), 6);
        assert_eq!(fit("abcdef", 2), "..");
    }
}
