//! Free space on the queue's filesystem.

use std::path::Path;

/// Bytes available to an unprivileged writer on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_free_space() {
        let free = super::free_bytes(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(free > 0);
    }
}
