fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(mcm_nsenter::main_entry() as u8)
}
