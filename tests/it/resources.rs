//! Limits, pause/unpause, OOM and usage figures, checked against the cgroup
//! files themselves (v1 or v2, whichever the host has).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::env::TestEnv;

const WAIT: Duration = Duration::from_secs(60);

/// True on a pure cgroup v2 host.
fn is_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup file of a container: `v1_controller/<file>` on v1, `<v2_file>` on v2.
fn cgroup_file(env: &TestEnv, id: &str, v1: (&str, &str), v2: &str) -> PathBuf {
    if is_v2() {
        PathBuf::from(format!("/sys/fs/cgroup/{}/{id}/{v2}", env.cgroup_parent))
    } else {
        PathBuf::from(format!(
            "/sys/fs/cgroup/{}/{}/{id}/{}",
            v1.0, env.cgroup_parent, v1.1
        ))
    }
}

fn read(path: &PathBuf) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The container's CPU time in microseconds.
fn cpu_usage_us(env: &TestEnv, id: &str) -> u64 {
    if is_v2() {
        let stat = read(&cgroup_file(env, id, ("", ""), "cpu.stat"));
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .unwrap()
            .parse()
            .unwrap()
    } else {
        read(&cgroup_file(env, id, ("cpuacct", "cpuacct.usage"), ""))
            .parse::<u64>()
            .unwrap()
            / 1000
    }
}

#[test]
fn limits_are_written_to_the_cgroup() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        read(&cgroup_file(
            &env,
            &id,
            ("memory", "memory.limit_in_bytes"),
            "memory.max"
        )),
        "67108864"
    );
    assert_eq!(
        read(&cgroup_file(&env, &id, ("pids", "pids.max"), "pids.max")),
        "20"
    );
    if is_v2() {
        assert_eq!(
            read(&cgroup_file(&env, &id, ("", ""), "cpu.max")),
            "50000 100000"
        );
    } else {
        assert_eq!(
            read(&cgroup_file(&env, &id, ("cpu", "cpu.cfs_quota_us"), "")),
            "50000"
        );
        assert_eq!(
            read(&cgroup_file(&env, &id, ("cpu", "cpu.cfs_period_us"), "")),
            "100000"
        );
    }
    // No swap beyond the memory limit by default (where the kernel
    // accounts swap at all).
    let swap = cgroup_file(
        &env,
        &id,
        ("memory", "memory.memsw.limit_in_bytes"),
        "memory.swap.max",
    );
    if swap.exists() {
        assert_eq!(read(&swap), if is_v2() { "0" } else { "67108864" });
    }
    // Older CLI form; weight and CPU set; unlimited swap.
    let old = env.run_detached(&[
        "--cpu=1",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--memory",
        "32m",
        "--memory-swap",
        "-1",
        "busybox",
        "sleep",
        "1000",
    ]);
    if is_v2() {
        assert_eq!(
            read(&cgroup_file(&env, &old, ("", ""), "cpu.max")),
            "100000 100000"
        );
        // Shares 512 map to weight 20 (runc's and crun's mapping).
        assert_eq!(read(&cgroup_file(&env, &old, ("", ""), "cpu.weight")), "20");
    } else {
        assert_eq!(
            read(&cgroup_file(&env, &old, ("cpu", "cpu.cfs_quota_us"), "")),
            "100000"
        );
        assert_eq!(
            read(&cgroup_file(&env, &old, ("cpu", "cpu.shares"), "")),
            "512"
        );
    }
    assert_eq!(
        read(&cgroup_file(
            &env,
            &old,
            ("cpuset", "cpuset.cpus"),
            "cpuset.cpus"
        )),
        "0"
    );
    let swap = cgroup_file(
        &env,
        &old,
        ("memory", "memory.memsw.limit_in_bytes"),
        "memory.swap.max",
    );
    if swap.exists() {
        let value = read(&swap);
        assert!(
            value == "max" || value.parse::<u64>().unwrap() > 1 << 60,
            "swap not unlimited: {value}"
        );
    }
    assert_eq!(env.inspect(&old, "/HostConfig/NanoCpus"), 1_000_000_000);
    assert_eq!(env.inspect(&old, "/HostConfig/CpusetCpus"), "0");
    assert_eq!(env.inspect(&id, "/HostConfig/Memory"), 64 << 20);
    assert_eq!(env.inspect(&id, "/HostConfig/PidsLimit"), 20);
    env.finish();
}

