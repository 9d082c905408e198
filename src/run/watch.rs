//! `topsail run --watch`: file changes under the pipeline's directory, as a
//! tokio channel. notify watches, notify-debouncer-full groups a burst of
//! events into one, and the paths are filtered: `.topsail/` (our own run
//! records), `.git/`, `target/` and whatever `.gitignore` ignores do not
//! count, so a run does not retrigger itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
