//! Keeps glibc from holding freed buffers: with its default dynamic mmap
//! threshold and one arena per thread, RSS under sustained 10k-line batches
//! grew past 300 MB; with these two settings it stays near 200 MB
//! (benches/README.md). The binary and the benchmarks that report RSS call
//! it, so what they measure is what runs.

/// Fixes glibc's mmap threshold (128 KiB) and arena count (2). Call before
/// any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    // SAFETY: mallopt only changes allocator parameters; callers run it
    // while the process is single-threaded.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Other allocators need nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
