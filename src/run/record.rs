//! The run record: `.topsail/runs/<run-id>/` under the pipeline's directory,
//! with `run.json` (steps, statuses, attempts, timings, outputs) and the
//! log of every step in one file, `run.log`: one line per logged line,
//! `UNIT<TAB>LINE`. (One file per step cost more than a no-op step itself
//! where creating files is slow, as on ext4 right after many deletions.)
//! Records written before kept `logs/<unit>.log`; [`read_logs`] reads both.
//! Everything written here has already been masked: no secret value
//! reaches the disk. `topsail runs` and `topsail logs` read it.
//!
//! A run that never finishes its record (topsail killed, or its machine
//! rebooted) would say `running` for ever: `run.json` names its [`Owner`],
//! and the next `topsail run` or `topsail runs` marks a `running` record
//! whose owner is certainly gone as `lost` and removes the attempt
//! directories it left ([`sweep_lost`]). An owner that cannot be seen
//! (another PID namespace, another machine) is never presumed dead.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::run::report::RunReport;

pub const RUNS_DIR: &str = ".topsail/runs";

pub const LOG_FILE: &str = "run.log";

pub struct Record {
    pub dir: PathBuf,
    /// This process, as `run.json` names it.
    pub owner: Option<Owner>,
    /// `run.log`, shared by every step; `None` once writing it failed.
    log: Mutex<Option<BufWriter<File>>>,
}

impl Record {
    /// A record nobody owns (one `topsail start --follow` writes from an
    /// execution's history: the execution goes on without it).
    pub fn create(pipeline_dir: &Path, run_id: &str) -> std::io::Result<Record> {
        Record::open(pipeline_dir, run_id, None)
    }

    /// The record of a local run by this process; `tmp_base`: where the run
    /// makes its attempt directories (kept in its [`Owner`], so that a lost
    /// run's can be removed).
    pub fn create_owned(
        pipeline_dir: &Path,
        run_id: &str,
        tmp_base: &Path,
    ) -> std::io::Result<Record> {
        Record::open(pipeline_dir, run_id, Owner::this_process(tmp_base))
    }

    fn open(pipeline_dir: &Path, run_id: &str, owner: Option<Owner>) -> std::io::Result<Record> {
        let dir = pipeline_dir.join(RUNS_DIR).join(run_id);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))?;
        Ok(Record {
            dir,
            owner,
            log: Mutex::new(Some(BufWriter::new(log))),
        })
    }

    fn with_log(&self, f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = log.as_mut()
            && let Err(e) = f(w)
        {
            errln!(
                "topsail: cannot write {}: {e} (the run goes on without logs)",
                self.dir.join(LOG_FILE).display()
            );
            *log = None;
        }
    }

    /// Append one line of `unit`'s log (buffered: see [`Record::flush_log`]).
    pub fn log_line(&self, unit: &str, line: &str) {
        self.with_log(|w| writeln!(w, "{}\t{line}", log_key(unit)));
    }

    /// Write out what is buffered; each step does when it ends.
    pub fn flush_log(&self) {
        self.with_log(BufWriter::flush);
    }

    /// Write `run.json` atomically (a reader never sees half a file).
    pub fn write(&self, report: &RunReport) {
        let tmp = self.dir.join("run.json.tmp");
        let text = match serde_json::to_string_pretty(report) {
            Ok(t) => t,
            Err(e) => {
                errln!("topsail: cannot serialize the run record: {e}");
                return;
            }
        };
        if let Err(e) = std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("run.json")))
        {
            errln!(
                "topsail: cannot write {}: {e}",
                self.dir.join("run.json").display()
            );
        }
    }
}

/// The process that owns a running record: enough to tell, later, whether
/// it is still alive (a pid alone may have been reused).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// When it started, in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start: u64,
    /// `/proc/sys/kernel/random/boot_id`: the boot the pid belongs to.
    pub boot_id: String,
    /// `/proc/self/ns/pid`: the PID namespace the pid means something in.
    pub pid_ns: String,
    /// `/etc/machine-id`, when there is one: tells a reboot of this
    /// machine from another machine sharing the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Where its attempt directories are.
    pub tmp: PathBuf,
}

/// Whether a record's owner still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Certainly gone: same boot and namespace and no such process (or
    /// another process with its pid), or this machine rebooted since.
    Gone,
    /// Cannot tell (no /proc, another namespace or machine): presumed alive.
    Unknown,
}

