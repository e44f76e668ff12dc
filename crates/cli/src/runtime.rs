//! [`Runtime`]: the library API behind every `mcm` command.
//!
//! ```no_run
//! use mcm::{Runtime, RunSpec};
//! let runtime = Runtime::open("/var/lib/mcm")?;
//! let container = runtime.run(&RunSpec::new("busybox", &["sleep", "60"]))?;
//! println!("{} is {}", container.config.short_id(), container.status.name());
//! runtime.stop(&container.config.id, std::time::Duration::from_secs(10))?;
//! runtime.remove(&container.config.id, false)?;
//! # Ok::<(), mcm::Error>(())
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use mcm_common::cgroups::Cgroup;
use mcm_common::container::{unix_nanos, ContainerConfig, ExitRecord, RunState, Status};
use mcm_common::paths::{ContainerDir, StateRoot, DEFAULT_CGROUP_PARENT};
use mcm_common::proc;
use mcm_common::store::{self, Lock};

use crate::error::{Error, Result};
use crate::image::ImageStore;
use crate::launch::{self, Attached, LaunchMode};
use crate::names;
use crate::pidfd::InitHandle;
use crate::spec::{container_env, RunSpec, DEFAULT_COMMAND};
use crate::userns;

/// How long a killed init is given to take its PID namespace down before
/// the cgroup is swept.
const INIT_DEATH_WAIT: Duration = Duration::from_secs(1);

/// From how many containers a listing is worth a second thread.
const PARALLEL_LOAD_MIN: usize = 64;

/// How long `kill`, `rm -f` and a timed-out `stop` wait for SIGKILL to land.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// One container as read from disk, with its status derived now.
#[derive(Debug, Clone)]
pub struct Container {
    pub config: ContainerConfig,
    /// The current or last run, if it was ever started.
    pub run: Option<RunState>,
    pub status: Status,
    pub dir: ContainerDir,
}

/// Containers found on disk; a broken one does not hide the others.
#[derive(Debug, Default)]
pub struct Listing {
    pub containers: Vec<Container>,
    /// Container directories that could not be read, with the reason.
    pub broken: Vec<(String, Error)>,
}

/// Handle on a state root: images and containers.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: StateRoot,
    cgroup_parent: String,
}

