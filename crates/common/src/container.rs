//! Container metadata (what the user asked for, what is running) and the
//! status derived from it at every read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cgroups::Limits;
use crate::security::SecurityConfig;

/// How the container is connected to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A fresh network namespace with only `lo`, up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// What kind of filesystem a user mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host file or directory (`-v HOST:CTR`, `--mount type=bind`).
    Bind,
    /// A fresh tmpfs (`--tmpfs PATH[:OPTIONS]`).
    Tmpfs,
}

/// A mount the user asked for, placed after the container's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    pub kind: MountKind,
    /// Absolute host path (binds only).
    #[serde(default)]
    pub source: std::path::PathBuf,
    /// Absolute path inside the container, resolved inside its root.
    pub destination: String,
    pub read_only: bool,
    /// tmpfs options such as `size=64m` (tmpfs only).
    #[serde(default)]
    pub options: String,
}

/// A host device made available in the container (`--device`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// The host's device node.
    pub host: std::path::PathBuf,
    /// Path inside the container, under /dev.
    pub path: String,
    /// `c` (character) or `b` (block).
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// Permission bits of the node.
    pub mode: u32,
    /// Access for the devices cgroup: a combination of `r`, `w`, `m`.
    pub access: String,
}

/// A user namespace mapping: container ids 0..size are host ids
/// host_uid.. and host_gid.. (`--userns=remap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub host_uid: u32,
    pub host_gid: u32,
    pub size: u32,
}

impl IdMapping {
    /// The line written to /proc/PID/uid_map.
    pub fn uid_map(&self) -> String {
        format!("0 {} {}\n", self.host_uid, self.size)
    }

    /// The line written to /proc/PID/gid_map.
    pub fn gid_map(&self) -> String {
        format!("0 {} {}\n", self.host_gid, self.size)
    }
}

/// What the user asked for; written once when the container is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// 64 hex characters.
    pub id: String,
    /// Unique, user-chosen or generated.
    pub name: String,
    /// The image reference as the user gave it.
    pub image: String,
    /// The read-only lower layer (the image's root filesystem).
    pub rootfs: std::path::PathBuf,
    /// Command and arguments.
    pub command: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub workdir: String,
    pub hostname: String,
    pub network: NetworkMode,
    /// Give the command a pseudo-terminal.
    pub tty: bool,
    /// Keep stdin attached.
    pub interactive: bool,
    /// Run mcm's init as PID 1 (false: the command itself is PID 1).
    pub init: bool,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// cgroup parent path under each hierarchy (e.g. `mcm`).
    pub cgroup_parent: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub security: SecurityConfig,
    /// Volumes, bind mounts and tmpfs mounts.
    #[serde(default)]
    pub mounts: Vec<MountConfig>,
    /// Mount the root read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Extra host devices.
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// Own user namespace: root inside is an unprivileged host id.
    #[serde(default)]
    pub userns: Option<IdMapping>,
    /// Creation time, unix nanoseconds.
    pub created: u128,
}

impl ContainerConfig {
    /// The first 12 characters of the id, as `ps` shows it.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

/// The first 12 characters of an id.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The runtime state of the current (or last) run, written by the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Host PID of the container's PID 1.
    pub pid: i32,
    /// Its start time in clock ticks after boot (field 22 of /proc/PID/stat).
    pub start_time: u64,
    /// Boot id at start: a PID from another boot is never this container.
    pub boot_id: String,
    /// Unix nanoseconds.
    pub started_at: u128,
    /// The container has its own network namespace (for `status` figures and exec).
    #[serde(default)]
    pub own_netns: bool,
}

/// How the last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub code: i32,
    /// Unix nanoseconds.
    pub finished_at: u128,
}

impl ExitRecord {
    /// A record for an exit happening now.
    pub fn now(code: i32) -> Self {
        Self {
            code,
            finished_at: unix_nanos(SystemTime::now()),
        }
    }

    /// The one-line form written to the exit file (one write(2), so a reader
    /// never sees half of it: an incomplete line reads as "no record").
    pub fn encode(&self) -> String {
        format!("{} {}\n", self.code, self.finished_at)
    }

