//! run / ps / stop / start / rm / logs / inspect, names and prefixes.

use std::time::Duration;

use crate::env::TestEnv;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn foreground_run_prints_output_and_records_exit() {
    let env = TestEnv::new();
    let out = env.mcm(&["run", "--name", "hello", "busybox", "echo", "hello"]);
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ps = env.mcm(&["ps", "-a"]).ok();
    let line = ps
        .lines()
        .find(|l| l.contains("hello"))
        .expect("container listed");
    assert!(line.contains("Exited (0)"), "{ps}");
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    // Running-only listing does not show it.
    assert!(!env.mcm(&["ps"]).ok().contains("hello"));
    env.finish();
}

#[test]
fn detached_run_stop_start_keeps_writable_layer() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "--name",
        "keeper",
        "busybox",
        "sh",
        "-c",
        "cat /data 2>/dev/null || echo fresh; echo kept > /data; exec sleep 1000",
    ]);
    assert_eq!(env.inspect(&id, "/State/Status"), "running");
    let pid = env.inspect(&id, "/State/Pid").as_i64().unwrap();
    assert!(pid > 1 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    let ps = env.mcm(&["ps"]).ok();
    let line = ps
        .lines()
        .find(|l| l.starts_with(&id[..12]))
        .expect("listed by ps");
    assert!(line.contains("Up "), "{line}");
    assert!(line.contains(&pid.to_string()), "{line}");

    env.mcm(&["stop", "-t", "5", "keeper"]).ok();
    assert_eq!(env.inspect(&id, "/State/Status"), "exited");
    // sleep has no SIGTERM handler: killed by signal 15.
    assert_eq!(env.inspect(&id, "/State/ExitCode"), 143);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/ns")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
    );

    env.mcm(&["start", &id[..10]]).ok();
    env.wait_status(&id, "running", WAIT);
    env.wait_for("second run output", WAIT, || {
        env.mcm(&["logs", &id]).stdout.contains("kept")
    });
    let logs = env.mcm(&["logs", &id]).ok();
    assert_eq!(logs, "fresh\nkept\n");
    env.finish();
}

#[test]
fn stop_escalates_to_sigkill_after_timeout() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    let started = std::time::Instant::now();
    env.mcm(&["stop", "-t", "1", &id]).ok();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(env.inspect(&id, "/State/ExitCode"), 137);
    assert!(env.mcm(&["ps", "-a"]).ok().contains("Exited (137)"));
    assert!(
        env.leftover_processes().is_empty(),
        "processes survive stop"
    );
    env.finish();
}

#[test]
fn rm_refuses_running_container_without_force() {
    let env = TestEnv::new();
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    let out = env.mcm(&["rm", &id]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("running"), "{}", out.stderr);
    assert_eq!(env.inspect(&id, "/State/Status"), "running");
    env.mcm(&["rm", "-f", &id]).ok();
    assert!(env.container_dirs().is_empty());
    assert!(env.leftover_cgroups().is_empty());
    let out = env.mcm(&["rm", &id]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("no such container"), "{}", out.stderr);
    env.finish();
}

