//! `TestEnv`: a private state root and cgroup parent per test, helpers to
//! run `mcm`, and a leak check that also runs (without asserting) on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `mcm` binary under test; its helpers sit next to it.
pub fn mcm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcm")
}

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub struct TestEnv {
    pub root: tempfile::TempDir,
    pub cgroup_parent: String,
}

/// The result of one `mcm` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "mcm failed: stdout {:?} stderr {:?}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the integration tests need root"
        );
        let root = tempfile::Builder::new()
            .prefix("mcm-it-")
            .tempdir()
            .unwrap();
        let cgroup_parent = format!(
            "mcm-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        TestEnv {
            root,
            cgroup_parent,
        }
    }

    /// A `mcm` command bound to this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(mcm_bin());
        cmd.args(args)
            .env("MCM_ROOT", self.root.path())
            .env("MCM_CGROUP_PARENT", &self.cgroup_parent)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `mcm args...` to completion.
    pub fn mcm(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().unwrap())
    }

    /// `mcm run -d ...`, returning the full id.
    #[track_caller]
    pub fn run_detached(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        let id = self.mcm(&all).ok().trim().to_string();
        assert_eq!(id.len(), 64, "not an id: {id:?}");
        id
    }

    /// The value at a JSON pointer of `mcm inspect ID`.
    #[track_caller]
    pub fn inspect(&self, id: &str, pointer: &str) -> serde_json::Value {
        let out = self.mcm(&["inspect", id]).ok();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        value[0]
            .pointer(pointer)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Polls until the container's state is `status` or panics after `timeout`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.inspect(id, "/State/Status");
            if now == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} is {now}, expected {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `cond` until true or panics.
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.root.path().join("containers")
    }

    /// Container directories left on disk.
    pub fn container_dirs(&self) -> Vec<String> {
        fs::read_dir(self.containers_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The container cgroup directories of this env's parent, on any hierarchy.
    pub fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let direct = Path::new(CGROUP_ROOT).join(&self.cgroup_parent);
        if direct.is_dir() {
            dirs.push(direct);
        }
        if let Ok(entries) = fs::read_dir(CGROUP_ROOT) {
            for entry in entries.flatten() {
                let dir = entry.path().join(&self.cgroup_parent);
                if dir.is_dir() && !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        dirs
    }

    /// Leftover container cgroups (subdirectories of the parent).
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        self.cgroup_parent_dirs()
            .iter()
            .flat_map(|dir| fs::read_dir(dir).into_iter().flatten().flatten())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .collect()
    }

    /// Host processes that live in one of this env's cgroups.
    pub fn leftover_processes(&self) -> Vec<String> {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(cgroups) = fs::read_to_string(entry.path().join("cgroup")) else {
                continue;
            };
            let zombie = fs::read_to_string(entry.path().join("stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false);
            if cgroups.contains(&format!("/{}/", self.cgroup_parent)) && !zombie {
                found.push(name);
            }
        }
        found
    }

    /// Mounts on the host that mention this env's state root.
    pub fn leftover_mounts(&self) -> Vec<String> {
        let root = self.root.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .map(String::from)
            .collect()
    }

    /// Removes every container (rm -f), then asserts nothing is left:
    /// no state, cgroup, process or mount.
    #[track_caller]
    pub fn finish(self) {
        self.remove_all();
        assert_eq!(
            self.container_dirs(),
            Vec::<String>::new(),
            "container state left"
        );
        assert_eq!(
            self.leftover_cgroups(),
            Vec::<PathBuf>::new(),
            "cgroups left"
        );
        assert_eq!(
            self.leftover_processes(),
            Vec::<String>::new(),
            "processes left"
        );
        assert_eq!(self.leftover_mounts(), Vec::<String>::new(), "mounts left");
    }

    fn remove_all(&self) {
        for id in self.container_dirs() {
            let _ = self.mcm(&["rm", "-f", &id]);
        }
    }
}

impl Drop for TestEnv {
    /// Cleans up even when the test failed; never asserts.
    fn drop(&mut self) {
        self.remove_all();
        for dir in self.cgroup_parent_dirs() {
            for child in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if child.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let _ = fs::remove_dir(child.path());
                }
            }
            let _ = fs::remove_dir(&dir);
        }
    }
}

/// `readlink /proc/self/ns/<ns>` of this (host) process.
pub fn host_ns(ns: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
