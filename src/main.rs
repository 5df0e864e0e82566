//! `ferry`: parse the command line, run one command, map the result to an
//! exit code (design §3). Everything else lives in the library.

fn main() -> std::process::ExitCode {
    ferry::cli::main()
}
