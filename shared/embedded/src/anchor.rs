//! Anchors to a local folder: `<root>/<prefix>/<tenant>/<key>`, each object written to a temporary file,
//! fsynced and renamed into place, so a reader never sees a torn file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ledgix_core::ports::{AnchorError, AnchorSink, Exported};

pub struct FolderAnchor {
    root: PathBuf,
    prefix: String,
}

impl FolderAnchor {
    pub fn new(root: impl Into<PathBuf>, prefix: &str) -> Self {
        FolderAnchor {
            root: root.into(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// Folder holding one tenant's exported log.
    pub fn tenant_dir(&self, tenant_id: &str) -> PathBuf {
        let mut dir = self.root.clone();
        if !self.prefix.is_empty() {
            dir.push(&self.prefix);
        }
        dir.push(tenant_id);
        dir
    }
}

fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[async_trait]
impl AnchorSink for FolderAnchor {
    fn target(&self) -> &str {
        "file"
    }

    fn uri(&self, tenant_id: &str, key: &str) -> String {
        let path = self.tenant_dir(tenant_id).join(key);
        let absolute = std::path::absolute(&path).unwrap_or(path);
        format!("file://{}", absolute.display())
    }

    async fn put(
        &self,
        tenant_id: &str,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<Exported, AnchorError> {
        if key.split('/').any(|part| part.is_empty() || part == "..")
            || tenant_id.contains(['/', '.'])
        {
            return Err(AnchorError::Misconfigured(format!(
                "refusing unsafe anchor key {key:?}"
            )));
        }
        let path = self.tenant_dir(tenant_id).join(key);
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&write_path, &body))
            .await
            .map_err(|e| AnchorError::Unavailable(e.to_string()))?
            .map_err(|e| AnchorError::Unavailable(format!("{}: {e}", path.display())))?;
        Ok(Exported {
            uri: self.uri(tenant_id, key),
            version_id: None,
        })
    }
}
