//! Keeps the resident size of a long-running vault flat. Under sustained load its live heap stays at about 5 MB,
//! yet with glibc's defaults its RSS grew by about half a MiB a minute (docs/benchmarks.md, "RSS held flat"):
//! each of up to 16 arenas (8 per core) keeps what its threads freed, and returns only the top of its heap.
//! Four arenas, and `malloc_trim(0)` every few seconds (it returns each free page of every arena with
//! `madvise`), hold it flat at the same throughput; one or two arenas cost a fifth or a tenth of it.

use std::time::Duration;

/// `LEDGIX_DEV_MALLOC_TRIM_SECONDS`: seconds between trims; 0 turns trimming off.
pub const INTERVAL_VARIABLE: &str = "LEDGIX_DEV_MALLOC_TRIM_SECONDS";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The trim interval from the environment: `None` when turned off, an error for a value that is not a number.
pub fn interval_from_env() -> Result<Option<Duration>, String> {
    match std::env::var(INTERVAL_VARIABLE) {
        Err(_) => Ok(Some(DEFAULT_INTERVAL)),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(0) => Ok(None),
            Ok(seconds) => Ok(Some(Duration::from_secs(seconds))),
            Err(_) => Err(format!(
                "{INTERVAL_VARIABLE} must be a whole number of seconds (0 turns trimming off), got {text:?}"
            )),
        },
    }
}

/// glibc's arena count, unless the environment sets one (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`).
pub const ARENAS: i32 = 4;

/// Whether to cap the arenas, given the environment: not when the operator chose a count.
fn arena_cap_wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    var("MALLOC_ARENA_MAX").is_none()
        && !var("GLIBC_TUNABLES")
            .is_some_and(|tunables| tunables.contains("glibc.malloc.arena_max"))
}

/// Cap glibc's arenas at [`ARENAS`]. Call before any other thread starts: glibc fixes its limit when it makes
/// its first extra arena. Returns whether the cap was set.
pub fn cap_arenas() -> bool {
    arena_cap_wanted(|name| std::env::var(name).ok()) && set_arena_max(ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: i32) -> bool {
    // SAFETY: mallopt takes no pointers; M_ARENA_MAX only sets the limit glibc reads when it makes an arena.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> bool {
    false
}

/// Trim every `interval` on a thread of its own, so no async worker waits while it walks the arenas (it locks
/// one at a time; with four arenas and about 5 MB live, a walk is short).
pub fn start_trimmer(interval: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            release_free_pages();
        })
        .map(|_| ())
}

/// Returns whether the allocator gave any memory back. Elsewhere than glibc it does nothing: musl's and the
/// other allocators return memory on their own, or have no such call.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_pages() -> bool {
    // SAFETY: malloc_trim takes no pointers and glibc serialises it with every other allocator call.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_pages() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Freed memory below a live allocation stays resident until trimmed; the trim hands it back.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_returns_pages_freed_below_a_live_allocation() {
        // Many small blocks (below the mmap threshold, so they come from the heap), then one kept on top.
        let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 4000]).collect();
        let kept_on_top = vec![1u8; 4000];
        drop(blocks);
        assert!(release_free_pages(), "16 MB were free below a live block");
        assert_eq!(kept_on_top[0], 1);
    }

    #[test]
    fn the_arena_cap_yields_to_the_operators_choice() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(arena_cap_wanted(env(&[])));
        assert!(arena_cap_wanted(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.tcache_count=0"
        )])));
        assert!(!arena_cap_wanted(env(&[("MALLOC_ARENA_MAX", "4")])));
        assert!(!arena_cap_wanted(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.arena_max=8"
        )])));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_arena_cap() {
        assert!(set_arena_max(ARENAS));
    }

    #[test]
    fn the_interval_reads_seconds_and_zero_turns_it_off() {
        // One test owns the variable: tests in this binary run in parallel.
        std::env::remove_var(INTERVAL_VARIABLE);
        assert_eq!(interval_from_env(), Ok(Some(DEFAULT_INTERVAL)));
        std::env::set_var(INTERVAL_VARIABLE, "30");
        assert_eq!(interval_from_env(), Ok(Some(Duration::from_secs(30))));
        std::env::set_var(INTERVAL_VARIABLE, "0");
        assert_eq!(interval_from_env(), Ok(None));
        std::env::set_var(INTERVAL_VARIABLE, "soon");
        assert!(interval_from_env().is_err());
        std::env::remove_var(INTERVAL_VARIABLE);
    }
}
