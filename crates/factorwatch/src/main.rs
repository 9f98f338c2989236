//! The `factorwatch` command line (see [`factorwatch::commands`]).

// mimalloc: glibc's malloc returns each Okta page's megabyte-sized buffers to the kernel and
// faults them back in for the next page; that, and its lock traffic between the poller and the
// store's threads, was a tenth of the CPU spent per event.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    factorwatch::commands::main()
}
