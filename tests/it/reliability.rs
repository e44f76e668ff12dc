//! Concurrency, crashes, PID reuse, reboots, disk trouble and bad input:
//! afterwards the metadata tells the truth and nothing is left behind.

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::env::TestEnv;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn fifty_concurrent_runs_then_fifty_concurrent_removals() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    let runs: Vec<_> = (0..50)
        .map(|i| {
            env.command(&[
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                "busybox",
                "sleep",
                "1000",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    // Readers race the writers: every listing must parse.
    for _ in 0..5 {
        let out = env.mcm(&["ps", "-a", "--format", "json"]).ok();
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }
    let mut ids = Vec::new();
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let running = env.mcm(&["ps", "-q"]).ok();
    assert_eq!(running.lines().count(), 50, "{running}");

    // Mixed: stops and execs-free status reads while removing.
    let stoppers: Vec<_> = ids[..10]
        .iter()
        .map(|id| {
            env.command(&["stop", "-t", "1", id])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let removers: Vec<_> = ids
        .iter()
        .map(|id| {
            env.command(&["rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for _ in 0..3 {
        let out = env.mcm(&["ps", "-a", "--format", "json"]).ok();
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }
    for child in stoppers {
        // A stop may lose the race against rm -f: then it fails cleanly.
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("no such container"), "{err}");
        }
    }
    for child in removers {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.mcm(&["ps", "-aq"]).ok(), "");
    env.finish();
}

#[test]
fn concurrent_runs_with_one_name_give_one_container() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    let children: Vec<_> = (0..8)
        .map(|_| {
            env.command(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1);
    for out in outputs.iter().filter(|o| !o.status.success()) {
        assert_eq!(out.status.code(), Some(125));
        assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));
    }
    assert_eq!(env.container_dirs().len(), 1);
    env.finish();
}

#[test]
fn killing_the_container_init_reads_as_exited_and_restarts() {
    let env = TestEnv::new();
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    let pid = env.inspect(&id, "/State/Pid").as_i64().unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    env.wait_status(&id, "exited", WAIT);
    assert!(env.mcm(&["ps", "-a"]).ok().contains("Exited ("));
    env.mcm(&["start", &id]).ok();
    env.wait_status(&id, "running", WAIT);
    env.mcm(&["rm", "-f", &id]).ok();
    env.finish();
}

#[test]
fn killing_the_client_or_executor_midway_leaves_a_removable_container() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    for delay_ms in [0u64, 2, 5, 10, 20, 50] {
        let mut child = env
            .command(&["run", "-d", "busybox", "sleep", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // Kill the client and, if it already started one, its executor.
        let client = child.id() as i32;
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if fields.get(1) == Some(&client.to_string().as_str())
                && stat.contains("(mcm-executor)")
            {
                let _ = kill(
                    Pid::from_raw(entry.file_name().to_string_lossy().parse().unwrap()),
                    Signal::SIGKILL,
                );
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    // Whatever state each was caught in, ps tells it and rm -f cleans it.
    let listing = env.mcm(&["ps", "-a", "--format", "json"]).ok();
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    for c in listing.as_array().unwrap() {
        let status = c["State"]["Status"].as_str().unwrap();
        assert!(
            ["created", "running", "exited"].contains(&status),
            "{status}"
        );
        if status == "running" {
            let pid = c["State"]["Pid"].as_i64().unwrap();
            assert!(fs::metadata(format!("/proc/{pid}")).is_ok());
        }
    }
    for id in env.container_dirs() {
        env.mcm(&["rm", "-f", &id]).ok();
    }
    env.finish();
}

#[test]
fn a_reused_pid_is_never_running_nor_signalled() {
    let env = TestEnv::new();
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    env.mcm(&["stop", "-t", "1", &id]).ok();
    // Point the record at an unrelated live process, as if the PID had
    // been recycled.
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let state_path = env.containers_dir().join(&id).join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&state_path).unwrap()).unwrap();
    state["pid"] = (bystander.id() as i64).into();
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert_eq!(env.inspect(&id, "/State/Status"), "exited");
    env.mcm(&["stop", &id]).ok();
    assert_eq!(env.mcm(&["kill", &id]).code, 125);
    env.mcm(&["rm", "-f", &id]).ok();
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "an unrelated process was signalled"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    env.finish();
}

#[test]
fn after_a_reboot_containers_read_as_exited_and_start_again() {
    let env = TestEnv::new();
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    let pid = env.inspect(&id, "/State/Pid").as_i64().unwrap() as i32;
    // A reboot: the processes are gone and the boot id changed.
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let boot = env.root.path().join("fake-boot-id");
    fs::write(&boot, "00000000-new-boot\n").unwrap();
    let rebooted = |args: &[&str]| {
        let out = env
            .command(args)
            .env("MCM_BOOT_ID_FILE", &boot)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, ps) = rebooted(&["ps", "-a"]);
    assert_eq!(code, Some(0));
    assert!(ps.contains("Exited ("), "{ps}");
    assert_eq!(rebooted(&["start", &id]).0, Some(0));
    let (_, ps) = rebooted(&["ps"]);
    assert!(ps.contains(&id[..12]), "{ps}");
    assert_eq!(rebooted(&["rm", "-f", &id]).0, Some(0));
    env.finish();
}

#[test]
fn corrupt_metadata_breaks_only_its_container() {
    let env = TestEnv::new();
    let good = env.run_detached(&["--name", "good", "busybox", "sleep", "1000"]);
    let bad = env.run_detached(&["--name", "bad", "busybox", "true"]);
    env.wait_status(&bad, "exited", WAIT);
    let config = env.containers_dir().join(&bad).join("config.json");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, &text[..text.len() / 2]).unwrap();
    let out = env.mcm(&["ps", "-a"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("good"), "{}", out.stdout);
    assert!(
        out.stderr.contains(&bad) && out.stderr.contains("config.json"),
        "{}",
        out.stderr
    );
    let out = env.mcm(&["inspect", &bad]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("corrupt"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
    env.mcm(&["rm", "-f", &bad]).ok();
    assert_eq!(env.inspect(&good, "/State/Status"), "running");
    // A writer killed between write and rename leaves only its temp file.
    fs::write(
        env.containers_dir().join(&good).join(".state.json.tmp-1"),
        "{",
    )
    .unwrap();
    assert_eq!(env.inspect(&good, "/State/Status"), "running");
    env.finish();
}

#[test]
fn read_only_state_root_fails_cleanly_and_keeps_metadata() {
    use nix::mount::{mount, umount, MsFlags};
    let env = TestEnv::new();
    let id = env.run_detached(&["--name", "kept", "busybox", "true"]);
    env.wait_status(&id, "exited", WAIT);
    let root = env.root.path();
    mount(
        Some(root),
        root,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .unwrap();
    let run = env.mcm(&["run", "busybox", "true"]);
    let rm = env.mcm(&["rm", &id]);
    let listing = env.mcm(&["ps", "-a"]);
    umount(root).unwrap();
    assert_eq!(run.code, 125);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("Read-only file system"),
        "{}",
        run.stderr
    );
    assert_eq!(rm.code, 125, "{}", rm.stderr);
    assert!(listing.stdout.contains("kept"), "{}", listing.stdout);
    assert_eq!(env.inspect(&id, "/Name"), "kept");
    env.finish();
}

#[test]
fn bad_input_table() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    let huge = "x".repeat(100_000);
    let rows: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["run", "--name", "a/b", "busybox"],
            125,
            "invalid container name",
        ),
        (
            vec!["run", "--name", "", "busybox"],
            125,
            "invalid container name",
        ),
        (vec!["inspect", "../../etc"], 125, "no such container"),
        (vec!["stop", "nonexistent"], 125, "no such container"),
        (vec!["run", "nosuchimage", "true"], 125, "nosuchimage"),
        (vec!["run", "busybox", "nosuchcmd"], 127, "not found"),
        (
            vec!["run", "busybox", "/etc/passwd"],
            126,
            "Permission denied",
        ),
        (vec!["run", "-w", "/nope", "busybox", "true"], 126, "/nope"),
        (
            vec!["run", "-w", "relative", "busybox", "true"],
            125,
            "absolute",
        ),
        (
            vec!["run", "-e", "NOVALUE", "busybox", "true"],
            125,
            "KEY=VALUE",
        ),
        (vec!["run", "-e", "=x", "busybox", "true"], 125, "KEY=VALUE"),
        (vec!["run", "busybox", "echo", huge.as_str()], 0, ""),
        (vec!["kill", "-s", "NOSIG", id.as_str()], 125, "signal"),
        (vec!["--bogus-flag"], 2, "unexpected argument"),
        (vec!["nosubcommand"], 2, "unrecognized subcommand"),
    ];
    for (args, code, message) in rows {
        let out = env.mcm(&args);
        let shown: Vec<&str> = args.iter().map(|a| &a[..a.len().min(20)]).collect();
        assert_eq!(out.code, code, "{shown:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{shown:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("panicked"),
            "{shown:?}: {}",
            out.stderr
        );
    }
    // Only the long-running container and the echo are left.
    let dirs = env.container_dirs();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    env.finish();
}

#[test]
fn system_prune_removes_stopped_containers_and_leftovers() {
    let env = TestEnv::new();
    let running = env.run_detached(&["busybox", "sleep", "1000"]);
    let exited = env.run_detached(&["busybox", "true"]);
    env.wait_status(&exited, "exited", WAIT);
    // A container whose state vanished (its cgroup stays behind) and the
    // directory of an interrupted create.
    let orphan = env.run_detached(&["busybox", "true"]);
    env.wait_status(&orphan, "exited", WAIT);
    fs::remove_dir_all(env.containers_dir().join(&orphan)).unwrap();
    let half = "f".repeat(64);
    fs::create_dir(env.containers_dir().join(&half)).unwrap();
    let out = env.mcm(&["system", "prune", "-f"]).ok();
    assert!(
        out.contains(&exited) && out.contains(&half) && out.contains(&orphan),
        "{out}"
    );
    assert!(!out.contains(&running), "{out}");
    assert_eq!(env.container_dirs(), vec![running.clone()]);
    let mut names: Vec<_> = env
        .leftover_cgroups()
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    names.dedup();
    assert_eq!(names, [std::ffi::OsString::from(&running)]);
    // Once nothing is left, prune also removes the cgroup parent.
    env.mcm(&["rm", "-f", &running]).ok();
    env.mcm(&["system", "prune"]).ok();
    assert!(
        env.cgroup_parent_dirs().is_empty(),
        "{:?}",
        env.cgroup_parent_dirs()
    );
    env.finish();
}

/// Soak cycles; fewer where the machine is emulated (MCM_SOAK_CYCLES).
fn soak_cycles(default: usize) -> usize {
    std::env::var("MCM_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a leak would show on the host: mounts of overlays or of this
/// env's root, cgroups, processes, and entries in the state root. (Each
/// mcm command is a new process, so its descriptors cannot pile up; this
/// test process's own count is shared with the tests running beside it.)
fn host_footprint(env: &TestEnv) -> (usize, usize, usize, usize) {
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.contains(" - overlay ") || l.contains(&env.root.path().to_string_lossy().into_owned())
        })
        .count();
    let state_entries =
        walk_count(&env.containers_dir()) + walk_count(&env.root.path().join("names"));
    (
        mounts,
        env.leftover_cgroups().len(),
        env.leftover_processes().len(),
        state_entries,
    )
}

fn walk_count(dir: &std::path::Path) -> usize {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            1 + if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_count(&e.path())
            } else {
                0
            }
        })
        .sum()
}

#[test]
fn soak_run_rm_cycles_leave_the_host_as_it_was() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    let before = host_footprint(&env);
    let cycles = soak_cycles(1000);
    for _ in 0..cycles {
        env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    }
    assert_eq!(
        host_footprint(&env),
        before,
        "after {cycles} run --rm cycles"
    );
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn soak_detached_exec_stop_rm_cycles_leave_the_host_as_it_was() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    let before = host_footprint(&env);
    let cycles = soak_cycles(1000) / 5;
    for _ in 0..cycles {
        let id = env.run_detached(&["busybox", "sleep", "1000"]);
        env.mcm(&["exec", &id, "true"]).ok();
        env.mcm(&["stop", "-t", "2", &id]).ok();
        env.mcm(&["rm", &id]).ok();
    }
    assert_eq!(
        host_footprint(&env),
        before,
        "after {cycles} run -d/exec/stop/rm cycles"
    );
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn killing_rm_midway_leaves_a_removable_container() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    for delay_ms in [0u64, 1, 3, 6, 10] {
        let id = env.run_detached(&["busybox", "sleep", "1000"]);
        let mut rm = env
            .command(&["rm", "-f", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = rm.kill();
        let _ = rm.wait();
        // Whatever it got through, the rerun finishes the job.
        let again = env.mcm(&["rm", "-f", &id]);
        assert!(
            again.code == 0 || again.stderr.contains("no such container"),
            "{}",
            again.stderr
        );
    }
    env.finish();
}

#[test]
fn a_full_state_root_fails_cleanly_and_keeps_metadata() {
    use nix::mount::{mount, umount, MsFlags};
    let env = TestEnv::new();
    let small = env.root.path().join("small");
    fs::create_dir(&small).unwrap();
    mount(
        Some("tmpfs"),
        &small,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=8m"),
    )
    .unwrap();
    let run = |args: &[&str]| env.command(args).env("MCM_ROOT", &small).output().unwrap();
    let first = run(&["run", "-d", "--name", "kept", "busybox", "true"]);
    // Fill what is left.
    let filler = small.join("filler");
    let _ = fs::write(&filler, vec![0u8; 16 << 20]);
    let full = run(&["run", "-d", "busybox", "true"]);
    let listing = run(&["ps", "-a"]);
    let kept = String::from_utf8_lossy(&listing.stdout).contains("kept");
    let _ = run(&["rm", "-f", "kept"]);
    umount(&small).unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(full.status.code(), Some(125));
    let err = String::from_utf8_lossy(&full.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(kept, "existing metadata damaged");
    env.finish();
}
