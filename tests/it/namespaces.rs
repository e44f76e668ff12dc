//! What a container is: namespaces, root, kernel filesystems, /dev, /etc.

use crate::env::{host_ns, TestEnv};

#[test]
fn namespaces_differ_from_the_host() {
    let env = TestEnv::new();
    let out = env
        .mcm(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "for n in pid mnt uts ipc net; do readlink /proc/self/ns/$n; done",
        ])
        .ok();
    let inside: Vec<&str> = out.lines().collect();
    for (i, ns) in ["pid", "mnt", "uts", "ipc", "net"].iter().enumerate() {
        assert_ne!(inside[i], host_ns(ns), "{ns} namespace is the host's");
    }
    env.finish();
}

#[test]
fn network_none_has_only_lo_up_and_host_shares() {
    let env = TestEnv::new();
    let out = env
        .mcm(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ls /sys/class/net; cat /sys/class/net/lo/flags",
        ])
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "{out}");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is down: {out}");
    let out = env.mcm(&[
        "run",
        "--rm",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "127.0.0.1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = env
        .mcm(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "readlink",
            "/proc/self/ns/net",
        ])
        .ok();
    assert_eq!(out.trim(), host_ns("net"));
    env.finish();
}

#[test]
fn hostname_defaults_to_short_id() {
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hostname; grep -c $(hostname) /etc/hosts",
    ]);
    env.wait_status(&id, "exited", std::time::Duration::from_secs(30));
    let short = &id[..12];
    assert_eq!(
        env.mcm(&["logs", &id]).ok(),
        format!("{short}\n{short}\n1\n")
    );
    let out = env
        .mcm(&["run", "--rm", "--hostname", "box", "busybox", "hostname"])
        .ok();
    assert_eq!(out, "box\n");
    env.finish();
}

#[test]
fn root_is_overlay_after_pivot_root_and_host_is_unreachable() {
    let env = TestEnv::new();
    let marker = env.root.path().join("host-marker");
    std::fs::write(&marker, "secret").unwrap();
    // The chroot trick: a chroot without chdir leaves the cwd outside the
    // new root, and `..` walks up from there to the real root.
    let script = format!(
        "grep ' / / ' /proc/self/mountinfo; cat {m} 2>&1; mkdir -p /x/bin; cp /bin/busybox /x/bin/; \
         cd /x; chroot . /bin/busybox sh -c 'cd ../../../../..; /bin/busybox cat {m}' 2>&1; echo end",
        m = marker.display(),
    );
    let out = env
        .mcm(&["run", "--rm", "busybox", "sh", "-c", &script])
        .ok();
    assert!(out.lines().next().unwrap().contains(" - overlay "), "{out}");
    assert!(!out.contains("secret"), "host file visible: {out}");
    assert!(out.contains("end"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" / / ")).count(),
        1,
        "old root still mounted: {out}"
    );
    env.finish();
}

#[test]
fn kernel_filesystems_and_devices() {
    let env = TestEnv::new();
    let script = "ls /dev; ls /dev/pts; echo x > /sys/kernel/notes 2>&1 || echo sys-ro; \
                  grep -E ' /(proc|dev|dev/pts|dev/shm|sys) ' /proc/self/mountinfo | awk '{print $5, $8}'; \
                  head -c 4 /dev/zero | wc -c; echo ok > /dev/null && echo null-ok; ps -o pid,comm | head -3";
    let out = env
        .mcm(&["run", "--rm", "busybox", "sh", "-c", script])
        .ok();
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd", "stdin",
    ] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing: {out}");
    }
    assert!(out.contains("sys-ro"), "/sys writable: {out}");
    for mount in [
        "/proc proc",
        "/dev tmpfs",
        "/dev/pts devpts",
        "/dev/shm tmpfs",
        "/sys sysfs",
    ] {
        assert!(out.contains(mount), "{mount} missing: {out}");
    }
    assert!(out.contains("null-ok"));
    assert!(out.contains("\n4\n"), "{out}");
    // ps inside sees the container's PID namespace: mcm's init is PID 1.
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("mcm-executor")),
        "{out}"
    );
    env.finish();
}

#[test]
fn writes_stay_in_the_container_layer() {
    let env = TestEnv::new();
    env.mcm(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo changed > /bin/marker; rm /bin/ls",
    ])
    .ok();
    let out = env
        .mcm(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ls /bin/marker 2>&1; ls / >/dev/null && echo ls-present",
        ])
        .ok();
    assert!(out.contains("ls-present"), "image was modified: {out}");
    assert!(out.contains("No such file"), "image was modified: {out}");
    env.finish();
}
