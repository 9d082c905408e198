//! `topsail run --watch`: file changes under the pipeline's directory, as a
//! tokio channel. notify watches, notify-debouncer-full groups a burst of
//! events into one, and the paths are filtered: `.topsail/` (our own run
//! records), `.git/`, `target/` and whatever `.gitignore` ignores do not
//! count.
//!
//! What a run writes never starts the next run ([`Session`]). A step's
//! write and a person's save look the same to a watcher, so the rule goes
//! by time: during a run, only a change to the pipeline's own source files
//! (the file and its imports) cancels it and starts again; any other path
//! changed during the run is taken as the run's output. When the run ends
//! (and its late events are in), each such path is stamped (mtime, size);
//! from then on an event counts only where the file differs from its stamp.
//! So `cat src.txt > out.txt` runs once, and saving `src.txt` afterwards
//! reruns it. A file saved by hand during a run is reported as taken for
//! the run's own: save it again to rerun.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;

/// Keeps the watcher alive; drop it to stop watching.
pub struct Watcher {
    _debouncer: Box<dyn std::any::Any + Send>,
}

/// Watch `dir` recursively; each message is the list of changed paths of one burst.
pub fn watch(dir: &Path) -> Result<(Watcher, mpsc::UnboundedReceiver<Vec<PathBuf>>), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let filter = Filter::new(dir);
    let mut debouncer = new_debouncer(
        Duration::from_millis(300),
        None,
        move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let paths: Vec<PathBuf> = events
                .iter()
                .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
                .flat_map(|e| e.event.paths.iter())
                .filter(|p| filter.counts(p))
                .cloned()
                .collect();
            if !paths.is_empty() {
                let _ = tx.send(paths);
            }
        },
    )
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    debouncer
        .watch(dir, RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok((
        Watcher {
            _debouncer: Box::new(debouncer),
        },
        rx,
    ))
}

/// How long after a write its (debounced) event arrives, at most: the
/// debouncer's timeout plus its tick, with a margin.
const SETTLE: Duration = Duration::from_millis(600);

/// What identifies a file's content cheaply: `None` when it does not exist.
type Stamp = Option<(Option<SystemTime>, u64, bool)>;

fn stamp(path: &Path) -> Stamp {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.modified().ok(), m.len(), m.is_dir()))
}

/// A `--watch` session: the watcher plus what tells a run's own writes
/// from changes that should start the next run (see the module doc).
pub struct Session {
    _watcher: Watcher,
    rx: mpsc::UnboundedReceiver<Vec<PathBuf>>,
    /// The pipeline's source files, canonical.
    sources: Vec<PathBuf>,
    /// Paths changed while the current run ran.
    during: BTreeSet<PathBuf>,
    /// Paths the last run wrote, as they were when it ended.
    written: HashMap<PathBuf, Stamp>,
    /// Source files that changed as the run ended: the next change.
    source_pending: Option<Vec<PathBuf>>,
}

impl Session {
    pub fn new(dir: &Path, sources: &[PathBuf]) -> Result<Session, String> {
        let (watcher, rx) = watch(dir)?;
        let mut s = Session {
            _watcher: watcher,
            rx,
            sources: Vec::new(),
            during: BTreeSet::new(),
            written: HashMap::new(),
            source_pending: None,
        };
        s.set_sources(sources);
        Ok(s)
    }

    /// The pipeline's files, as loaded for the next run.
    pub fn set_sources(&mut self, sources: &[PathBuf]) {
        self.sources = sources
            .iter()
            .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
            .collect();
    }

    fn is_source(&self, path: &Path) -> bool {
        self.sources.iter().any(|s| s == path)
    }

    /// During a run: resolves when one of the pipeline's source files
    /// changes (those paths); every other change is remembered as the run's
    /// own. `None`: the watcher stopped.
    pub async fn source_changed(&mut self) -> Option<Vec<PathBuf>> {
        loop {
            let paths = self.rx.recv().await?;
            let (sources, others): (Vec<PathBuf>, Vec<PathBuf>) =
                paths.into_iter().partition(|p| self.is_source(p));
            self.during.extend(others);
            if !sources.is_empty() {
                return Some(sources);
            }
        }
    }

    /// After a run: let the events of its last writes arrive, then stamp
    /// every path it changed. Returns those paths (for a note to the user).
    pub async fn run_ended(&mut self) -> Vec<PathBuf> {
        tokio::time::sleep(SETTLE).await;
        while let Ok(paths) = self.rx.try_recv() {
            let (sources, others): (Vec<PathBuf>, Vec<PathBuf>) =
                paths.into_iter().partition(|p| self.is_source(p));
            self.during.extend(others);
            if !sources.is_empty() {
                self.source_pending
                    .get_or_insert_with(Vec::new)
                    .extend(sources);
            }
        }
        let during = std::mem::take(&mut self.during);
        self.written = during.iter().map(|p| (p.clone(), stamp(p))).collect();
        during.into_iter().collect()
    }

    /// Between runs: the next change that is not the last run's own write
    /// (a path it wrote counts once it differs from how the run left it).
    /// `None`: the watcher stopped.
    pub async fn next_change(&mut self) -> Option<Vec<PathBuf>> {
        if let Some(sources) = self.source_pending.take() {
            return Some(sources);
        }
        loop {
            let paths = self.rx.recv().await?;
            let changed: Vec<PathBuf> = paths
                .into_iter()
                .filter(|p| match self.written.get(p) {
                    Some(s) => stamp(p) != *s,
                    None => true,
                })
                .collect();
            if !changed.is_empty() {
                return Some(changed);
            }
        }
    }

    /// Let a burst of changes settle before the next run reads the files:
    /// what arrives meanwhile is part of the same change.
    pub async fn settle(&mut self) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while self.rx.try_recv().is_ok() {}
        self.source_pending = None;
    }
}

struct Filter {
    root: PathBuf,
    gitignore: Gitignore,
}

impl Filter {
    fn new(root: &Path) -> Filter {
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let mut b = GitignoreBuilder::new(&root);
        // A missing or unreadable .gitignore simply ignores nothing.
        let _ = b.add(root.join(".gitignore"));
        let gitignore = b.build().unwrap_or_else(|_| Gitignore::empty());
        Filter { root, gitignore }
    }

    fn counts(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        if let Some(first) = rel.components().next() {
            let first = first.as_os_str();
            if first == ".topsail" || first == ".git" || first == "target" {
                return false;
            }
        }
        !self
            .gitignore
            .matched_path_or_any_parents(rel, path.is_dir())
            .is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_gitignored_files_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.out\nbuild/\n").unwrap();
        let f = Filter::new(dir.path());
        let root = f.root.clone();
        assert!(f.counts(&root.join("pipeline.topsail")));
        assert!(f.counts(&root.join("src/a.rs")));
        assert!(!f.counts(&root.join(".topsail/runs/x/run.json")));
        assert!(!f.counts(&root.join("target/debug/x")));
        assert!(!f.counts(&root.join("a.out")));
        assert!(!f.counts(&root.join("build/x")));
    }
}
