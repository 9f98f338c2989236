//! The `factorwatch` command line (see [`factorwatch::commands`]).

fn main() -> std::process::ExitCode {
    factorwatch::commands::main()
}
