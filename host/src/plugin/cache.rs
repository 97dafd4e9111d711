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
    /// When set, components are compiled by this command in a child process (see
    /// `RuntimeConfig::compile_command`).
    command: Option<Vec<std::ffi::OsString>>,
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
    pub(crate) fn new(
        engine: Engine,
        cache_dir: Option<PathBuf>,
        command: Option<Vec<std::ffi::OsString>>,
    ) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hex::encode(&hasher.0.finalize()[..8]);
        Compiler {
            engine,
            cache_dir,
            command,
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
        // Operators sharing a cache (replicas on one volume, the two of the demo, tests)
        // would each compile the same component at once, which takes tens of seconds for a
        // large policy: the first compiles, the others wait and then load its artifact.
        let _lock = artifact.as_deref().and_then(|a| lock_artifact(file, a));
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
        if let Some(command) = &self.command {
            match self.compile_in_child(command, file, artifact.as_deref()) {
                Ok(component) => {
                    self.compilations.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(file = %file.display(), elapsed_ms = started.elapsed().as_millis() as u64, "compiled policy in a child process");
                    return Ok((component, false));
                }
                // The child's own failure (a bad component) is reported the same way by
                // compiling here, with the compiler's message; so is a missing program.
                Err(reason) => {
                    tracing::warn!(file = %file.display(), %reason, "compiling in a child process failed; compiling in process")
                }
            }
        }
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

impl Compiler {
    /// Runs `command <file> <tmp>` and loads what it wrote. Cranelift's working memory
    /// (tens of MiB for a large policy) then lives and dies with the child, instead of
    /// staying in this process's heap, which the allocator keeps after the compilation.
    fn compile_in_child(
        &self,
        command: &[std::ffi::OsString],
        file: &Path,
        artifact: Option<&Path>,
    ) -> Result<Component, String> {
        let (program, args) = command.split_first().ok_or("empty compile command")?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp_dir = artifact
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&tmp_dir).map_err(|e| e.to_string())?;
        let tmp = tmp_dir.join(format!(
            ".compile.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let output = std::process::Command::new(program)
            .args(args)
            .arg(file)
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.to_string_lossy()))?;
        let result = if output.status.success() {
            // SAFETY: as in `compile`: the file was just written by this executable's own
            // `plugin compile` for an engine of the same configuration, into a directory
            // only the operator writes; wasmtime refuses an artifact of another engine
            // configuration with an error (then we compile in process).
            unsafe { Component::deserialize_file(&self.engine, &tmp) }
                .map_err(|e| format!("loading the child's artifact: {e:#}"))
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(format!(
                "{}: {}",
                output.status,
                stderr.lines().last().unwrap_or_default()
            ))
        };
        // The mapping survives both the rename and the unlink.
        match (&result, artifact) {
            (Ok(_), Some(artifact)) => {
                if let Err(error) = std::fs::rename(&tmp, artifact) {
                    tracing::warn!(artifact = %artifact.display(), %error, "cannot cache precompiled policy");
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            _ => {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        result
    }
}

/// An exclusive lock on `<artifact>.lock`, held until dropped; None (compile unlocked)
/// when the lock file cannot be made, which only costs a duplicate compilation.
fn lock_artifact(file: &Path, artifact: &Path) -> Option<std::fs::File> {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let opened = artifact
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        });
    match opened.and_then(|f| f.lock().map(|()| f)) {
        Ok(f) => Some(f),
        Err(error) => {
            tracing::warn!(file = %file.display(), lock = %lock_path.display(), %error, "cannot lock the policy cache; compiling without it");
            None
        }
    }
}

/// Compiles `input` for an engine of `engine`'s configuration and writes the artifact to
/// `output` (the child side of `RuntimeConfig::compile_command`).
pub(crate) fn precompile_file(
    engine: &Engine,
    input: &Path,
    output: &Path,
) -> Result<(), PluginError> {
    let bytes = std::fs::read(input).map_err(|source| PluginError::Io {
        file: input.to_path_buf(),
        source,
    })?;
    let component = Component::new(engine, &bytes).map_err(|error| PluginError::Compile {
        file: input.to_path_buf(),
        reason: format!("{error:#}"),
    })?;
    let bytes = component
        .serialize()
        .map_err(|error| PluginError::Compile {
            file: input.to_path_buf(),
            reason: format!("{error:#}"),
        })?;
    std::fs::write(output, bytes).map_err(|source| PluginError::Io {
        file: output.to_path_buf(),
        source,
    })
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