impl Owner {
    /// This process; `None` where /proc does not tell (not Linux).
    pub fn this_process(tmp: &Path) -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start: start_time(pid).ok()??.0,
            boot_id: boot_id()?,
            pid_ns: pid_ns()?,
            machine_id: machine_id(),
            tmp: tmp.to_path_buf(),
        })
    }

    pub fn liveness(&self) -> Liveness {
        let (Some(boot), Some(ns)) = (boot_id(), pid_ns()) else {
            return Liveness::Unknown;
        };
        if boot != self.boot_id {
            // No process outlives a reboot; but another machine has another
            // boot id too, and only the machine id tells them apart.
            return match (&self.machine_id, machine_id()) {
                (Some(theirs), Some(ours)) if *theirs == ours => Liveness::Gone,
                _ => Liveness::Unknown,
            };
        }
        if ns != self.pid_ns {
            return Liveness::Unknown;
        }
        match start_time(self.pid) {
            Ok(None) => Liveness::Gone,
            Ok(Some((start, zombie))) if start != self.start || zombie => Liveness::Gone,
            Ok(Some(_)) => Liveness::Alive,
            Err(()) => Liveness::Unknown,
        }
    }
}

/// `pid`'s start time in clock ticks since boot and whether it is a
/// zombie; `Ok(None)`: no such process; `Err`: /proc cannot tell.
fn start_time(pid: u32) -> Result<Option<(u64, bool)>, ()> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No /proc at all is not "no such process".
            return if Path::new("/proc/self/stat").exists() {
                Ok(None)
            } else {
                Err(())
            };
        }
        Err(_) => return Err(()),
    };
    // The command name (field 2) is in parentheses and may hold anything:
    // count fields from the last `)`. Field 3 is the state, 22 the start time.
    let rest = stat.rsplit_once(')').ok_or(())?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next().ok_or(())?;
    let start = fields.nth(18).and_then(|f| f.parse().ok()).ok_or(())?;
    Ok(Some((start, state == "Z" || state == "X")))
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

fn pid_ns() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.display().to_string())
}

fn machine_id() -> Option<String> {
    let id = std::fs::read_to_string("/etc/machine-id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

/// Mark every `running` record under `dir` whose owner is gone as `lost`
/// (its unfinished units `cancelled`) and remove the attempt directories
/// it left. The ids of the runs marked.
pub fn sweep_lost(dir: &Path) -> Vec<String> {
    let Ok(runs) = list_runs(dir) else {
        return Vec::new();
    };
    let mut lost = Vec::new();
    for (id, json) in runs {
        let Some(owner) = json
            .filter(|j| j.get("status").and_then(|s| s.as_str()) == Some("running"))
            .and_then(|j| j.get("owner").cloned())
            .and_then(|o| serde_json::from_value::<Owner>(o).ok())
        else {
            continue;
        };
        if owner.liveness() != Liveness::Gone {
            continue;
        }
        // Gone, so it writes no more: read again what it wrote last.
        let path = dir.join(RUNS_DIR).join(&id).join("run.json");
        let Some(mut run) = crate::source::read::read_source(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(|j| j.get("status").and_then(|s| s.as_str()) == Some("running"))
        else {
            continue;
        };
        mark_lost(&mut run, &owner);
        let tmp = path.with_extension(format!("json.lost-{}", std::process::id()));
        let text = serde_json::to_string_pretty(&run).unwrap_or_default() + "\n";
        if std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
            continue;
        }
        remove_attempt_dirs(&owner.tmp, owner.pid, &id);
        lost.push(id);
    }
    lost
}

fn mark_lost(run: &mut serde_json::Value, owner: &Owner) {
    let reason = format!(
        "lost: topsail (pid {}) ended without finishing the run",
        owner.pid
    );
    run["status"] = "lost".into();
    if let Some(units) = run.get_mut("steps").and_then(|s| s.as_array_mut()) {
        for u in units {
            let open = matches!(
                u.get("status").and_then(|s| s.as_str()),
                Some("running" | "pending")
            );
            if open {
                u["status"] = "cancelled".into();
                u["reason"] = reason.clone().into();
            }
        }
    }
}

/// Remove the attempt directories of run `id` under `tmp`: directories
/// (not symlinks) named `topsail-<id>-...` that this user owns.
/// Remove what the lost run `id` left in `tmp`: its attempt directories,
/// which sit in its topsail's private directories (`topsail-PID-N`, see
/// `runtime::AttemptDir::create`) or, from older versions, in `tmp` itself;
/// then those private directories once empty. Only directories of this user
/// are touched, and a private directory that still holds anything (a live
/// process that was given the same pid since) is left.
fn remove_attempt_dirs(tmp: &Path, pid: u32, id: &str) {
    let valid_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid_id || !tmp.is_absolute() {
        return;
    }
    let Ok(me) = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m))
    else {
        return;
    };
    let own_dir = |p: &Path| {
        std::fs::symlink_metadata(p)
            .is_ok_and(|m| m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == me)
    };
    let remove_in = |dir: &Path| {
        let prefix = format!("topsail-{id}-");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let ours = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix));
            if ours && own_dir(&entry.path()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    };
    remove_in(tmp);
    let private = format!("topsail-{pid}-");
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_private = entry.file_name().to_str().is_some_and(|n| {
            n.strip_prefix(&private)
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit()))
        });
        if is_private && own_dir(&path) {
            remove_in(&path);
            // Fails, and so keeps it, while anything is left inside.
            let _ = std::fs::remove_dir(&path);
        }
    }
}

