//! File storage for document versions, behind a small trait so that an S3-compatible store can
//! replace the local one.
//!
//! Uploads are streamed to a staging file while they are hashed; the staging file becomes the
//! content-addressed blob (`blobs/ab/cdef…`) only after the database transaction that references
//! it has committed. Identical content is stored once. A crash can leave staging files behind;
//! [`LocalStorage::sweep`] finishes the promotions whose transaction did commit and deletes the rest.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Bytes kept from the start of an upload to sniff its type.
pub const SNIFF_BYTES: usize = 16 * 1024;

/// Where document content lives.
pub trait BlobStore {
    /// Starts a staged upload.
    fn stage(&self) -> impl Future<Output = anyhow::Result<StagedUpload>>;
    /// Makes staged content the blob for its hash (after the referencing commit).
    fn promote(&self, staged: StagedFile) -> impl Future<Output = anyhow::Result<()>>;
    /// Drops staged content that will not be committed.
    fn discard(&self, staged: StagedFile) -> impl Future<Output = ()>;
    /// The local path of a blob, for serving it.
    fn blob_path(&self, sha256: &str) -> PathBuf;
}

/// An upload being written: hashes and counts as it goes, and keeps the first bytes to sniff.
pub struct StagedUpload {
    file: tokio::fs::File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
}

/// A finished staged upload.
#[derive(Debug)]
pub struct StagedFile {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub head: Vec<u8>,
}

impl StagedUpload {
    pub async fn write(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file
            .write_all(chunk)
            .await
            .context("Failed to write the staged upload")
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn finish(mut self) -> anyhow::Result<StagedFile> {
        self.file.flush().await?;
        self.file.sync_data().await?;
        Ok(StagedFile {
            path: self.path,
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
            head: self.head,
        })
    }

    /// Abandons the upload (too large, rejected type, client gone).
    pub async fn abandon(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

#[derive(Clone, Debug)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: &Path) -> anyhow::Result<Self> {
        for dir in [root.join("staging"), root.join("blobs")] {
            std::fs::create_dir_all(&dir).with_context(|| format!("Failed to create {}", dir.display()))?;
        }
        Ok(Self { root: root.to_owned() })
    }

    fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// Deletes staging files older than `grace`, after promoting those whose content a committed
    /// version references (`is_referenced(sha256)`): their commit happened, their rename did not.
    pub async fn sweep<F, Fut>(&self, grace: Duration, is_referenced: F) -> anyhow::Result<usize>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = anyhow::Result<bool>>,
    {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(self.staging_dir()).await?;
        while let Some(entry) = entries.next_entry().await? {
            let metadata = entry.metadata().await?;
            let age = metadata
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or_default();
            if age < grace {
                continue;
            }
            let path = entry.path();
            let sha256 = hash_file(&path).await?;
            if is_referenced(sha256.clone()).await? && !self.blob_path(&sha256).exists() {
                let size = metadata.len();
                let staged = StagedFile {
                    path,
                    sha256,
                    size,
                    head: Vec::new(),
                };
                // One file that cannot be placed does not keep the others waiting.
                if let Err(error) = self.promote(staged).await {
                    tracing::error!(error = %error, "a committed upload could not be moved into place; trying again next sweep");
                }
            } else {
                tokio::fs::remove_file(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl BlobStore for LocalStorage {
    async fn stage(&self) -> anyhow::Result<StagedUpload> {
        let path = self
            .staging_dir()
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::File::create(&path)
            .await
            .context("Failed to create a staging file")?;
        Ok(StagedUpload {
            file,
            path,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
        })
    }

    async fn promote(&self, staged: StagedFile) -> anyhow::Result<()> {
        let target = self.blob_path(&staged.sha256);
        if target.exists() {
            // Identical content is already stored.
            tokio::fs::remove_file(&staged.path).await?;
            return Ok(());
        }
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&staged.path, &target)
            .await
            .context("Failed to promote a staged upload")
    }

    async fn discard(&self, staged: StagedFile) {
        let _ = tokio::fs::remove_file(&staged.path).await;
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        let (prefix, rest) = sha256.split_at(2.min(sha256.len()));
        self.root.join("blobs").join(prefix).join(rest)
    }
}

async fn hash_file(path: &Path) -> anyhow::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await?
}
