//! `checksum`: SHA-256 of files, and an expand step that turns a folder and a glob into one
//! `checksum/sha256` work item per matching file. I/O-bound.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use taskhost_plugin_api::{export_plugin, Plugin, TaskContext, TaskError, WorkItem};

/// Bytes read per step; cancellation is checked between steps.
const CHUNK: usize = 256 * 1024;

/// Input of `sha256`.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileInput {
    /// The file to hash.
    pub path: PathBuf,
}

/// Output of `sha256`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FileDigest {
    /// The file, as given.
    pub path: PathBuf,
    /// The SHA-256 digest, lowercase hex.
    pub sha256: String,
    /// The file's length in bytes.
    pub bytes: u64,
}

/// Parameters of the expand step.
#[derive(Debug, Deserialize)]
pub struct ExpandParams {
    /// The folder to search.
    pub root: PathBuf,
    /// A glob relative to `root`, such as `**/*.rs` (default: every file under `root`).
    #[serde(default = "every_file")]
    pub glob: String,
}

fn every_file() -> String {
    "**/*".to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256`: hashes a file, checking for cancellation between chunks.
pub fn sha256(input: FileInput, ctx: &TaskContext<'_>) -> Result<FileDigest, TaskError> {
    let open_error =
        |e: std::io::Error| TaskError::failed(format!("{}: {e}", input.path.display()));
    let mut file = File::open(&input.path).map_err(open_error)?;
    let total = file.metadata().map(|m| m.len()).ok();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; CHUNK];
    let mut bytes = 0u64;
    loop {
        ctx.check_cancelled()?;
        let read = file.read(&mut buffer).map_err(open_error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
        ctx.progress(bytes, total);
    }
    Ok(FileDigest {
        path: input.path,
        sha256: hex(&hasher.finalize()),
        bytes,
    })
}

/// The files under `root` that match `glob`, found as they are asked for, in glob's order
/// (alphabetical, folder by folder): the whole list is never held.
fn matching_files(
    root: &Path,
    pattern: &str,
) -> Result<impl Iterator<Item = Result<PathBuf, TaskError>> + Send + 'static, TaskError> {
    if !root.is_dir() {
        return Err(TaskError::invalid_input(format!(
            "root {} is not a folder",
            root.display()
        )));
    }
    let full = root.join(pattern);
    let full = full
        .to_str()
        .ok_or_else(|| TaskError::invalid_input("root and glob must be UTF-8"))?;
    let paths =
        glob::glob(full).map_err(|e| TaskError::invalid_input(format!("glob `{pattern}`: {e}")))?;
    Ok(paths.filter_map(|path| match path {
        Ok(path) => path.is_file().then_some(Ok(path)),
        Err(error) => Some(Err(TaskError::failed(error.to_string()))),
    }))
}

/// The expand step, job `sha256`: one `checksum/sha256` work item per file under `root`
/// matching `glob`, made as the host asks for them.
pub fn expand(
    _job: &str,
    params: ExpandParams,
    ctx: &TaskContext<'_>,
) -> Result<impl Iterator<Item = Result<WorkItem, TaskError>> + Send + 'static, TaskError> {
    ctx.debug(format!(
        "expanding the files under {} that match {}",
        params.root.display(),
        params.glob
    ));
    let files = matching_files(&params.root, &params.glob)?;
    Ok(files.map(|path| {
        let input = serde_json::to_value(FileInput { path: path? })
            .map_err(|e| TaskError::failed(e.to_string()))?;
        Ok(WorkItem {
            id: None,
            task: "checksum/sha256".to_owned(),
            input,
        })
    }))
}

/// The plugin, as the host sees it.
pub fn plugin() -> Plugin {
    Plugin::new("checksum", env!("CARGO_PKG_VERSION"))
        .task("sha256", "SHA-256 of the file at `path`", sha256)
        // `taskhost run checksum/sha256 a.txt b.txt`: each argument is a `path`.
        .task_argument("sha256", "path")
        .expand_iter(expand)
        // `--expand checksum/sha256`: one `checksum/sha256` item per file.
        .expand_jobs(["sha256"])
}

export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use taskhost_plugin_api::FailureKind;

    #[test]
    fn sha256_of_a_known_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.txt");
        std::fs::write(&path, "abc").unwrap();
        let input = serde_json::to_vec(&FileInput { path: path.clone() }).unwrap();
        let output = plugin().run_detached("sha256", &input).unwrap();
        let output: serde_json::Value = serde_json::from_slice(&output).unwrap();
        assert_eq!(
            output["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(output["bytes"], 3);
        assert_eq!(output["path"], path.to_str().unwrap());
    }

    #[test]
    fn missing_file_fails_with_its_path() {
        let error = plugin()
            .run_detached("sha256", br#"{"path": "/no/such/file"}"#)
            .unwrap_err();
        assert_eq!(error.kind(), FailureKind::Failed);
        assert!(error.message().starts_with("/no/such/file: "), "{error}");
    }

    #[test]
    fn expand_lists_matching_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["b.txt", "a.txt", "c.md", "sub/d.txt"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let params = serde_json::json!({"root": dir.path(), "glob": "**/*.txt"});
        let items = plugin().expand_detached("sha256", &serde_json::to_vec(&params).unwrap());
        let items: Vec<WorkItem> = serde_json::from_slice(&items.unwrap()).unwrap();
        let paths: Vec<_> = items
            .iter()
            .map(|item| {
                assert_eq!(item.task, "checksum/sha256");
                item.input["path"].as_str().unwrap().to_owned()
            })
            .collect();
        let expected: Vec<_> = ["a.txt", "b.txt", "sub/d.txt"]
            .iter()
            .map(|name| dir.path().join(name).to_str().unwrap().to_owned())
            .collect();
        assert_eq!(paths, expected);
    }
}
