//! The `atelier` binary: parses the command line and hands over to `atelier_cli`.

fn main() -> std::process::ExitCode {
    atelier_cli::main()
}
