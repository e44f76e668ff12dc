//! Attempts to break out of a default container: each test fails if the
//! attempt succeeds.

use std::fs;

use crate::env::TestEnv;

/// Runs a shell script in a default container and returns its output.
fn inside(env: &TestEnv, extra: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let out = env.mcm(&args);
    format!("{}{}", out.stdout, out.stderr)
}

fn status_field(text: &str, field: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn setuid_files_in_a_layer_are_out_of_host_users_reach() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let id = env.run_detached(&[
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /suid && chmod 4755 /suid && exec sleep 1000",
    ]);
    let dir = env.containers_dir().join(&id);
    let suid = dir.join("upper/suid");
    env.wait_for(
        "the setuid copy",
        std::time::Duration::from_secs(30),
        || suid.exists(),
    );
    let mode = fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "container directory mode {mode:o}");
    env.mcm(&["rm", "-f", &id]).ok();
    env.finish();
}

#[test]
fn default_capabilities_and_seccomp_are_dockers() {
    let env = TestEnv::new();
    let status = inside(&env, &[], "cat /proc/self/status");
    // Docker's 14 default capabilities.
    for set in ["CapEff", "CapPrm", "CapBnd", "CapInh"] {
        assert_eq!(
            status_field(&status, set),
            "00000000a80425fb",
            "{set}\n{status}"
        );
    }
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
    // exec'd processes get the same.
    let id = env.run_detached(&["busybox", "sleep", "1000"]);
    let exec_status = env.mcm(&["exec", &id, "cat", "/proc/self/status"]).ok();
    assert_eq!(status_field(&exec_status, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&exec_status, "Seccomp"), "2");
    env.finish();
}

