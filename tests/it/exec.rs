//! `mcm exec` through mcm-nsenter.

use std::time::Duration;

use crate::env::TestEnv;

const WAIT: Duration = Duration::from_secs(30);

fn sleeper(env: &TestEnv) -> String {
    env.run_detached(&[
        "--hostname",
        "exechost",
        "-e",
        "FROM_RUN=1",
        "-w",
        "/tmp",
        "busybox",
        "sleep",
        "1000",
    ])
}

#[test]
fn exec_sees_the_container() {
    let env = TestEnv::new();
    let id = sleeper(&env);
    // PID 2 is the container's command (mcm's init, PID 1, is not
    // inspectable from inside: it is non-dumpable).
    let script = "hostname; readlink /proc/self/ns/pid; readlink /proc/2/ns/pid; cat /proc/1/comm; \
                  grep ' / / ' /proc/self/mountinfo | cut -d' ' -f9; ls /bin/busybox; pwd; echo $FROM_RUN";
    let out = env.mcm(&["exec", &id, "sh", "-c", script]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exechost", "{out}");
    assert_eq!(
        lines[1], lines[2],
        "not in the container's pid namespace: {out}"
    );
    assert_eq!(lines[3], "mcm-executor", "{out}");
    assert_eq!(lines[4], "overlay", "{out}");
    assert_eq!(lines[5], "/bin/busybox");
    assert_eq!(lines[6], "/tmp", "the container's workdir is the default");
    assert_eq!(lines[7], "1", "the container's environment is inherited");
    let ps = env.mcm(&["exec", &id, "ps", "-o", "pid,comm"]).ok();
    assert!(
        ps.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("mcm-executor")),
        "{ps}"
    );
    env.finish();
}

#[test]
fn exec_process_is_in_the_container_cgroup_and_dies_with_stop() {
    let env = TestEnv::new();
    let id = sleeper(&env);
    env.mcm(&[
        "exec",
        "-d",
        &id,
        "sh",
        "-c",
        "echo $$ > /tmp/exec.pid; exec sleep 999",
    ])
    .ok();
    let upper = env
        .inspect(&id, "/GraphDriver/Data/UpperDir")
        .as_str()
        .unwrap()
        .to_string();
    env.wait_for("exec pid file", WAIT, || {
        std::path::Path::new(&format!("{upper}/tmp/exec.pid")).exists()
    });
    let cgroup_inside = env.mcm(&["exec", &id, "cat", "/proc/self/cgroup"]).ok();
    assert!(
        cgroup_inside.contains(&format!("/{}/{id}", env.cgroup_parent)),
        "{cgroup_inside}"
    );
    // On the host: every process of the container's cgroup is the init's
    // descendant or an exec'd one; the exec'd sleep is among them.
    let procs = env.leftover_processes();
    assert!(
        procs.len() >= 3,
        "init, sleep and exec'd sleep expected: {procs:?}"
    );
    env.mcm(&["stop", "-t", "1", &id]).ok();
    env.wait_for("all processes gone", WAIT, || {
        env.leftover_processes().is_empty()
    });
    env.finish();
}

#[test]
fn exec_exit_codes() {
    let env = TestEnv::new();
    let id = sleeper(&env);
    let cases: [(&[&str], i32); 5] = [
        (&["true"], 0),
        (&["sh", "-c", "exit 3"], 3),
        (&["/etc/passwd"], 126),
        (&["nosuchcmd"], 127),
        (&["sh", "-c", "kill -9 $$"], 137),
    ];
    for (command, expected) in cases {
        let mut args = vec!["exec", id.as_str()];
        args.extend_from_slice(command);
        let out = env.mcm(&args);
        assert_eq!(out.code, expected, "{command:?}: {}", out.stderr);
    }
    env.finish();
}

#[test]
fn exec_env_workdir_and_user() {
    let env = TestEnv::new();
    let id = sleeper(&env);
    let out = env
        .mcm(&[
            "exec",
            "-e",
            "FROM_EXEC=2",
            "-w",
            "/etc",
            "-u",
            "1000:1001",
            &id,
            "sh",
            "-c",
            "echo $FROM_RUN$FROM_EXEC; pwd; id -u; id -g",
        ])
        .ok();
    assert_eq!(out, "12\n/etc\n1000\n1001\n");
    let out = env.mcm(&["exec", "-w", "/nonexistent", &id, "true"]);
    assert_eq!(out.code, 126, "{}", out.stderr);
    env.finish();
}

#[test]
fn exec_is_refused_for_stopped_paused_or_unknown() {
    let env = TestEnv::new();
    let out = env.mcm(&["exec", "nope", "true"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("no such container"), "{}", out.stderr);
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    env.mcm(&["stop", "-t", "1", &id]).ok();
    let out = env.mcm(&["exec", &id, "true"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("exited"), "{}", out.stderr);
    env.finish();
}

#[test]
fn twenty_concurrent_execs_succeed() {
    let env = TestEnv::new();
    let id = sleeper(&env);
    let children: Vec<_> = (0..20)
        .map(|i| {
            env.command(&["exec", &id, "sh", "-c", &format!("echo {i}")])
                .output()
        })
        .collect();
    for (i, out) in children.into_iter().enumerate() {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{i}\n"));
    }
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let mut cmd = env.command(&["exec", &id, "sh", "-c", &format!("sleep 0.2; echo {i}")]);
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let out = t.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{i}\n"));
    }
    env.finish();
}

#[test]
fn exec_tty_is_a_real_terminal() {
    let env = TestEnv::new();
    let id = sleeper(&env);
    let (code, out) = crate::process::in_terminal(
        &env,
        &format!("exec -it {id} sh"),
        &["tty\n", "echo $((6*7))\n", "exit 6\n"],
    );
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("42"), "{out}");
    env.finish();
}

#[test]
fn container_cannot_write_the_helpers_through_proc_exe() {
    let env = TestEnv::new();
    let id = sleeper(&env);
    // PID 1 is mcm's init (a copy of mcm-executor), the exec'd shell's
    // parent is mcm-nsenter's relay: neither binary may be opened for writing.
    let out = env
        .mcm(&[
            "exec",
            &id,
            "sh",
            "-c",
            "echo x >> /proc/1/exe && echo WROTE-INIT; ls -l /proc/1/exe 2>&1; echo done",
        ])
        .ok();
    assert!(!out.contains("WROTE-INIT"), "{out}");
    let executor =
        std::fs::read(std::path::Path::new(crate::env::mcm_bin()).with_file_name("mcm-executor"))
            .unwrap();
    assert!(!executor.ends_with(b"x\n"), "mcm-executor was modified");
    env.finish();
}
