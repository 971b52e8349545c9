//! [`FileSource`]: a [`ConfigSource`] that reloads a file or folder when it changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::model::Snapshot;
use gateway_core::source::ConfigSource;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, LoadError};
use crate::load::{LoadOptions, load};

/// Quiet period after the last file-system event before a reload, by default.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// A [`ConfigSource`] over a file or a folder of manifests, reloaded when it changes.
///
/// The first [`next`](ConfigSource::next) returns the initial snapshot, or the
/// [`LoadError`] of the initial load (calling `next` again then waits for a fix). Later calls
/// wait for a change, let it settle for a quiet period ([`FileSource::debounce`], 50 ms by
/// default, so an editor's or `kubectl`'s burst of writes is read once), reload the whole
/// tree, and return the new snapshot.
///
/// A reload that fails is not returned: the consumer keeps serving the last good
/// configuration. The failure is logged with `tracing::error!`, kept in
/// [`FileSource::last_error`], and sent to [`FileSource::errors`] receivers; the next good
/// reload clears it and is returned even if it equals the last good snapshot, so the
/// consumer sees the recovery. Otherwise, a reload that yields the snapshot already
/// returned (a `touch`, a save without changes, an unrelated file) is not returned again.
///
/// Watching is recursive for a folder; for a single file its folder is watched, so editors
/// that save by writing a new file and renaming it over the old one, and Kubernetes
/// ConfigMap mounts (which swap a symlinked folder), are seen.
///
/// `next` must be polled inside a Tokio runtime (reloads run on its blocking pool). It is
/// cancel-safe: a change seen by a dropped `next` future is reloaded by the next call.
pub struct FileSource {
    path: PathBuf,
    options: LoadOptions,
    debounce: Duration,
    // Kept alive for its background thread; dropping it stops the events.
    _watcher: RecommendedWatcher,
    changes: mpsc::Receiver<()>,
    started: bool,
    /// A change was seen and not yet reloaded.
    pending: bool,
    last: Option<Arc<Snapshot>>,
    errors: watch::Sender<Option<Arc<LoadError>>>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("debounce", &self.debounce)
            .field("started", &self.started)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// Starts watching `path` (a file or a folder) with the default [`LoadOptions`].
    ///
    /// Watching starts now, so a change made between this call and the first `next` is in
    /// the initial snapshot or triggers a reload; nothing is read until the first `next`.
    ///
    /// # Errors
    ///
    /// [`Error::Watch`] when `path` does not exist or cannot be watched.
    pub fn new(path: impl Into<PathBuf>) -> Result<FileSource, Error> {
        let path = path.into();
        let (tx, changes) = mpsc::channel(1);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let relevant = match event {
                Ok(event) => is_relevant(&event),
                Err(error) => {
                    // Events may have been lost (a queue overflow, a watch removed): a
                    // reload reads the truth again.
                    tracing::warn!(%error, "file watcher error; reloading");
                    true
                }
            };
            if relevant {
                // A full slot already holds a pending change; one reload covers both.
                let _ = tx.try_send(());
            }
        })
        .map_err(|source| Error::Watch {
            path: path.clone(),
            source,
        })?;
        let metadata = std::fs::metadata(&path).map_err(|e| Error::Watch {
            path: path.clone(),
            source: notify::Error::io(e),
        })?;
        let (target, mode) = if metadata.is_dir() {
            (path.clone(), RecursiveMode::Recursive)
        } else {
            (watch_folder_of(&path), RecursiveMode::NonRecursive)
        };
        watcher
            .watch(&target, mode)
            .map_err(|source| Error::Watch {
                path: target.clone(),
                source,
            })?;
        let (errors, _) = watch::channel(None);
        Ok(FileSource {
            path,
            options: LoadOptions::default(),
            debounce: DEFAULT_DEBOUNCE,
            _watcher: watcher,
            changes,
            started: false,
            pending: false,
            last: None,
            errors,
        })
    }

    /// Sets the [`LoadOptions`] (default namespace, …).
    pub fn with_load_options(mut self, options: LoadOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the quiet period after the last file-system event before a reload (default
    /// [`DEFAULT_DEBOUNCE`]).
    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// The watched file or folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The quiet period before a reload.
    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    /// The error of the last load, or `None` when the last load succeeded (or none ran yet).
    pub fn last_error(&self) -> Option<Arc<LoadError>> {
        self.errors.borrow().clone()
    }

    /// A receiver of [`FileSource::last_error`], changed after every load that fails or
    /// recovers, for a binary that shows configuration errors besides the logs.
    pub fn errors(&self) -> watch::Receiver<Option<Arc<LoadError>>> {
        self.errors.subscribe()
    }

    /// Reloads the tree on a blocking thread, and there also compares the result with the
    /// last snapshot returned (unless `changed_anyway`) and makes the copy kept for the next
    /// comparison: at thousands of objects each is worth milliseconds, which the worker that
    /// polls `next` (and serves traffic) must not spend. `None` when the runtime is shutting
    /// down.
    async fn reload(&self, changed_anyway: bool) -> Result<Option<Reloaded>, Error> {
        let path = self.path.clone();
        let options = self.options.clone();
        let last = self.last.clone();
        let reload = move || match load(&path, &options) {
            Err(error) => Reloaded::Failed(error),
            Ok(snapshot) if !changed_anyway && last.as_deref() == Some(&snapshot) => {
                Reloaded::Unchanged
            }
            Ok(snapshot) => {
                let kept = Arc::new(snapshot.clone());
                Reloaded::Changed(Box::new(snapshot), kept)
            }
        };
        match tokio::task::spawn_blocking(reload).await {
            Ok(reloaded) => Ok(Some(reloaded)),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Ok(None),
        }
    }

    /// Keeps `kept` as the snapshot last returned; the previous one is freed off the worker.
    fn keep(&mut self, kept: Arc<Snapshot>) {
        if let Some(previous) = self.last.replace(kept) {
            tokio::task::spawn_blocking(move || drop(previous));
        }
    }

    /// Waits for a change and its quiet period. `false` when the watcher has stopped.
    async fn settle(&mut self) -> bool {
        if !self.pending {
            if self.changes.recv().await.is_none() {
                return false;
            }
            self.pending = true;
        }
        loop {
            match tokio::time::timeout(self.debounce, self.changes.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return false,
                Err(_quiet) => return true,
            }
        }
    }
}

impl ConfigSource for FileSource {
    type Error = Error;

    async fn next(&mut self) -> Result<Option<Snapshot>, Error> {
        if !self.started {
            // Changes seen before the initial load are in it.
            while self.changes.try_recv().is_ok() {}
            let Some(reloaded) = self.reload(true).await? else {
                return Ok(None);
            };
            self.started = true;
            match reloaded {
                Reloaded::Changed(snapshot, kept) => {
                    tracing::info!(path = %self.path.display(), objects = snapshot.len(), "configuration loaded");
                    self.keep(kept);
                    self.errors.send_replace(None);
                    return Ok(Some(*snapshot));
                }
                // Not asked for a comparison, so not found: wait for a change.
                Reloaded::Unchanged => {}
                Reloaded::Failed(error) => {
                    self.errors.send_replace(Some(Arc::new(error.clone())));
                    return Err(Error::Load(error));
                }
            }
        }
        loop {
            if !self.settle().await {
                return Ok(None);
            }
            // After a failed load the next good one is returned even if unchanged: the
            // consumer sees the recovery.
            let recovering = self.errors.borrow().is_some();
            let Some(reloaded) = self.reload(recovering).await? else {
                return Ok(None);
            };
            self.pending = false;
            match reloaded {
                Reloaded::Unchanged => {
                    tracing::debug!(path = %self.path.display(), "files changed, configuration did not");
                }
                Reloaded::Changed(snapshot, kept) => {
                    self.errors.send_replace(None);
                    tracing::info!(path = %self.path.display(), objects = snapshot.len(), "configuration reloaded");
                    self.keep(kept);
                    return Ok(Some(*snapshot));
                }
                Reloaded::Failed(error) => {
                    tracing::error!(
                        path = %self.path.display(),
                        "configuration not reloaded, still serving the last good one:\n{error}"
                    );
                    self.errors.send_replace(Some(Arc::new(error)));
                }
            }
        }
    }
}

/// What a reload found.
enum Reloaded {
    /// A snapshot other than the last one returned, and the copy to keep of it.
    Changed(Box<Snapshot>, Arc<Snapshot>),
    /// The snapshot last returned.
    Unchanged,
    /// The tree does not load.
    Failed(LoadError),
}

/// The folder to watch for a single file: editors replace files by renaming, which a watch
/// on the file itself does not survive.
fn watch_folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Whether a file-system event is worth a reload; runs on the watcher's thread.
///
/// Hidden files count: a ConfigMap mount changes its files by swapping the hidden `..data`
/// symlink. Changes to files that are not manifests cost a reload that yields the same
/// snapshot, which is then not returned.
fn is_relevant(event: &Event) -> bool {
    if event.need_rescan() {
        return true;
    }
    let worth = || event.paths.is_empty() || event.paths.iter().any(|p| !is_editor_leftover(p));
    match event.kind {
        // Our own reads open files; only a write that completes counts.
        EventKind::Access(kind) => kind == AccessKind::Close(AccessMode::Write) && worth(),
        _ => worth(),
    }
}

/// Swap and backup files editors write next to the file being edited.
fn is_editor_leftover(path: &Path) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    let name = name.to_string_lossy();
    name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with('~')
        || name.starts_with(".#")
        // Vim probes whether it may write in a folder with a file named 4913.
        || name == "4913"
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn relevant_events() {
        assert!(is_relevant(&event(
            EventKind::Modify(ModifyKind::Any),
            "/m/a.yaml"
        )));
        assert!(is_relevant(&event(
            EventKind::Create(CreateKind::File),
            "/m/..data"
        )));
        assert!(is_relevant(&event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "/m/a.yaml"
        )));
        // Our own reads.
        assert!(!is_relevant(&event(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            "/m/a.yaml"
        )));
        assert!(!is_relevant(&event(
            EventKind::Modify(ModifyKind::Any),
            "/m/.a.yaml.swp"
        )));
        assert!(!is_relevant(&event(
            EventKind::Create(CreateKind::File),
            "/m/a.yaml~"
        )));
    }

    #[test]
    fn single_file_watches_its_folder() {
        assert_eq!(watch_folder_of(Path::new("a.yaml")), PathBuf::from("."));
        assert_eq!(watch_folder_of(Path::new("/m/a.yaml")), PathBuf::from("/m"));
    }
}
