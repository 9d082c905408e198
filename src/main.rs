fn main() -> std::process::ExitCode {
    topsail::cli::main()
}