impl Runtime {
    /// Opens (creating if needed) the state root `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Runtime> {
        let root = StateRoot::new(root);
        for dir in [root.containers_dir(), root.names_dir()] {
            fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        }
        Ok(Runtime {
            root,
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_string(),
        })
    }

    /// Uses `parent` (e.g. `mcm` or `mcm-test-1`) as the cgroup parent of
    /// containers created from now on.
    pub fn with_cgroup_parent(mut self, parent: impl Into<String>) -> Result<Runtime> {
        let parent = parent.into();
        if parent.is_empty()
            || parent.starts_with('/')
            || parent
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(Error::InvalidValue {
                what: "cgroup parent",
                value: parent,
                reason: "must be a relative path without . or .. parts".into(),
            });
        }
        self.cgroup_parent = parent;
        Ok(self)
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The image store of this root.
    pub fn images(&self) -> ImageStore {
        ImageStore::new(self.root.path())
    }

    /// Creates and starts a detached container.
    pub fn run(&self, spec: &RunSpec) -> Result<Container> {
        let config = self.create(spec)?;
        let result = self.launch_locked(&config.id, LaunchMode::Detached);
        self.cleanup_failed_run(&config.id, result)?;
        self.inspect(&config.id)
    }

    /// Creates and starts a container attached to this process's terminal;
    /// the caller relays and waits (see [`Attached`]).
    pub fn run_attached(&self, spec: &RunSpec, tty_size: Option<(u16, u16)>) -> Result<Attached> {
        let config = self.create(spec)?;
        let result = self.launch_locked(&config.id, LaunchMode::Attached { tty_size });
        self.cleanup_failed_run(&config.id, result)
    }

    /// A run that failed to start leaves nothing behind.
    fn cleanup_failed_run<T>(&self, id: &str, result: Result<T>) -> Result<T> {
        if result.is_err() {
            let _ = self.remove(id, true);
        }
        result
    }

    /// Creates a container (metadata, layers, /etc files) without starting it.
    pub fn create(&self, spec: &RunSpec) -> Result<ContainerConfig> {
        if let Some(name) = &spec.name {
            names::validate(name)?;
        }
        for pair in &spec.env {
            if !pair.contains('=') || pair.starts_with('=') {
                return Err(Error::InvalidValue {
                    what: "environment variable",
                    value: pair.clone(),
                    reason: "expected KEY=VALUE".into(),
                });
            }
        }
        if let Some(workdir) = &spec.workdir {
            if !workdir.starts_with('/') {
                return Err(Error::InvalidValue {
                    what: "working directory",
                    value: workdir.clone(),
                    reason: "must be an absolute path".into(),
                });
            }
        }
        let profile = self.check_security(spec)?;
        let rootfs = self.images().resolve(&spec.image)?;
        let userns = spec.userns_remap.then(userns::remap_ids);
        let rootfs = match userns {
            Some(mapping) => self.images().shifted(&rootfs, mapping)?,
            None => rootfs,
        };
        let id = new_id();
        let dir = self.root.container(&id);
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string());
        let config = ContainerConfig {
            id: id.clone(),
            name: String::new(),
            image: spec.image.clone(),
            rootfs,
            command: if spec.command.is_empty() {
                vec![DEFAULT_COMMAND.to_string()]
            } else {
                spec.command.clone()
            },
            env: container_env(&hostname, spec.tty, &spec.env),
            workdir: spec.workdir.clone().unwrap_or_else(|| "/".into()),
            hostname,
            network: spec.network,
            tty: spec.tty,
            interactive: spec.interactive,
            init: spec.init,
            auto_remove: spec.auto_remove,
            cgroup_parent: self.cgroup_parent.clone(),
            limits: spec.limits.clone(),
            security: spec.security.clone(),
            mounts: spec.mounts.clone(),
            read_only: spec.read_only,
            devices: spec.devices.clone(),
            userns,
            created: unix_nanos(SystemTime::now()),
        };
        // Private: a setuid file the container writes into its layer must
        // not be reachable by the host's users.
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
            .create(dir.path())
            .map_err(Error::io("create", dir.path()))?;
        let result = self.claim_name(&id, spec.name.as_deref()).and_then(|name| {
            let config = ContainerConfig { name, ..config };
            create_layers(&dir)?;
            if let Some(mapping) = config.userns {
                // The container's root owns its writable layer, and its
                // directory, which it must traverse to mount the layers.
                for layer in [dir.path().to_path_buf(), dir.upper(), dir.work()] {
                    std::os::unix::fs::chown(
                        &layer,
                        Some(mapping.host_uid),
                        Some(mapping.host_gid),
                    )
                    .map_err(Error::io("chown", &layer))?;
                }
            }
            if let Some(profile) = &profile {
                let path = dir.seccomp_profile();
                fs::write(&path, profile).map_err(Error::io("write", &path))?;
            }
            // Written last: a directory without config.json is an
            // interrupted create, which `rm` and `prune` clean up.
            // A `--rm` container does not outlive a crash worth recovering
            // from, so its config need not reach the disk before it runs.
            if config.auto_remove {
                store::write_json_volatile(&dir.config(), &config)?;
            } else {
                store::write_json(&dir.config(), &config)?;
            }
            Ok(config)
        });
        if result.is_err() {
            let _ = self.discard(&id, None);
        }
        result
    }

    /// Refuses unknown capabilities and unusable seccomp profiles before
    /// anything is created; returns the profile's text to store.
    fn check_security(&self, spec: &RunSpec) -> Result<Option<String>> {
        let invalid = |what, value: String, reason: String| Error::InvalidValue {
            what,
            value,
            reason,
        };
        let mask = spec.security.capability_mask()?;
        let Some(path) = &spec.seccomp_profile else {
            return Ok(None);
        };
        let text = fs::read_to_string(path).map_err(Error::io("read seccomp profile", path))?;
        mcm_common::security::seccomp::docker_profile_filters(
            &text,
            &mcm_common::security::capabilities::names(mask),
        )
        .map_err(|e| invalid("seccomp profile", path.display().to_string(), e.to_string()))?;
        Ok(Some(text))
    }

    /// Links `names/<name>` to the id; the link's creation is atomic, so of
    /// two concurrent creates with one name exactly one wins.
    fn claim_name(&self, id: &str, wanted: Option<&str>) -> Result<String> {
        for attempt in 0.. {
            let name = match wanted {
                Some(name) => name.to_string(),
                None => names::generate(uuid::Uuid::new_v4().as_bytes(), attempt),
            };
            match std::os::unix::fs::symlink(id, self.root.name_link(&name)) {
                Ok(()) => return Ok(name),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if wanted.is_some() {
                        return Err(Error::NameInUse(name));
                    }
                }
                Err(e) => return Err(Error::io("create", self.root.name_link(&name))(e)),
            }
        }
        unreachable!("the name loop only ends by returning")
    }

    /// Starts a stopped (or created) container in the background.
    pub fn start(&self, query: &str) -> Result<Container> {
        let id = self.resolve(query)?;
        self.launch_locked(&id, LaunchMode::Detached)?;
        self.inspect(&id)
    }

    /// Starts a stopped container attached to this process's terminal.
    pub fn start_attached(&self, query: &str, tty_size: Option<(u16, u16)>) -> Result<Attached> {
        let id = self.resolve(query)?;
        self.launch_locked(&id, LaunchMode::Attached { tty_size })
    }

    fn launch_locked(&self, id: &str, mode: LaunchMode) -> Result<Attached> {
        let _lock = self.lock(id)?;
        let container = self.load(id)?;
        if container.status.is_alive() {
            return Err(Error::WrongState {
                id: container.config.short_id().to_string(),
                state: container.status.name(),
                hint: "it is already running",
            });
        }
        launch::launch(&container, mode)
    }

    /// Stops a container: SIGTERM to its main process, then, after
    /// `timeout`, SIGKILL to everything in it. Stopping a stopped
    /// container is not an error.
    pub fn stop(&self, query: &str, timeout: Duration) -> Result<String> {
        let id = self.resolve(query)?;
        let _lock = self.lock(&id)?;
        let container = self.load(&id)?;
        let Some(handle) = container.run.as_ref().and_then(InitHandle::open) else {
            return Ok(id);
        };
        // A frozen process cannot act on SIGTERM: kill it right away.
        let graceful = container.status == Status::Running
            && handle.signal(Signal::SIGTERM).is_ok()
            && handle.wait_exit(timeout);
        if !graceful {
            self.kill_everything(&container, &handle)?;
        }
        Ok(id)
    }

    /// Sends `signal` to the container's main process (through its init).
    pub fn kill(&self, query: &str, signal: Signal) -> Result<String> {
        let id = self.resolve(query)?;
        let _lock = self.lock(&id)?;
        let container = self.load(&id)?;
        let handle = container
            .run
            .as_ref()
            .and_then(InitHandle::open)
            .ok_or_else(|| Error::WrongState {
                id: container.config.short_id().to_string(),
                state: container.status.name(),
                hint: "only a running container can be signalled",
            })?;
        if signal == Signal::SIGKILL {
            self.kill_everything(&container, &handle)?;
        } else {
            handle
                .signal(signal)
                .map_err(Error::io("signal", format!("/proc/{}", handle.pid())))?;
        }
        Ok(id)
    }

    /// SIGKILL to every process of the container, waiting until the init
    /// is gone; records exit 137 when the init could not record anything.
    fn kill_everything(&self, container: &Container, handle: &InitHandle) -> Result<()> {
        let cgroup = self.cgroup_of(&container.config)?;
        // Killing the init ends its PID namespace; the cgroup catches
        // anything that escaped it (e.g. with --network host, nothing does).
        let _ = handle.signal(Signal::SIGKILL);
        // The init's death ends its PID namespace, usually within a few ms;
        // a frozen one only dies once its cgroup thaws, which kill_all does.
        if container.status != Status::Paused {
            handle.wait_exit(INIT_DEATH_WAIT);
        }
        cgroup.kill_all()?;
        if !handle.wait_exit(KILL_WAIT) {
            return Err(Error::StartFailed {
                exit_code: 125,
                message: format!(
                    "container {} did not die within {KILL_WAIT:?}",
                    container.config.short_id()
                ),
            });
        }
        store::record_exit_if_missing(
            &container.dir.exit(),
            &ExitRecord::now(128 + Signal::SIGKILL as i32),
        )?;
        Ok(())
    }

    /// Removes a container: its processes (with `force`), cgroup, layers,
    /// name and metadata. Works on half-created containers too.
    pub fn remove(&self, query: &str, force: bool) -> Result<String> {
        let id = self.resolve(query)?;
        let dir = self.root.container(&id);
        let _lock = self.lock(&id)?;
        if !dir.path().exists() {
            return Err(Error::NoSuchContainer(query.to_string()));
        }
        let container = self.load(&id).ok();
        if let Some(container) = &container {
            if let Some(handle) = container.run.as_ref().and_then(InitHandle::open) {
                // An init that already recorded the exit is on its way out:
                // only a running container needs -f.
                if !force && container.status.is_alive() {
                    return Err(Error::WrongState {
                        id: container.config.short_id().to_string(),
                        state: container.status.name(),
                        hint: "stop it first or use rm -f",
                    });
                }
                self.kill_everything(container, &handle)?;
            }
        }
        self.discard(&id, container.as_ref().map(|c| &c.config))?;
        Ok(id)
    }

    /// Deletes what a container owns on the host (no process may be left).
    ///
    /// The cgroup and the two overlay layers are removed in parallel: each
    /// removal is mostly waiting (on some disks every freed directory block
    /// is discarded synchronously), so they overlap well even on one core.
    fn discard(&self, id: &str, config: Option<&ContainerConfig>) -> Result<()> {
        let parent = config
            .map(|c| c.cgroup_parent.as_str())
            .unwrap_or(&self.cgroup_parent);
        let cgroup = Cgroup::for_host(parent, id)?;
        let dir = self.root.container(id);
        let remove_tree = |path: PathBuf| match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("remove", &path)(e)),
            _ => Ok(()),
        };
        let (cgroup_result, layers_result) = std::thread::scope(|scope| {
            let cgroup_removal = scope.spawn(|| cgroup.destroy().map_err(Error::from));
            let work_removal = scope.spawn(|| remove_tree(dir.work()));
            let upper_result = remove_tree(dir.upper());
            let join = |handle: std::thread::ScopedJoinHandle<'_, _>| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            let work_result: Result<()> = join(work_removal);
            (join(cgroup_removal), upper_result.and(work_result))
        });
        cgroup_result?;
        layers_result?;
        if let Some(config) = config {
            let link = self.root.name_link(&config.name);
            if fs::read_link(&link).is_ok_and(|target| target == Path::new(id)) {
                let _ = fs::remove_file(&link);
            }
        }
        remove_tree(dir.path().to_path_buf())
    }

    /// The container named by `query`, status derived now.
    pub fn inspect(&self, query: &str) -> Result<Container> {
        let id = self.resolve(query)?;
        self.load(&id)
    }

    /// The container's status.
    pub fn status(&self, query: &str) -> Result<Status> {
        Ok(self.inspect(query)?.status)
    }

    /// Every container, oldest first. Exited containers started with
    /// `--rm` in the background are removed on the way.
    pub fn list(&self) -> Result<Listing> {
        let dir = self.root.containers_dir();
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("read", &dir))? {
            let entry = entry.map_err(Error::io("read", &dir))?;
            let id = entry.file_name().to_string_lossy().into_owned();
            if !id.starts_with('.') {
                ids.push(id);
            }
        }
        let loaded = self.load_all(&ids);
        let mut listing = Listing::default();
        for (id, result) in ids.into_iter().zip(loaded) {
            match result {
                Ok(c) if c.config.auto_remove && matches!(c.status, Status::Exited { .. }) => {
                    let _ = self.remove(&id, false);
                }
                Ok(c) => listing.containers.push(c),
                // An interrupted create: nothing to show.
                Err(Error::NoSuchContainer(_)) => {}
                Err(e) => listing.broken.push((id, e)),
            }
        }
        listing.containers.sort_by_key(|c| c.config.created);
        Ok(listing)
    }

    /// Loads the containers `ids`, in that order. Many are loaded in two
    /// halves on two threads: the time goes to opening and reading small
    /// files, which overlap well.
    fn load_all(&self, ids: &[String]) -> Vec<Result<Container>> {
        let load = |ids: &[String]| ids.iter().map(|id| self.load(id)).collect::<Vec<_>>();
        if ids.len() < PARALLEL_LOAD_MIN {
            return load(ids);
        }
        let (head, tail) = ids.split_at(ids.len() / 2);
        std::thread::scope(|scope| {
            // Without a thread (a pids limit reached) only the speed-up is lost.
            let Ok(tail_loader) = std::thread::Builder::new().spawn_scoped(scope, || load(tail))
            else {
                return load(ids);
            };
            let mut loaded = load(head);
            match tail_loader.join() {
                Ok(tail) => loaded.extend(tail),
                Err(panic) => std::panic::resume_unwind(panic),
            }
            loaded
        })
    }

    /// Holds the container's lock (on its directory) until dropped.
    pub(crate) fn lock(&self, id: &str) -> Result<Lock> {
        let dir = self.root.container(id);
        Lock::exclusive(dir.path()).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NoSuchContainer(id.to_string()),
            _ => Error::io("lock", dir.path())(e),
        })
    }

    /// Reads one container's files and derives its status.
    fn load(&self, id: &str) -> Result<Container> {
        let dir = self.root.container(id);
        let config: ContainerConfig = store::read_json(&dir.config())?
            .ok_or_else(|| Error::NoSuchContainer(id.to_string()))?;
        let run: Option<RunState> = store::read_json(&dir.state())?;
        // The exit file is emptied at every start: a record means the last
        // run is over, with no need to look at /proc.
        let exit = store::read_exit(&dir.exit());
        let alive = exit.is_none()
            && run
                .as_ref()
                .is_some_and(|r| proc::is_same_live_process(r.pid, r.start_time, &r.boot_id));
        let frozen = alive && self.cgroup_of(&config).is_ok_and(|cg| cg.is_frozen());
        let status = Status::derive(run.as_ref(), alive, frozen, exit);
        Ok(Container {
            config,
            run,
            status,
            dir,
        })
    }

    fn cgroup_of(&self, config: &ContainerConfig) -> Result<Cgroup> {
        Ok(Cgroup::for_host(&config.cgroup_parent, &config.id)?)
    }

    /// The cgroup.procs files a process must join to be in the container.
    pub(crate) fn cgroup_procs_files(&self, config: &ContainerConfig) -> Result<Vec<PathBuf>> {
        Ok(self.cgroup_of(config)?.procs_files())
    }

    /// The full id of the container named by `query`: a full id, a name,
    /// or a unique id prefix.
    pub fn resolve(&self, query: &str) -> Result<String> {
        let no_such = || Error::NoSuchContainer(query.to_string());
        // Never let a query walk the file system.
        if query.is_empty() || query.contains('/') || query.starts_with('.') {
            return Err(no_such());
        }
        if query.len() == 64 && self.root.container(query).config().exists() {
            return Ok(query.to_string());
        }
        if let Ok(target) = fs::read_link(self.root.name_link(query)) {
            return Ok(target.to_string_lossy().into_owned());
        }
        if !query.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(no_such());
        }
        let dir = self.root.containers_dir();
        let mut candidates: Vec<String> = fs::read_dir(&dir)
            .map_err(Error::io("read", &dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|id| id.starts_with(query))
            .collect();
        match candidates.len() {
            0 => Err(no_such()),
            1 => Ok(candidates.remove(0)),
            _ => {
                candidates.sort();
                Err(Error::AmbiguousPrefix {
                    prefix: query.to_string(),
                    candidates: candidates
                        .iter()
                        .map(|c| c[..12.min(c.len())].to_string())
                        .collect(),
                })
            }
        }
    }
}

