//! The `glassbox` binary: see [`glassbox::cli`].

fn main() -> std::process::ExitCode {
    glassbox::cli::main()
}
