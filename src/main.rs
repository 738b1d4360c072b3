/// mimalloc instead of glibc's allocator: with thousands of long-lived sockets, glibc kept the
/// memory of every burst of connects resident (fragmentation), while mimalloc returns freed
/// pages to the system and only makes resident the pages of a buffer that are written. Built
/// without transparent huge pages (feature `no_thp`), which would make whole 2 MiB regions
/// resident. BENCHMARKS.md, "Memory per idle socket", has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (libmimalloc-sys exports no name for
/// it in mimalloc 3); the test below checks the ordinal against the option's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> anyhow::Result<()> {
    // Return freed pages at once. By default mimalloc purges them 10 s later and only when the
    // thread allocates again, so an idle server kept the peak of a reconnect storm resident.
    // SAFETY: sets a plain integer option; mimalloc reads it with atomics.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    dcports::cli::run()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_ordinal_names_the_purge_delay() {
        // mimalloc documents the purge delay's default as 1000 ms; no option before it has it.
        // SAFETY: reads a plain integer option.
        let default = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(default, 1000);
        }
    }
}