    /// Parses the exit file; `None` for an empty or incomplete record.
    pub fn decode(content: &str) -> Option<Self> {
        let line = content.strip_suffix('\n')?;
        let (code, finished) = line.split_once(' ')?;
        Some(Self {
            code: code.parse().ok()?,
            finished_at: finished.parse().ok()?,
        })
    }
}

/// Exit code reported when a container stopped without anyone recording how
/// (its init was killed, or the host rebooted), as Docker reports it.
pub const UNKNOWN_EXIT_CODE: i32 = 255;

/// The status of a container, derived from its files and the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    /// Created but never started.
    Created,
    /// Its init is alive.
    Running,
    /// Its init is alive and its cgroup is frozen.
    Paused,
    /// It ran and stopped.
    Exited {
        exit_code: i32,
        /// Unix nanoseconds; unknown when nobody saw it end.
        finished_at: Option<u128>,
    },
}

impl Status {
    /// Derives the status: `init_alive` says whether the recorded PID is still
    /// the same live process (see [`crate::proc::is_same_live_process`]).
    pub fn derive(
        run: Option<&RunState>,
        init_alive: bool,
        frozen: bool,
        exit: Option<ExitRecord>,
    ) -> Status {
        match (run, init_alive) {
            (Some(_), true) if frozen => Status::Paused,
            (Some(_), true) => Status::Running,
            (Some(_), false) => match exit {
                Some(record) => Status::Exited {
                    exit_code: record.code,
                    finished_at: Some(record.finished_at),
                },
                None => Status::Exited {
                    exit_code: UNKNOWN_EXIT_CODE,
                    finished_at: None,
                },
            },
            (None, _) => Status::Created,
        }
    }

    /// True while the init is alive (running or paused).
    pub fn is_alive(&self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// Lower-case name, as in `inspect`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited { .. } => "exited",
        }
    }
}

/// Unix nanoseconds of a time (0 before the epoch).
pub fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The time of unix nanoseconds.
pub fn from_unix_nanos(nanos: u128) -> SystemTime {
    let secs = (nanos / 1_000_000_000) as u64;
    let sub = (nanos % 1_000_000_000) as u32;
    UNIX_EPOCH + Duration::new(secs, sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunState {
        RunState {
            pid: 42,
            start_time: 7,
            boot_id: "b".into(),
            started_at: 1,
            own_netns: true,
        }
    }

    #[test]
    fn never_started_is_created() {
        assert_eq!(Status::derive(None, false, false, None), Status::Created);
    }

    #[test]
    fn live_init_is_running_or_paused() {
        assert_eq!(
            Status::derive(Some(&run()), true, false, None),
            Status::Running
        );
        assert_eq!(
            Status::derive(Some(&run()), true, true, None),
            Status::Paused
        );
    }

    #[test]
    fn dead_init_reads_recorded_exit() {
        let record = ExitRecord {
            code: 3,
            finished_at: 99,
        };
        assert_eq!(
            Status::derive(Some(&run()), false, false, Some(record)),
            Status::Exited {
                exit_code: 3,
                finished_at: Some(99)
            }
        );
    }

    #[test]
    fn dead_init_without_record_is_unknown_exit() {
        assert_eq!(
            Status::derive(Some(&run()), false, true, None),
            Status::Exited {
                exit_code: UNKNOWN_EXIT_CODE,
                finished_at: None
            }
        );
    }

    #[test]
    fn exit_record_round_trips_and_rejects_partial_writes() {
        let record = ExitRecord {
            code: 137,
            finished_at: 1_700_000_000_123_456_789,
        };
        assert_eq!(ExitRecord::decode(&record.encode()), Some(record));
        assert_eq!(ExitRecord::decode("137 1700"), None);
        assert_eq!(ExitRecord::decode(""), None);
        assert_eq!(ExitRecord::decode("x y\n"), None);
    }

    #[test]
    fn nanos_round_trip() {
        let t = from_unix_nanos(1_700_000_000_123_456_789);
        assert_eq!(unix_nanos(t), 1_700_000_000_123_456_789);
    }
}