#[test]
fn capability_flags() {
    let env = TestEnv::new();
    let status = inside(
        &env,
        &["--cap-drop", "ALL", "--cap-add", "CHOWN"],
        "cat /proc/self/status",
    );
    assert_eq!(status_field(&status, "CapEff"), "0000000000000001");
    let status = inside(
        &env,
        &["--cap-add", "NET_ADMIN", "--cap-drop", "kill"],
        "cat /proc/self/status",
    );
    let mask = u64::from_str_radix(&status_field(&status, "CapEff"), 16).unwrap();
    assert_ne!(mask & (1 << 12), 0, "NET_ADMIN missing");
    assert_eq!(mask & (1 << 5), 0, "KILL kept");
    let status = inside(&env, &["--privileged"], "cat /proc/self/status");
    assert_eq!(status_field(&status, "Seccomp"), "0");
    assert_ne!(
        u64::from_str_radix(&status_field(&status, "CapEff"), 16).unwrap() & (1 << 21),
        0
    );
    let out = env.mcm(&["run", "--rm", "--cap-add", "BOGUS", "busybox", "true"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("BOGUS"), "{}", out.stderr);
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn mounting_and_namespaces_are_refused() {
    let env = TestEnv::new();
    let out = inside(
        &env,
        &[],
        "mount -t tmpfs none /mnt && echo MOUNTED; umount /proc && echo UMOUNTED; \
         unshare -m true && echo UNSHARED; unshare -n true && echo NETNS; echo done",
    );
    for bad in ["MOUNTED", "UMOUNTED", "UNSHARED", "NETNS"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    assert!(out.contains("done"));
    env.finish();
}

#[test]
fn kernel_interfaces_are_masked_or_read_only() {
    let env = TestEnv::new();
    let out = inside(
        &env,
        &[],
        "echo h > /proc/sysrq-trigger && echo SYSRQ; echo 1 > /proc/sys/kernel/sysrq && echo SYSCTL; \
         head -c 100 /proc/kcore 2>/dev/null | wc -c; cat /proc/keys 2>/dev/null | wc -c; \
         ls /sys/firmware | wc -l; insmod /bin/busybox 2>&1; echo done",
    );
    assert!(!out.contains("SYSRQ") && !out.contains("SYSCTL"), "{out}");
    let counts: Vec<&str> = out
        .lines()
        .filter(|l| l.trim().parse::<u64>().is_ok())
        .collect();
    assert_eq!(counts, ["0", "0", "0"], "{out}");
    assert!(
        out.contains("Operation not permitted") || out.contains("not permitted"),
        "module load: {out}"
    );
    env.finish();
}

#[test]
fn a_host_disk_node_cannot_be_read() {
    let env = TestEnv::new();
    // The host's root disk, by its device number.
    let root_dev = std::os::unix::fs::MetadataExt::dev(&fs::metadata("/").unwrap());
    let (major, minor) = (
        nix::sys::stat::major(root_dev),
        nix::sys::stat::minor(root_dev),
    );
    let script = format!(
        "mknod /tmp/disk b {major} {minor}; head -c 512 /tmp/disk | wc -c; \
         mknod /dev/disk b {major} {minor}; head -c 512 /dev/disk | wc -c; echo done"
    );
    let out = inside(&env, &[], &script);
    assert!(
        !out.lines().any(|l| l.trim() == "512"),
        "host disk readable: {out}"
    );
    assert!(out.contains("done"));
    env.finish();
}

#[test]
fn no_new_privileges_is_set_for_run_and_exec() {
    let env = TestEnv::new();
    // With no_new_privs the kernel ignores setuid bits and file
    // capabilities on exec, for the process and all its descendants.
    let status = inside(
        &env,
        &["--security-opt", "no-new-privileges"],
        "sh -c 'cat /proc/self/status'",
    );
    assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{status}");
    let id = env.run_detached(&[
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "sleep",
        "1000",
    ]);
    let exec_status = env.mcm(&["exec", &id, "cat", "/proc/self/status"]).ok();
    assert_eq!(status_field(&exec_status, "NoNewPrivs"), "1");
    let default = inside(&env, &[], "cat /proc/self/status");
    assert_eq!(status_field(&default, "NoNewPrivs"), "0");
    env.finish();
}

#[test]
fn host_processes_cannot_be_killed() {
    let env = TestEnv::new();
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let out = inside(
        &env,
        &[],
        &format!("kill -9 {} 2>&1; echo done", bystander.id()),
    );
    assert!(out.contains("done"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a host process was killed: {out}"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    env.finish();
}

#[test]
fn seccomp_profiles() {
    let env = TestEnv::new();
    let out = inside(
        &env,
        &["--security-opt", "seccomp=unconfined"],
        "grep Seccomp: /proc/self/status",
    );
    assert!(out.contains('0'), "{out}");
    // A Docker-format profile that refuses mkdir (and mkdirat) only.
    let profile = env.root.path().join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = inside(
        &env,
        &["--security-opt", &opt],
        "mkdir /tmp/x && echo MADE; echo done",
    );
    assert!(!out.contains("MADE") && out.contains("done"), "{out}");
    let bad = env.mcm(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/no/such.json",
        "busybox",
        "true",
    ]);
    assert_eq!(bad.code, 125);
    assert!(env.container_dirs().is_empty());
    env.finish();
}

#[test]
fn volumes_tmpfs_and_read_only_root() {
    let env = TestEnv::new();
    let shared = env.root.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join("in"), "from host").unwrap();
    let rw = format!("{}:/data", shared.display());
    let out = inside(&env, &["-v", &rw], "cat /data/in; echo back > /data/out");
    assert!(out.contains("from host"), "{out}");
    assert_eq!(fs::read_to_string(shared.join("out")).unwrap(), "back\n");
    let ro = format!("{}:/data:ro", shared.display());
    let out = inside(
        &env,
        &["-v", &ro],
        "echo x > /data/nope && echo WROTE; echo done",
    );
    assert!(!out.contains("WROTE"), "{out}");
    let mount = format!("type=bind,src={},dst=/m,readonly", shared.display());
    let out = inside(
        &env,
        &["--mount", &mount],
        "cat /m/in; touch /m/x && echo WROTE",
    );
    assert!(out.contains("from host") && !out.contains("WROTE"), "{out}");
    let out = inside(
        &env,
        &["--read-only", "--tmpfs", "/tmp:size=1m"],
        "touch /tmp/ok && echo tmp-ok; touch /x && echo WROTE; grep ' /tmp ' /proc/self/mountinfo",
    );
    assert!(out.contains("tmp-ok") && !out.contains("WROTE"), "{out}");
    assert!(out.contains("size=1024k"), "{out}");
    env.finish();
}

#[test]
fn a_bind_mount_through_an_image_symlink_stays_inside() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    // An image whose /data is a symlink to /etc.
    let image = env.root.path().join("evil-rootfs");
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            &format!("{}/images/busybox/rootfs", env.root.path().display()),
            image.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/etc", image.join("data")).unwrap();
    let volume = env.root.path().join("vol");
    fs::create_dir(&volume).unwrap();
    let spec = format!("{}:/data", volume.display());
    let marker = format!("mcm-escape-{}", std::process::id());
    env.mcm(&[
        "run",
        "--rm",
        "-v",
        &spec,
        image.to_str().unwrap(),
        "sh",
        "-c",
        &format!("echo x > /data/{marker}"),
    ])
    .ok();
    assert!(
        !std::path::Path::new("/etc").join(&marker).exists(),
        "the bind mount landed on the host's /etc"
    );
    assert!(
        volume.join(&marker).exists(),
        "the volume was not mounted at the container's /etc"
    );
    env.finish();
}

#[test]
fn userns_remap_root_inside_is_not_root_outside() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    let volume = env.root.path().join("userns-vol");
    fs::create_dir(&volume).unwrap();
    fs::set_permissions(&volume, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let spec = format!("{}:/data", volume.display());
    let out = inside(
        &env,
        &["--userns", "remap", "-v", &spec],
        "id -u; stat -c %u /etc/passwd; touch /data/made; cat /proc/self/uid_map",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {out}");
    assert_eq!(lines[1], "0", "image files owned by root inside: {out}");
    let owner = fs::metadata(volume.join("made")).unwrap().uid();
    assert_ne!(
        owner, 0,
        "a file made by the container's root belongs to host root"
    );
    assert!(
        lines[2].split_whitespace().nth(1) == Some(&owner.to_string()),
        "{out}"
    );
    // exec and stop work in it, and exec'd processes are in its namespace.
    let id = env.run_detached(&["--userns", "remap", "busybox", "sleep", "1000"]);
    let map = env.mcm(&["exec", &id, "cat", "/proc/self/uid_map"]).ok();
    assert_eq!(
        map.split_whitespace().nth(1),
        Some(owner.to_string().as_str()),
        "{map}"
    );
    env.mcm(&["stop", "-t", "1", &id]).ok();
    assert_eq!(env.inspect(&id, "/State/Status"), "exited");
    env.finish();
}

/// Calls each system call with zero arguments through the host's perl
/// (bound read-only into the container) and prints `NR=errno`.
fn syscall_errnos(env: &TestEnv, extra: &[&str]) -> std::collections::HashMap<u32, String> {
    // keyctl, add_key, bpf, init_module, kexec_load, open_by_handle_at,
    // ptrace, clock_settime, unshare (x86_64 numbers).
    let script = "for my $n (250, 248, 321, 175, 246, 304, 101, 227, 272) { \
                  my $r = syscall($n, 0, 0, 0, 0, 0); print \"$n=\", ($r == -1 ? $!+0 : 'ok'), \"\\n\" }";
    let mut args = vec![
        "run",
        "--rm",
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/lib:/lib:ro",
        "-v",
        "/lib64:/lib64:ro",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "/usr/bin/perl", "-e", script]);
    env.mcm(&args)
        .ok()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, e)| (n.parse().unwrap(), e.to_string()))
        .collect()
}

