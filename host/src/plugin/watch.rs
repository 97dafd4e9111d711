//! Hot reload: watches the policy directory and re-syncs it after changes settle.

use std::path::PathBuf;

use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use super::PolicyRuntime;

/// Runs until the task is aborted (or the watcher's channel closes).
pub(crate) async fn run(runtime: PolicyRuntime, dir: PathBuf) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.as_ref().is_ok_and(|e| !changes_content(&e.kind)) {
            return;
        }
        // The receiver is gone only when the task ended; nothing to do then.
        let _ = tx.send(event);
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::error!(dir = %dir.display(), %error, "cannot watch the policy directory; hot reload is off");
            return;
        }
    };
    if let Err(error) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::error!(dir = %dir.display(), %error, "cannot watch the policy directory; hot reload is off");
        return;
    }
    tracing::info!(dir = %dir.display(), "watching policy directory");
    let debounce = runtime.config().reload_debounce;
    // Catch up with whatever changed between the initial load and the watch starting.
    sync(&runtime, &dir).await;
    while let Some(first) = rx.recv().await {
        if let Err(error) = first {
            tracing::warn!(dir = %dir.display(), %error, "policy directory watch error");
        }
        // Wait for a quiet period: a copy produces many write events, and reading the file
        // half-written would only produce a compile error and a second reload.
        loop {
            match tokio::time::timeout(debounce, rx.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(_quiet) => break,
            }
        }
        // Any event re-syncs the whole directory rather than the paths it names: renames,
        // atomic replaces and ConfigMap symlink swaps all end up right that way, and an
        // unchanged file costs one read and hash.
        sync(&runtime, &dir).await;
    }
}

/// Whether an event can mean a policy file changed. Opening and reading a file are events
/// too (inotify's watch includes OPEN): the sync's own reads must not start the next sync,
/// or the directory is re-read and re-hashed forever.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

async fn sync(runtime: &PolicyRuntime, dir: &std::path::Path) {
    for report in runtime.load_dir(dir).await {
        if let Err(error) = report.result {
            let kept = runtime
                .policies()
                .into_iter()
                .find(|p| p.path == report.path);
            match kept {
                Some(kept) => {
                    tracing::error!(file = %report.path.display(), policy = %kept.info.name, %error, "new version refused; the previous version keeps serving")
                }
                None => tracing::error!(file = %report.path.display(), %error, "policy refused"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};

    use super::*;

    #[test]
    fn reading_a_policy_is_not_a_change_and_writing_one_is() {
        for quiet in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!changes_content(&quiet), "{quiet:?}");
        }
        for change in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Any,
        ] {
            assert!(changes_content(&change), "{change:?}");
        }
    }
}
