//! Process identity: a PID is only "the same process" when its start time
//! (field 22 of `/proc/PID/stat`) and the boot id match what was recorded.

use std::fs;
use std::io;
use std::path::Path;

/// Where the kernel publishes the id of the current boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// One-letter scheduler state (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
}

/// Parses the content of a `/proc/PID/stat` file.
///
/// The command name (field 2) may hold spaces and parentheses, so fields
/// are counted from the last `)`.
pub fn parse_stat(content: &str) -> Option<ProcStat> {
    let after_comm = &content[content.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), start time is field 22: 19 fields further.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Reads `/proc/PID/stat`; `None` when the process does not exist.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let content = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&content)
}

/// Start time of a live process, in clock ticks after boot.
pub fn start_time(pid: i32) -> io::Result<u64> {
    stat(pid)
        .map(|s| s.start_time)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

/// The id of the running boot (read once per process). `MCM_BOOT_ID_FILE`
/// points elsewhere so tests can simulate a reboot.
pub fn boot_id() -> String {
    static BOOT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            let path = std::env::var_os("MCM_BOOT_ID_FILE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| Path::new(BOOT_ID_PATH).to_path_buf());
            fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// True when `pid` is a live (non-zombie) process started at `start_time`
/// during the current boot `boot`.
pub fn is_same_live_process(pid: i32, start_time: u64, boot: &str) -> bool {
    if pid <= 0 || boot != boot_id() {
        return false;
    }
    matches!(stat(pid), Some(s) if s.start_time == start_time && s.state != 'Z' && s.state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_command_name() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 987654);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_live_and_same() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).unwrap();
        assert!(is_same_live_process(pid, start, &boot_id()));
        assert!(!is_same_live_process(pid, start + 1, &boot_id()));
        assert!(!is_same_live_process(pid, start, "another-boot"));
    }
}
