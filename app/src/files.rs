//! mcpd's files on disk are its owner's alone: the data directory 0700 (whichever the store:
//! it holds the admin's token on PostgreSQL too), the SQLite database and its `-wal` / `-shm`
//! files 0600 (they hold the plaintext backend's values and token hashes), the admin's token
//! file 0600, from the moment they are created. Files found readable by others are made
//! private at start, with a warning naming them.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Creates `dir` (and its missing parents) with mode 0700, or makes an existing one 0700.
pub fn private_directory(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    make_private(dir, 0o700)
}

/// Creates the SQLite database `db` empty with mode 0600 if it does not exist (SQLite then
/// gives its `-wal` and `-shm` files the same mode), and makes existing ones 0600.
pub fn private_database_files(db: &Path) -> anyhow::Result<()> {
    if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
        return Ok(());
    }
    if !db.exists() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(db)
            .with_context(|| format!("creating the database file {}", db.display()))?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let path = Path::new(&path);
        if path.exists() {
            make_private(path, 0o600)?;
        }
    }
    Ok(())
}

/// Makes the file `path` 0600 if it exists and anyone else may read it.
pub fn private_file(path: &Path) -> anyhow::Result<()> {
    if path.exists() { make_private(path, 0o600) } else { Ok(()) }
}

/// Sets `path` to `mode` if anyone but its owner may use it, saying so.
fn make_private(path: &Path, mode: u32) -> anyhow::Result<()> {
    let current = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
    if current & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode)).with_context(|| {
        format!(
            "{} is readable by other users (mode {:o}) and could not be made private",
            path.display(),
            current & 0o777
        )
    })?;
    tracing::warn!(path = %path.display(), was = format!("{:o}", current & 0o777), now = format!("{mode:o}"), "made a file readable by other users private");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_end_up_private() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data/nested");
        private_directory(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("mcpd.db");
        private_database_files(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let wal = dir.join("mcpd.db-wal");
        std::fs::write(&wal, b"x").unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        private_directory(&dir).unwrap();
        private_database_files(&db).unwrap();
        assert_eq!((mode(&dir), mode(&wal)), (0o700, 0o600));
    }
}
