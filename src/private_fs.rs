//! Files only the service user may read: the queue holds every event, the
//! data dir holds the token and the TLS key. Directories Sluice creates are
//! 0700 and files 0600, whatever the umask it was started with.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every directory Sluice creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file Sluice creates.
pub const FILE_MODE: u32 = 0o600;

/// Makes later file creations private (libraries such as sled create files
/// with the process umask). Called once at start by the binary.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
}

/// Creates `path` and missing parents with mode 0700; an existing directory
/// is left as the operator made it.
pub fn create_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    // The mode given to mkdir is masked by the umask: set it outright.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Options that create a file with mode 0600.
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Creates (or truncates) a 0600 file.
pub fn create(path: &Path) -> io::Result<File> {
    let f = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Writes `contents` to a 0600 file.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    create(path)?.write_all(contents.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn created_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, DIR_MODE);
        let f = d.join("f");
        write(&f, "x").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, FILE_MODE);
    }
}
