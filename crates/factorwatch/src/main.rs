//! The `factorwatch` command line (see [`factorwatch::commands`]).

// jemalloc, not glibc's malloc: glibc gives each busy thread its own arena and keeps what they
// freed, so 2,000 orgs catching up peaked at 193 MiB against 128 MiB here, and the same-filter
// run spends a tenth less CPU (ad hoc A/B, issue 17's note of 2026-12-03).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    factorwatch::commands::main()
}
