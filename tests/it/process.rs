//! The container's processes: exit codes, init, signals, zombies, terminals.

use std::process::Command;
use std::time::Duration;

use crate::env::{mcm_bin, TestEnv};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn exit_code_table() {
    let env = TestEnv::new();
    let cases: [(&[&str], i32); 5] = [
        (&["true"], 0),
        (&["sh", "-c", "exit 3"], 3),
        (&["/etc/passwd"], 126),
        (&["nosuchcmd"], 127),
        (&["sh", "-c", "kill -9 $$"], 137),
    ];
    for (command, expected) in cases {
        let mut args = vec!["run", "--rm", "busybox"];
        args.extend_from_slice(command);
        let out = env.mcm(&args);
        assert_eq!(out.code, expected, "{command:?}: {}", out.stderr);
    }
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn missing_command_fails_clearly_and_leaves_nothing() {
    let env = TestEnv::new();
    let out = env.mcm(&["run", "busybox", "nosuchcmd"]);
    assert_eq!(out.code, 127);
    assert!(
        out.stderr.contains("executable file not found"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let out = env.mcm(&["run", "-d", "busybox", "/no/such/file"]);
    assert_eq!(out.code, 127);
    assert!(out.stdout.is_empty(), "-d printed an id for a failed start");
    let out = env.mcm(&["run", "-d", "-w", "/nonexistent", "busybox", "true"]);
    assert_eq!(out.code, 126, "{}", out.stderr);
    assert!(out.stderr.contains("/nonexistent"), "{}", out.stderr);
    assert!(
        env.container_dirs().is_empty(),
        "{:?}",
        env.container_dirs()
    );
    assert!(env.leftover_cgroups().is_empty());
    let out = env.mcm(&["run", "no-such-image", "true"]);
    assert_eq!(out.code, 125);
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn init_is_pid_1_and_no_init_makes_the_command_pid_1() {
    let env = TestEnv::new();
    let out = env
        .mcm(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo $$; cat /proc/1/comm",
        ])
        .ok();
    let mut lines = out.lines();
    assert_ne!(
        lines.next(),
        Some("1"),
        "the command should not be PID 1: {out}"
    );
    assert_eq!(lines.next(), Some("mcm-executor"), "{out}");
    let out = env
        .mcm(&["run", "--rm", "--no-init", "busybox", "sh", "-c", "echo $$"])
        .ok();
    assert_eq!(out, "1\n");
    env.finish();
}

#[test]
fn no_init_exit_code_is_recorded_detached() {
    let env = TestEnv::new();
    let id = env.run_detached(&["--no-init", "busybox", "sh", "-c", "sleep 0.3; exit 9"]);
    env.wait_status(&id, "exited", WAIT);
    assert_eq!(env.inspect(&id, "/State/ExitCode"), 9);
    env.finish();
}

#[test]
fn init_reaps_double_forked_orphans() {
    let env = TestEnv::new();
    // The inner shell exits at once; its background sleep is re-parented to
    // PID 1 and must be reaped when it ends.
    let out = env
        .mcm(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "sh -c 'sleep 0.2 &'; sleep 1; ps -o pid,stat,comm",
        ])
        .ok();
    assert!(out.contains("sleep") || out.contains("ps"), "{out}");
    let zombies: Vec<&str> = out
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Z"))
        .collect();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}\n{out}");
    env.finish();
}

#[test]
fn signals_are_forwarded_to_the_command() {
    let env = TestEnv::new();
    let script = "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done";
    let id = env.run_detached(&["busybox", "sh", "-c", script]);
    env.wait_for("ready", WAIT, || {
        env.mcm(&["logs", &id]).stdout.contains("ready")
    });
    env.mcm(&["kill", "-s", "USR1", &id]).ok();
    env.wait_for("USR1 handled", WAIT, || {
        env.mcm(&["logs", &id]).stdout.contains("got USR1")
    });
    env.mcm(&["stop", &id]).ok();
    assert_eq!(env.inspect(&id, "/State/ExitCode"), 7);
    assert!(env.mcm(&["logs", &id]).ok().contains("got TERM"));
    env.finish();
}

#[test]
fn kill_defaults_to_sigkill() {
    let env = TestEnv::new();
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    env.mcm(&["kill", &id]).ok();
    assert_eq!(env.inspect(&id, "/State/Status"), "exited");
    assert_eq!(env.inspect(&id, "/State/ExitCode"), 137);
    let out = env.mcm(&["kill", &id]);
    assert_eq!(out.code, 125, "killing an exited container must fail");
    env.finish();
}

#[test]
fn attached_run_proxies_sigterm() {
    let env = TestEnv::new();
    let mut child = env
        .command(&[
            "run",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 5' TERM; echo up; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 3];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"up\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
    env.finish();
}

#[test]
fn env_and_workdir() {
    let env = TestEnv::new();
    let out = env
        .mcm(&[
            "run",
            "--rm",
            "-e",
            "GREETING=hi there",
            "-e",
            "HOME=/tmp",
            "-w",
            "/etc",
            "busybox",
            "sh",
            "-c",
            "echo $GREETING; echo $HOME; pwd; echo $PATH",
        ])
        .ok();
    assert_eq!(
        out,
        "hi there\n/tmp\n/etc\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    let out = env.mcm(&["run", "--rm", "-e", "NOEQUALS", "busybox", "true"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("NOEQUALS"), "{}", out.stderr);
    env.finish();
}

#[test]
fn stdin_is_attached_only_with_i() {
    let env = TestEnv::new();
    let mut child = env
        .command(&[
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "read line; echo got:$line",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"abc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:abc\n");
    let out = env
        .mcm(&["run", "--rm", "busybox", "sh", "-c", "cat; echo done"])
        .ok();
    assert_eq!(out, "done\n");
    env.finish();
}

/// Runs `mcm ARGS` under `script`, which gives it a real terminal, and
/// types `input` into it like a person: each line once the shell shows its
/// next prompt (`# `), a lone Ctrl-C a moment after the previous line.
/// Returns (exit code, what the terminal showed).
pub fn in_terminal(env: &TestEnv, args: &str, input: &[&str]) -> (i32, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let command = format!(
        "MCM_ROOT={} MCM_CGROUP_PARENT={} {} {args}",
        env.root.path().display(),
        env.cgroup_parent,
        mcm_bin()
    );
    let mut child = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let shown = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = shown.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut prompts_needed = 0;
    for chunk in input {
        if *chunk == "\u{3}" {
            std::thread::sleep(Duration::from_secs(2));
        } else {
            prompts_needed += 1;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while shown.lock().unwrap().matches("# ").count() < prompts_needed
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = stdin.write_all(chunk.as_bytes());
    }
    // Keep the terminal open until the command is done.
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let out = shown.lock().unwrap().clone();
    (status.code().unwrap_or(-1), out)
}

#[test]
fn tty_gives_a_real_terminal() {
    let env = TestEnv::new();
    let (code, out) = in_terminal(&env, "run --rm -t busybox sh -c 'tty; stty size'", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    let (code, out) = in_terminal(
        &env,
        "run --rm -it busybox sh",
        &["echo $((6*7))\n", "exit 5\n"],
    );
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("42"), "{out}");
    // Without mcm's init the command is PID 1 and the session leader.
    let (code, out) = in_terminal(
        &env,
        "run --rm -t --no-init busybox sh -c 'tty; echo pid $$'",
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/0") && out.contains("pid 1"), "{out}");
    env.finish();
}

#[test]
fn ctrl_c_in_a_tty_interrupts_the_foreground_job() {
    let env = TestEnv::new();
    // sleep is interrupted by ^C through the pty's line discipline; the
    // shell survives it (job control) and exits with the code we give.
    let (code, out) = in_terminal(
        &env,
        "run --rm -it busybox sh",
        &["sleep 100\n", "\u{3}", "echo alive\n", "exit 4\n"],
    );
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("alive"), "{out}");
    env.finish();
}

#[test]
fn detached_tty_output_reaches_the_log() {
    let env = TestEnv::new();
    let id = env.run_detached(&["-t", "busybox", "sh", "-c", "tty; echo hello; sleep 1000"]);
    env.wait_for("tty output in the log", WAIT, || {
        env.mcm(&["logs", &id]).stdout.contains("hello")
    });
    let logs = env.mcm(&["logs", &id]).ok();
    assert!(logs.contains("/dev/pts/0"), "{logs}");
    assert_eq!(env.inspect(&id, "/State/Status"), "running");
    env.finish();
}
