//! The image store and rootfs paths.

use crate::env::TestEnv;

#[test]
fn import_directory_and_tarball_then_run_and_remove() {
    let env = TestEnv::new();
    // The built-in image is built on first use.
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    let rootfs = env.root.path().join("images/busybox/rootfs");
    assert!(rootfs.join("bin/busybox").is_file());

    env.mcm(&["image", "import", "copy", rootfs.to_str().unwrap()])
        .ok();
    let tarball = env.root.path().join("rootfs.tar.gz");
    {
        let file = std::fs::File::create(&tarball).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", &rootfs).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }
    env.mcm(&["image", "import", "fromtar", tarball.to_str().unwrap()])
        .ok();
    let ls = env.mcm(&["image", "ls"]).ok();
    for name in ["busybox", "copy", "fromtar"] {
        assert!(
            ls.lines().any(|l| l.starts_with(name)),
            "{name} not listed: {ls}"
        );
    }
    assert_eq!(
        env.mcm(&["run", "--rm", "fromtar", "echo", "from tar"])
            .ok(),
        "from tar\n"
    );
    let id = env.run_detached(&["copy", "sleep", "1000"]);
    let refused = env.mcm(&["image", "rm", "copy"]);
    assert_eq!(refused.code, 125);
    assert!(refused.stderr.contains("in use"), "{}", refused.stderr);
    env.mcm(&["rm", "-f", &id]).ok();
    env.mcm(&["image", "rm", "copy"]).ok();
    assert!(!env.mcm(&["image", "ls"]).ok().contains("copy"));
    let dup = env.mcm(&["image", "import", "fromtar", tarball.to_str().unwrap()]);
    assert_eq!(dup.code, 125);
    env.finish();
}

#[test]
fn rootfs_path_as_image() {
    let env = TestEnv::new();
    env.mcm(&["run", "--rm", "busybox", "true"]).ok();
    let rootfs = env.root.path().join("images/busybox/rootfs");
    let out = env
        .mcm(&["run", "--rm", rootfs.to_str().unwrap(), "echo", "path"])
        .ok();
    assert_eq!(out, "path\n");
    let missing = env.mcm(&["run", "--rm", "/no/such/rootfs", "true"]);
    assert_eq!(missing.code, 125);
    assert!(
        missing.stderr.contains("/no/such/rootfs"),
        "{}",
        missing.stderr
    );
    env.finish();
}
