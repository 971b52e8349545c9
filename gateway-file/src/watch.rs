//! [`FileSource`]: a [`ConfigSource`] that reloads a file or folder when it changes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gateway_core::model::Snapshot;
use gateway_core::source::ConfigSource;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, LoadError};
use crate::load::{LoadOptions, ParseCache, is_manifest_file, load_cached};

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
    /// What each file held when last parsed: a reload parses only the files that changed.
    cache: Arc<Mutex<ParseCache>>,
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
        // Watching one file means watching its folder: only events about that file count.
        let single_file = std::fs::metadata(&path)
            .is_ok_and(|m| !m.is_dir())
            .then(|| path.file_name().map(ToOwned::to_owned))
            .flatten();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let relevant = match event {
                Ok(event) => is_relevant(&event, single_file.as_deref()),
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
            cache: Arc::default(),
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
        let cache = self.cache.clone();
        let reload = move || {
            // Reloads run one at a time (`next` awaits each); the lock is never contended.
            let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            let loaded = load_cached(&path, &options, &mut cache);
            drop(cache);
            loaded
        };
        let reload = move || match reload() {
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

/// Whether a file-system event is worth a reload; runs on the watcher's thread. `file` is the
/// name of the one file watched, `None` when a folder is.
fn is_relevant(event: &Event, file: Option<&OsStr>) -> bool {
    if event.need_rescan() {
        return true;
    }
    let worth = || event.paths.is_empty() || event.paths.iter().any(|p| can_matter(p, file));
    match event.kind {
        // Our own reads open files; only a write that completes counts.
        EventKind::Access(kind) => kind == AccessKind::Close(AccessMode::Write) && worth(),
        _ => worth(),
    }
}

/// Whether a change to `path` can change what loads: a manifest (by its extension; when one
/// file is watched, that file), a name starting with `..` (a ConfigMap mount changes its files
/// by swapping the hidden `..data` symlink), or a folder (one created or removed may hold
/// manifests). Other neighbours do not count: a log file written next to the manifests would
/// otherwise keep the debounce from ever settling, and no reload would happen while it grows.
fn can_matter(path: &Path, file: Option<&OsStr>) -> bool {
    if is_editor_leftover(path) {
        return false;
    }
    let name = path.file_name();
    if name.is_some_and(|n| n.to_string_lossy().starts_with("..")) {
        return true;
    }
    match file {
        Some(target) => name == Some(target),
        // A path without an extension may be a folder that is gone already.
        None => is_manifest_file(path) || path.extension().is_none() || path.is_dir(),
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
    fn a_busy_neighbour_of_the_manifests_is_not_a_change() {
        let write = EventKind::Modify(ModifyKind::Any);
        assert!(!is_relevant(&event(write, "/m/gateway.log"), None));
        assert!(!is_relevant(&event(write, "/m/notes.md"), None));
        // A rename into place from a hidden temporary file counts by its new name.
        let rename = Event::new(EventKind::Modify(ModifyKind::Any))
            .add_path(PathBuf::from("/m/.route.tmp"))
            .add_path(PathBuf::from("/m/route.yaml"));
        assert!(is_relevant(&rename, None));
        // A folder, present or gone.
        assert!(is_relevant(
            &event(
                EventKind::Remove(notify::event::RemoveKind::Any),
                "/m/team-a"
            ),
            None
        ));
        // One file watched: only it, and the ConfigMap swap, count.
        let name = OsStr::new("gateway.conf");
        assert!(is_relevant(&event(write, "/m/gateway.conf"), Some(name)));
        assert!(is_relevant(
            &event(EventKind::Create(CreateKind::File), "/m/..data"),
            Some(name)
        ));
        assert!(!is_relevant(&event(write, "/m/other.yaml"), Some(name)));
    }

    #[test]
    fn relevant_events() {
        assert!(is_relevant(
            &event(EventKind::Modify(ModifyKind::Any), "/m/a.yaml"),
            None,
        ));
        assert!(is_relevant(
            &event(EventKind::Create(CreateKind::File), "/m/..data"),
            None,
        ));
        assert!(is_relevant(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/m/a.yaml"
            ),
            None,
        ));
        // Our own reads.
        assert!(!is_relevant(
            &event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                "/m/a.yaml"
            ),
            None,
        ));
        assert!(!is_relevant(
            &event(EventKind::Modify(ModifyKind::Any), "/m/.a.yaml.swp"),
            None,
        ));
        assert!(!is_relevant(
            &event(EventKind::Create(CreateKind::File), "/m/a.yaml~"),
            None,
        ));
    }

    #[test]
    fn single_file_watches_its_folder() {
        assert_eq!(watch_folder_of(Path::new("a.yaml")), PathBuf::from("."));
        assert_eq!(watch_folder_of(Path::new("/m/a.yaml")), PathBuf::from("/m"));
    }
}