#[test]
fn delete_alias_and_id_flag() {
    let env = TestEnv::new();
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    env.mcm(&["stop", "--id", &id, "-t", "1"]).ok();
    env.mcm(&["delete", "--id", &id]).ok();
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn foreground_rm_leaves_nothing() {
    let env = TestEnv::new();
    let out = env.mcm(&["run", "--rm", "busybox", "sh", "-c", "echo bye; exit 3"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "bye\n");
    assert!(
        env.container_dirs().is_empty(),
        "{:?}",
        env.container_dirs()
    );
    assert!(env.leftover_cgroups().is_empty());
    env.finish();
}

#[test]
fn detached_rm_is_removed_after_exit() {
    let env = TestEnv::new();
    let id = env.run_detached(&["--rm", "busybox", "true"]);
    env.wait_for("auto-removal", WAIT, || {
        !env.mcm(&["ps", "-aq"]).ok().contains(&id[..12])
    });
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn rm_layer_is_volatile_and_can_be_mounted_again() {
    let env = TestEnv::new();
    let overlay_options = "grep ' / / ' /proc/self/mountinfo";
    let kept = env
        .mcm(&["run", "busybox", "sh", "-c", overlay_options])
        .ok();
    assert!(!kept.contains("volatile"), "{kept}");
    // Exits at once; `--rm -d` containers are removed when next listed, so
    // until then it can be started again over the same work dir, which a
    // volatile mount marks as unusable.
    let id = env.run_detached(&["--rm", "busybox", "sh", "-c", overlay_options]);
    env.wait_status(&id, "exited", WAIT);
    let first = env.mcm(&["logs", &id]).ok();
    assert!(first.contains("volatile"), "{first}");
    let again = env.mcm(&["start", "-a", &id]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("volatile"), "{}", again.stdout);
    env.mcm(&["rm", &id]).ok();
    env.finish();
}

#[test]
fn names_ids_and_prefixes_resolve() {
    let env = TestEnv::new();
    let id = env.run_detached(&["--name", "web", "busybox", "sleep", "1000"]);
    let dup = env.mcm(&["run", "-d", "--name", "web", "busybox", "sleep", "1"]);
    assert_eq!(dup.code, 125);
    assert!(dup.stderr.contains("already in use"), "{}", dup.stderr);
    assert_eq!(env.container_dirs().len(), 1, "the refused run left state");
    for query in [id.as_str(), &id[..12], &id[..5], "web"] {
        assert_eq!(env.inspect(query, "/Id"), id.as_str(), "query {query}");
    }
    for bad in ["nope", "../../etc", "", "."] {
        let out = env.mcm(&["inspect", bad]);
        assert_eq!(out.code, 125, "{bad}");
        assert!(
            out.stderr.contains("no such container"),
            "{bad}: {}",
            out.stderr
        );
    }
    env.finish();
}

#[test]
fn invalid_names_are_refused_and_leave_nothing() {
    let env = TestEnv::new();
    let long = "n".repeat(300);
    for name in ["a/b", "..", "has space", long.as_str(), ""] {
        let out = env.mcm(&["run", "--name", name, "busybox", "true"]);
        assert_eq!(out.code, 125, "{name:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn logs_tail_and_follow() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4; do echo line$i; done; echo err >&2; sleep 1",
    ]);
    let follow = env.mcm(&["logs", "-f", &id]).ok();
    assert_eq!(follow, "line1\nline2\nline3\nline4\nerr\n");
    assert_eq!(env.mcm(&["logs", "--tail", "2", &id]).ok(), "line4\nerr\n");
    env.finish();
}

#[test]
fn ps_formats() {
    let env = TestEnv::new();
    let id = env.run_detached(&["--name", "fmt", "busybox", "sleep", "1000"]);
    assert_eq!(env.mcm(&["ps", "-q"]).ok(), format!("{}\n", &id[..12]));
    let json: serde_json::Value =
        serde_json::from_str(&env.mcm(&["ps", "--format", "json"]).ok()).unwrap();
    assert_eq!(json[0]["Id"], id.as_str());
    assert_eq!(json[0]["Name"], "fmt");
    assert_eq!(json[0]["State"]["Status"], "running");
    let list = env.mcm(&["list"]).ok();
    assert!(
        list.contains("fmt") && list.contains("\"sleep 1000\""),
        "{list}"
    );
    env.finish();
}

#[test]
fn inspect_reports_config_state_and_paths() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "--name", "insp", "-e", "A=1", "-w", "/tmp", "busybox", "sh", "-c", "exit 4",
    ]);
    env.wait_status(&id, "exited", WAIT);
    assert_eq!(env.inspect(&id, "/State/ExitCode"), 4);
    assert_eq!(env.inspect(&id, "/Name"), "insp");
    assert_eq!(env.inspect(&id, "/Config/WorkingDir"), "/tmp");
    assert!(env
        .inspect(&id, "/Config/Env")
        .as_array()
        .unwrap()
        .contains(&"A=1".into()));
    assert!(env.inspect(&id, "/State/FinishedAt").is_string());
    assert!(env.inspect(&id, "/State/StartedAt").is_string());
    let upper = env.inspect(&id, "/GraphDriver/Data/UpperDir");
    assert!(std::path::Path::new(upper.as_str().unwrap()).is_dir());
    assert!(env.mcm(&["ps", "-a"]).ok().contains("Exited (4)"));
    env.finish();
}

#[test]
fn long_listing_keeps_creation_order() {
    // Enough containers for `ps` to read them on two threads.
    let env = TestEnv::new();
    let ids: Vec<String> = (0..70)
        .map(|_| env.run_detached(&["busybox", "true"])[..12].to_string())
        .collect();
    let listed: Vec<String> = env
        .mcm(&["ps", "-aq"])
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert!(
        listed == ids || listed == newest_first,
        "{listed:?} is not in creation order"
    );
    env.finish();
}
