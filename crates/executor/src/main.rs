fn main() -> std::process::ExitCode {
    mcm_executor::main_entry()
}
