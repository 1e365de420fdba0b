//! The real `glassbox` command line, built inside this package so that integration tests can
//! run it as a separate process (and SIGKILL it).

fn main() -> std::process::ExitCode {
    glassbox::cli::main()
}