/// A unit's name as the first field of a `run.log` line (a foreach item
/// may hold a tab or a line break).
fn log_key(unit: &str) -> String {
    unit.replace(['\t', '\n', '\r'], " ")
}

/// The logged lines of each of `units` in the record at `run_dir`, in the
/// order they were written (empty for a unit that logged nothing).
pub fn read_logs(run_dir: &Path, units: &[String]) -> Vec<Vec<String>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for line in log_lines(&run_dir.join(LOG_FILE)) {
        if let Some((key, rest)) = line.split_once('\t') {
            by_key
                .entry(key.to_string())
                .or_default()
                .push(rest.to_string());
        }
    }
    units
        .iter()
        .map(|u| match by_key.remove(&log_key(u)) {
            Some(lines) => lines,
            // A record from before `run.log`: one file per unit.
            None => log_lines(&run_dir.join("logs").join(log_file_name(u))),
        })
        .collect()
}

/// The longest line kept from a log file: what a step's line may be
/// ([`crate::run::runtime::MAX_LINE_BYTES`] and its cut marker) with room
/// for the unit and stream in front. A longer one is cut there.
const MAX_LOG_LINE: usize = crate::run::runtime::MAX_LINE_BYTES + 4096;

/// The lines of a log file, if it is a regular file (none otherwise): a
/// FIFO put in a record's place must not block `topsail logs`, nor a
/// symlink to `/dev/zero` fill memory. It is opened with `O_NONBLOCK` and
/// checked again through the descriptor (as [`crate::syntax::read`] does), and
/// each line is read up to [`MAX_LOG_LINE`] bytes, the rest of it dropped.
fn log_lines(path: &Path) -> Vec<String> {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let regular = |m: &std::fs::Metadata| m.file_type().is_file();
    if !std::fs::metadata(path).is_ok_and(|m| regular(&m)) {
        return Vec::new();
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
    else {
        return Vec::new();
    };
    if !file.metadata().is_ok_and(|m| regular(&m)) {
        return Vec::new();
    }
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        // Up to the limit; past it, skip to the next line break.
        let Ok(n) = Read::by_ref(&mut reader)
            .take(MAX_LOG_LINE as u64)
            .read_until(b'\n', &mut line)
        else {
            break;
        };
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && line.len() >= MAX_LOG_LINE {
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match Read::by_ref(&mut reader)
                    .take(64 * 1024)
                    .read_until(b'\n', &mut rest)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        lines.push(String::from_utf8_lossy(&line).into_owned());
    }
    lines
}

/// `deploy[eu-west-1]` -> `deploy[eu-west-1].log`; anything odd becomes `_`
/// (the per-unit log files of records from before `run.log`).
pub fn log_file_name(unit: &str) -> String {
    let safe: String = unit
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.log")
}

/// Run ids under `dir`'s record folder, newest first.
pub fn list_runs(dir: &Path) -> std::io::Result<Vec<(String, Option<serde_json::Value>)>> {
    let root = dir.join(RUNS_DIR);
    let mut ids: Vec<String> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    ids.sort();
    ids.reverse();
    Ok(ids
        .into_iter()
        .map(|id| {
            let json = crate::source::read::read_source(&root.join(&id).join("run.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            (id, json)
        })
        .collect())
}

/// The recorded run `spec` names under `dir`: `last`, a run id, or a
/// unique prefix of one; with its `run.json` when it could be read.
pub fn find_run(dir: &Path, spec: &str) -> Result<(String, Option<serde_json::Value>), String> {
    let runs = list_runs(dir).map_err(|e| format!("cannot read the run records: {e}"))?;
    let mut matching: Vec<_> = if spec == "last" {
        runs.into_iter().take(1).collect()
    } else {
        runs.into_iter()
            .filter(|(id, _)| id.starts_with(spec))
            .collect()
    };
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(format!(
            "no recorded run matches `{spec}` in {} (see `topsail runs`)",
            dir.join(RUNS_DIR).display()
        )),
        _ => {
            let ids: Vec<&str> = matching.iter().map(|(i, _)| i.as_str()).collect();
            Err(format!("`{spec}` matches several runs: {}", ids.join(", ")))
        }
    }
}

/// How long each step took in a recorded run (`run.json`), in seconds, by
/// step name: steps that succeeded; for a `foreach` step its slowest
/// instance (the instances run side by side).
pub fn step_durations(run: &serde_json::Value) -> HashMap<String, f64> {
    let mut out: HashMap<String, f64> = HashMap::new();
    let units = run.get("steps").and_then(|s| s.as_array());
    for u in units.into_iter().flatten() {
        let (Some(step), Some(status), Some(ms)) = (
            u.get("step").and_then(|s| s.as_str()),
            u.get("status").and_then(|s| s.as_str()),
            u.get("duration_ms").and_then(serde_json::Value::as_u64),
        ) else {
            continue;
        };
        if status == "succeeded" {
            let d = out.entry(step.to_string()).or_insert(0.0);
            *d = d.max(ms as f64 / 1000.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_come_from_succeeded_steps_and_the_slowest_instance() {
        let run = serde_json::json!({"steps": [
            {"name": "a", "step": "a", "status": "succeeded", "duration_ms": 1500},
            {"name": "f[x]", "step": "f", "status": "succeeded", "duration_ms": 200},
            {"name": "f[y]", "step": "f", "status": "succeeded", "duration_ms": 900},
            {"name": "b", "step": "b", "status": "failed", "duration_ms": 10},
            {"name": "c", "step": "c", "status": "skipped", "duration_ms": 0},
            {"name": "odd"}
        ]});
        let d = step_durations(&run);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            (d["a"] - 1.5).abs() < 1e-9 && (d["f"] - 0.9).abs() < 1e-9,
            "{d:?}"
        );
    }

    #[test]
    fn runs_are_found_by_last_id_or_unique_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["20261125-100000-aaaa", "20261125-110000-bbbb"] {
            let d = dir.path().join(RUNS_DIR).join(id);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("run.json"), format!(r#"{{"run_id": "{id}"}}"#)).unwrap();
        }
        assert_eq!(
            find_run(dir.path(), "last").unwrap().0,
            "20261125-110000-bbbb"
        );
        let (id, json) = find_run(dir.path(), "20261125-10").unwrap();
        assert_eq!(id, "20261125-100000-aaaa");
        assert_eq!(json.unwrap()["run_id"], "20261125-100000-aaaa");
        let many = find_run(dir.path(), "2026").unwrap_err();
        assert!(many.contains("matches several runs"), "{many}");
        let none = find_run(dir.path(), "1999").unwrap_err();
        assert!(none.starts_with("no recorded run matches `1999`"), "{none}");
    }

    #[test]
    fn run_log_lines_come_back_per_unit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Record::create(dir.path(), "r1").unwrap();
        rec.log_line("a", "[topsail] started on the host");
        rec.log_line("f[x\ty]", "tab in the item");
        rec.log_line("a", "hello\tworld");
        rec.flush_log();
        let units = ["a", "f[x\ty]", "silent"].map(str::to_string);
        let logs = read_logs(&rec.dir, &units);
        assert_eq!(logs[0], ["[topsail] started on the host", "hello\tworld"]);
        assert_eq!(logs[1], ["tab in the item"]);
        assert!(logs[2].is_empty());
    }

    #[test]
    fn an_owner_is_alive_gone_or_unknown() {
        let tmp = std::env::temp_dir();
        let Some(me) = Owner::this_process(&tmp) else {
            return; // no /proc here
        };
        assert_eq!(me.liveness(), Liveness::Alive);
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(
            reused.liveness(),
            Liveness::Gone,
            "a reused pid is not the owner"
        );
        let other_ns = Owner {
            pid: u32::MAX / 2,
            pid_ns: "pid:[1]".into(),
            ..me.clone()
        };
        assert_eq!(other_ns.liveness(), Liveness::Unknown);
        let other_machine = Owner {
            boot_id: "another-boot".into(),
            machine_id: Some("another-machine".into()),
            ..me.clone()
        };
        assert_eq!(other_machine.liveness(), Liveness::Unknown);
        let rebooted = Owner {
            boot_id: "another-boot".into(),
            ..me.clone()
        };
        let want = if me.machine_id.is_some() {
            Liveness::Gone
        } else {
            Liveness::Unknown
        };
        assert_eq!(rebooted.liveness(), want);
    }

    #[test]
    fn records_from_before_run_log_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/deploy[eu].log"), "one\ntwo\n").unwrap();
        let logs = read_logs(dir.path(), &["deploy[eu]".to_string()]);
        assert_eq!(logs[0], ["one", "two"]);
    }
}