#[test]
fn live_update_changes_limits_and_persists() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "1000",
    ]);
    let memory = || {
        read(&cgroup_file(
            &env,
            &id,
            ("memory", "memory.limit_in_bytes"),
            "memory.max",
        ))
    };
    let pids = || read(&cgroup_file(&env, &id, ("pids", "pids.max"), "pids.max"));
    env.mcm(&["update", "--memory", "128m", "--pids-limit", "30", &id])
        .ok();
    assert_eq!(memory(), "134217728");
    assert_eq!(pids(), "30");
    assert_eq!(env.inspect(&id, "/HostConfig/Resources/pids"), 30);

    // Refused updates change nothing.
    for args in [
        vec!["--memory", "12x"],
        vec!["--pids-limit", "0"],
        vec!["--memory-swap", "10m"],
        vec![],
    ] {
        let mut all = vec!["update"];
        all.extend_from_slice(&args);
        all.push(&id);
        let out = env.mcm(&all);
        assert_eq!(out.code, 125, "{args:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
    }
    assert_eq!((memory(), pids()), ("134217728".into(), "30".into()));

    // Kept across a restart, and an update while stopped applies at start.
    env.mcm(&["stop", "-t", "1", &id]).ok();
    env.mcm(&["update", "--pids-limit", "40", &id]).ok();
    env.mcm(&["start", &id]).ok();
    assert_eq!((memory(), pids()), ("134217728".into(), "40".into()));
    env.finish();
}

#[test]
fn bad_values_are_refused_before_anything_exists() {
    let env = TestEnv::new();
    for args in [
        vec!["--memory", "12x"],
        vec!["--memory", "1m"],
        vec!["--cpus", "-1"],
        vec!["--cpus", "4096"],
        vec!["--pids-limit", "0"],
        vec!["--cpuset-cpus", "0-4095"],
        vec!["--cpus", "half"],
        vec!["--cpu-shares", "lots"],
        vec!["--memory-swap", "100m"],
        vec!["--memory", "64m", "--memory-swap", "32m"],
    ] {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["busybox", "true"]);
        let out = env.mcm(&all);
        assert_eq!(out.code, 125, "{args:?}");
        let value = args.last().unwrap();
        assert!(out.stderr.contains(value), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1);
    }
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn memory_limit_kills_with_oom_and_shows_it() {
    let env = TestEnv::new();
    // dd's 60 MiB block is one anonymous buffer, filled from /dev/zero. A
    // second start only sleeps.
    let out = env.mcm(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "50m",
        "busybox",
        "sh",
        "-c",
        "[ -e /ran ] && exec sleep 1000; touch /ran; dd if=/dev/zero of=/dev/null bs=60M count=1",
    ]);
    assert_eq!(out.code, 137, "{}", out.stderr);
    assert_eq!(env.inspect("hog", "/State/OOMKilled"), true);
    assert_eq!(env.inspect("hog", "/State/ExitCode"), 137);
    assert!(env.mcm(&["ps", "-a"]).ok().contains("Exited (137)"));
    let status = env.mcm(&["status", "hog"]).ok();
    assert!(status.contains("OOM killed:  yes"), "{status}");
    assert!(!status.contains("OOM events:  0"), "{status}");
    // A later run killed by hand is no OOM kill: every run has a fresh
    // cgroup.
    env.mcm(&["start", "hog"]).ok();
    assert_eq!(env.inspect("hog", "/State/OOMKilled"), false);
    env.mcm(&["kill", "hog"]).ok();
    env.wait_status("hog", "exited", WAIT);
    assert_eq!(env.inspect("hog", "/State/ExitCode"), 137);
    assert_eq!(env.inspect("hog", "/State/OOMKilled"), false);
    // Within the limit the same command works.
    env.mcm(&[
        "run",
        "--rm",
        "--memory",
        "100m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=60M",
        "count=1",
    ])
    .ok();
    env.finish();
}

