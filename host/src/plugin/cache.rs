//! Compiling components, and the on-disk cache of precompiled artifacts.
//!
//! Compiling a policy takes tens to hundreds of milliseconds; loading a precompiled artifact
//! takes well under one. Artifacts are keyed by the component's content hash and by the
//! engine's compatibility hash (wasmtime version, target, compiler settings), so an upgraded
//! host never loads an artifact it did not produce for its own configuration.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

pub(crate) struct Compiler {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    compat: String,
    compilations: AtomicU64,
    cache_hits: AtomicU64,
}

/// Feeds `Hash` output into SHA-256, so the engine's compatibility hash becomes a stable
/// file-name component (std's `DefaultHasher` is not guaranteed stable across releases).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        // Unused: the digest is read with `finalize`.
        0
    }
}

/// Hex SHA-256 of a component's bytes.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Compiler {
    pub(crate) fn new(engine: Engine, cache_dir: Option<PathBuf>) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hex::encode(&hasher.0.finalize()[..8]);
        Compiler {
            engine,
            cache_dir,
            compat,
            compilations: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    pub(crate) fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    pub(crate) fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Where the artifact of a component with this content hash lives, if caching is on.
    pub(crate) fn artifact_path(&self, hash: &str) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{hash}-{}.cwasm", self.compat)))
    }

    /// Returns the compiled component and whether it came from the cache. Blocking:
    /// compiling is CPU-bound, so callers run this off the async workers.
    pub(crate) fn compile(
        &self,
        file: &Path,
        bytes: &[u8],
        hash: &str,
    ) -> Result<(Component, bool), PluginError> {
        let artifact = self.artifact_path(hash);
        if let Some(artifact) = artifact.as_deref().filter(|a| a.is_file()) {
            // SAFETY: `deserialize_file` maps the artifact and runs its machine code without
            // validating it, so it must be a file wasmtime produced. It is: artifacts are only
            // written by `store_artifact` below, into the operator's own cache directory
            // (which must not be writable by anyone else), under a name that binds the
            // source's SHA-256 and this engine's compatibility hash; wasmtime additionally
            // checks the artifact's header against the engine's configuration and refuses a
            // mismatch with an error, which falls back to compiling. The file stays mapped
            // while the component lives, so artifacts are never rewritten in place: they are
            // replaced by rename (a new inode) or unlinked, which leaves live mappings intact.
            match unsafe { Component::deserialize_file(&self.engine, artifact) } {
                Ok(component) => {
                    self.cache_hits.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(file = %file.display(), artifact = %artifact.display(), "loaded precompiled policy");
                    return Ok((component, true));
                }
                Err(error) => {
                    tracing::warn!(file = %file.display(), artifact = %artifact.display(), error = %format!("{error:#}"), "discarding unusable precompiled artifact");
                    let _ = std::fs::remove_file(artifact);
                }
            }
        }
        let started = std::time::Instant::now();
        let component =
            Component::new(&self.engine, bytes).map_err(|error| PluginError::Compile {
                file: file.to_path_buf(),
                reason: format!("{error:#}"),
            })?;
        self.compilations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(file = %file.display(), elapsed_ms = started.elapsed().as_millis() as u64, "compiled policy");
        if let Some(artifact) = artifact {
            // A failed cache write only costs a recompilation next time.
            if let Err(error) = store_artifact(&component, &artifact) {
                tracing::warn!(file = %file.display(), artifact = %artifact.display(), %error, "cannot cache precompiled policy");
            }
        }
        Ok((component, false))
    }
}

/// Writes the artifact through a temporary file and a rename, so a concurrent reader (or a
/// crash) never sees a half-written artifact.
fn store_artifact(component: &Component, artifact: &Path) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    let dir = artifact
        .parent()
        .ok_or_else(|| "artifact path has no directory".to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // Unique per process and write: two loads of one component may race to cache it.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        artifact
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, artifact).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.to_string()
    })
}
