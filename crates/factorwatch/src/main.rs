//! The `factorwatch` command line (see [`factorwatch::commands`]).

// jemalloc, not glibc's malloc: glibc gives each busy thread its own arena and keeps what they
// freed, so 2,000 orgs catching up peaked at 193 MiB against 128 MiB here, and the same-filter
// run spends a tenth less CPU (ad hoc A/B, issue 17's note of 2026-12-03).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // jemalloc gives freed pages back to the system (10 s after they were freed) only when a
    // thread next allocates in the same arena; a daemon whose orgs are idle barely allocates, so
    // what its start-up freed stayed resident. A background thread purges on time instead
    // (2,000 idle orgs: see issue 17's note of 2026-12-04). Without it, the same as before.
    #[cfg(not(target_env = "msvc"))]
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    factorwatch::commands::main()
}