/// A new 64-hex-character id.
fn new_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The OverlayFS directories.
fn create_layers(dir: &ContainerDir) -> Result<()> {
    for layer in [dir.upper(), dir.work()] {
        fs::create_dir(&layer).map_err(Error::io("create", &layer))?;
    }
    Ok(())
}

/// What `prune` removed.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// Stopped (or never started) containers.
    pub containers: Vec<String>,
    /// Container directories of interrupted creates.
    pub state_dirs: Vec<String>,
    /// cgroups whose container no longer exists.
    pub cgroups: Vec<String>,
}

impl Runtime {
    /// Removes every container that is not running, the directories of
    /// interrupted creates, and cgroups under this runtime's cgroup parent
    /// whose container no longer exists.
    pub fn prune(&self) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        for c in self.list()?.containers {
            if !c.status.is_alive() && self.remove(&c.config.id, false).is_ok() {
                report.containers.push(c.config.id);
            }
        }
        let dir = self.root.containers_dir();
        for entry in fs::read_dir(&dir)
            .map_err(Error::io("read", &dir))?
            .flatten()
        {
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') || self.root.container(&id).config().exists() {
                continue;
            }
            let _lock = self.lock(&id)?;
            if !self.root.container(&id).config().exists() {
                self.discard(&id, None)?;
                report.state_dirs.push(id);
            }
        }
        for name in mcm_common::cgroups::host_children(&self.cgroup_parent)? {
            if self.root.container(&name).path().exists() {
                continue;
            }
            let cgroup = Cgroup::for_host(&self.cgroup_parent, &name)?;
            cgroup.kill_all()?;
            cgroup.destroy()?;
            report.cgroups.push(name);
        }
        // The parent cgroup itself goes too once no container uses it
        // (left in place by rm, so concurrent creates never race its rmdir).
        if mcm_common::cgroups::host_children(&self.cgroup_parent)?.is_empty() {
            mcm_common::cgroups::remove_host_parent_if_empty(&self.cgroup_parent)?;
        }
        Ok(report)
    }
}