#[test]
fn cpu_quota_holds_a_busy_loop_near_its_share() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let (start, t0) = (cpu_usage_us(&env, &id), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let used = (cpu_usage_us(&env, &id) - start) as f64 / t0.elapsed().as_micros() as f64;
    assert!(
        (0.3..=0.7).contains(&used),
        "used {used:.2} of a CPU with --cpus 0.5"
    );
    env.finish();
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        // The subshell dies at the first failed fork; its sleeps stay.
        "(for i in $(seq 40); do sleep 1000 & done); echo forked; exec sleep 1000",
    ]);
    env.wait_for("the fork loop to end", WAIT, || {
        env.mcm(&["logs", &id]).stdout.contains("forked")
    });
    let current: u32 = read(&cgroup_file(
        &env,
        &id,
        ("pids", "pids.current"),
        "pids.current",
    ))
    .parse()
    .unwrap();
    assert!(
        (15..=20).contains(&current),
        "{current} processes with --pids-limit 20"
    );
    let logs = env.mcm(&["logs", &id]).ok();
    assert!(logs.contains("can't fork"), "{logs}");
    // The host is fine.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    env.finish();
}

#[test]
fn pause_stops_progress_and_unpause_resumes() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.1; done",
    ]);
    let upper = env
        .inspect(&id, "/GraphDriver/Data/UpperDir")
        .as_str()
        .unwrap()
        .to_string();
    let counter = || {
        fs::read_to_string(format!("{upper}/tmp/c"))
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    env.wait_for("counter", WAIT, || counter() > 2);
    env.mcm(&["pause", &id]).ok();
    assert_eq!(env.inspect(&id, "/State/Status"), "paused");
    assert!(env.mcm(&["ps"]).ok().contains("(Paused)"));
    let frozen = counter();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(counter(), frozen, "the counter advanced while paused");
    let exec = env.mcm(&["exec", &id, "true"]);
    assert_eq!(exec.code, 125);
    assert!(exec.stderr.contains("paused"), "{}", exec.stderr);
    assert!(env
        .mcm(&["status", &id])
        .ok()
        .contains("State:       paused"));
    assert_eq!(env.mcm(&["pause", &id]).code, 125);
    env.mcm(&["resume", "--id", &id]).ok();
    env.wait_for("counter to move again", WAIT, || counter() > frozen);
    let unpause = env.mcm(&["unpause", &id]);
    assert_eq!(unpause.code, 125);
    assert!(unpause.stderr.contains("is running"), "{}", unpause.stderr);
    env.mcm(&["freeze", &id]).ok();
    env.mcm(&["stop", "-t", "1", &id]).ok();
    assert_eq!(env.inspect(&id, "/State/Status"), "exited");
    let stopped = env.mcm(&["pause", &id]);
    assert_eq!(stopped.code, 125);
    assert!(stopped.stderr.contains("is exited"), "{}", stopped.stderr);
    let other = env.run_detached(&["busybox", "sleep", "1000"]);
    env.mcm(&["pause", &other]).ok();
    env.mcm(&["rm", "-f", &other]).ok();
    env.finish();
}

#[test]
fn status_and_stats_match_the_cgroup() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "--name",
        "watched",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "sleep 1000 & sleep 1000",
    ]);
    let status = env.mcm(&["status", &id]).ok();
    for expected in [
        "State:",
        "running",
        "Memory:",
        "64MiB",
        "PIDs:",
        "/ 20",
        "Network:",
        "OOM events:  0",
        "CPU:",
        "Uptime:",
    ] {
        assert!(status.contains(expected), "{expected} missing:\n{status}");
    }
    let pids = read(&cgroup_file(
        &env,
        &id,
        ("pids", "pids.current"),
        "pids.current",
    ));
    let json: serde_json::Value =
        serde_json::from_str(&env.mcm(&["stats", "--no-stream", "--format", "json"]).ok()).unwrap();
    assert_eq!(json[0]["Name"], "watched");
    assert_eq!(json[0]["PIDs"].to_string(), pids);
    assert_eq!(json[0]["MemLimit"], 64 * 1024 * 1024);
    let table = env.mcm(&["monitor", "--no-stream", "--id", &id]).ok();
    assert!(
        table.starts_with("CONTAINER ID") && table.contains("watched") && table.contains("64MiB"),
        "{table}"
    );
    // The live form redraws every second until its reader goes away.
    let mut live = env
        .command(&["stats"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 256];
    let n = std::io::Read::read(live.stdout.as_mut().unwrap(), &mut first).unwrap();
    let frame = String::from_utf8_lossy(&first[..n]);
    assert!(frame.starts_with("\x1b[2J\x1b[HCONTAINER ID"), "{frame:?}");
    drop(live.stdout.take());
    let exited = (0..100).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        live.try_wait().unwrap()
    });
    if exited.is_none() {
        live.kill().ok();
        live.wait().ok();
        panic!("mcm stats kept running with no reader");
    }
    env.finish();
}