#[test]
fn seccomp_refuses_dangerous_system_calls() {
    if !cfg!(target_arch = "x86_64") || !std::path::Path::new("/usr/bin/perl").exists() {
        panic!("this test needs x86_64 and the host's /usr/bin/perl");
    }
    let env = TestEnv::new();
    let confined = syscall_errnos(&env, &[]);
    let unconfined = syscall_errnos(&env, &["--security-opt", "seccomp=unconfined"]);
    assert_eq!(confined.len(), 9, "{confined:?}");
    for (nr, errno) in &confined {
        assert_eq!(
            errno, "1",
            "syscall {nr} was not refused with EPERM: {confined:?}"
        );
    }
    // Without the filter the kernel answers differently: the filter is
    // what refused them.
    // (keyctl, ptrace and unshare: answered without the filter whatever
    // the capabilities; bpf or init_module may be refused for lack of them.)
    for nr in [250, 101, 272] {
        assert_ne!(unconfined[&nr], "1", "syscall {nr}: {unconfined:?}");
    }
    env.finish();
}

#[test]
fn no_new_privileges_stops_a_setuid_binary_from_raising_privileges() {
    let env = TestEnv::new();
    // A setuid-root copy of the host's perl, run as nobody, reports its
    // effective uid: 0 when setuid works, 65534 under no_new_privs.
    let script = "cp /usr/bin/perl /tmp/sperl; chmod 4755 /tmp/sperl; \
                  setpriv --reuid 65534 --regid 65534 --clear-groups /tmp/sperl -e 'print $>, qq(\\n)'";
    let host_libs = [
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/lib:/lib:ro",
        "-v",
        "/lib64:/lib64:ro",
    ];
    let mut plain = host_libs.to_vec();
    plain.extend_from_slice(&["busybox", "sh", "-c", script]);
    let mut nnp = vec!["--security-opt", "no-new-privileges"];
    nnp.extend_from_slice(&plain);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        env.mcm(&all).ok()
    };
    assert_eq!(
        run(&plain).trim(),
        "0",
        "setuid does not work at all: the test proves nothing"
    );
    assert_eq!(
        run(&nnp).trim(),
        "65534",
        "setuid raised privileges under no-new-privileges"
    );
    env.finish();
}
