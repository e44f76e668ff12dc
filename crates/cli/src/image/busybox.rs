//! The built-in `busybox` image, made from the host's statically linked
//! busybox without running it: the binary is checked to be static by its
//! ELF program headers, and the applets are read from its name table.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{io_err, ImageError};

/// Where the built-in image takes busybox from, unless `MCM_BUSYBOX`
/// names another file.
pub(super) const HOST_BUSYBOX: &str = "/bin/busybox";

const HINT: &str = "the default image needs a statically linked busybox at /bin/busybox: \
                    install it with `apt-get install busybox-static`";

/// The busybox binary to build from: `$MCM_BUSYBOX` when set and not
/// empty, else [`HOST_BUSYBOX`].
pub(super) fn binary() -> PathBuf {
    std::env::var_os("MCM_BUSYBOX")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(HOST_BUSYBOX))
}

/// The message of [`ImageError::NoStaticBusybox`] for `binary`.
pub(super) fn hint(binary: &Path) -> String {
    if binary == Path::new(HOST_BUSYBOX) {
        HINT.to_string()
    } else {
        format!(
            "{HINT} (MCM_BUSYBOX points at {}, which is not one)",
            binary.display()
        )
    }
}

/// True for an ELF executable (32 or 64 bits, either byte order) that
/// has a loadable segment and no program interpreter (`PT_INTERP`), i.e.
/// is statically linked.
pub(super) fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_LOAD: u64 = 1;
    const PT_INTERP: u64 = 3;
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return false;
    }
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return false,
    };
    let little = match bytes.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return false,
    };
    let read = |at: usize, len: usize| -> Option<u64> {
        let raw = bytes.get(at..at.checked_add(len)?)?;
        let mut buf = [0u8; 8];
        if little {
            buf[..len].copy_from_slice(raw);
            Some(u64::from_le_bytes(buf))
        } else {
            buf[8 - len..].copy_from_slice(raw);
            Some(u64::from_be_bytes(buf))
        }
    };
    // e_phoff, e_phentsize and e_phnum, placed by class.
    let (phoff, phentsize, phnum) = if wide {
        (read(32, 8), read(54, 2), read(56, 2))
    } else {
        (read(28, 4), read(42, 2), read(44, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return false;
    };
    let mut loadable = false;
    for i in 0..phnum {
        // p_type is the first word of every program header.
        let Some(p_type) = phentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| read(at, 4))
        else {
            return false;
        };
        match p_type {
            PT_INTERP => return false,
            PT_LOAD => loadable = true,
            _ => {}
        }
    }
    loadable
}

/// Applets linked when the name table cannot be found in the binary: the
/// commands scripts and people reach for first.
pub(super) const FALLBACK_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "true", "false", "sleep", "ps", "kill", "mkdir", "rm", "cp", "mv",
    "ln", "chmod", "chown", "grep", "sed", "awk", "head", "tail", "wc", "env", "id", "hostname",
    "mount", "umount", "ip", "ping", "wget", "nc", "vi", "tty", "stty", "pwd", "readlink",
    "chroot", "dd", "find", "sort", "uniq", "cut", "tr", "date", "uname", "which", "test", "expr",
    "seq", "yes", "su", "top", "touch", "mknod",
];

/// The applet names of a busybox binary, read without running it.
///
/// Busybox keeps them as one packed block of sorted, NUL-terminated
/// strings that starts with `[` and `[[` and ends at an empty string.
/// Every occurrence of that start is tried; a block counts only when each
/// name is made of `[a-z0-9_.[-]`, the names strictly ascend, there are
/// at least 50 of them and `sh` and `ls` are among them.
pub(super) fn applet_names(binary: &[u8]) -> Option<Vec<String>> {
    const START: &[u8] = b"[\0[[\0";
    let mut from = 0;
    while let Some(found) = binary[from..].windows(START.len()).position(|w| w == START) {
        let start = from + found;
        if let Some(names) = applet_block(&binary[start..]) {
            return Some(names);
        }
        from = start + 1;
    }
    None
}

/// The names of a candidate block, when it passes the checks of
/// [`applet_names`].
fn applet_block(block: &[u8]) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = block;
    loop {
        let end = rest.iter().position(|&b| b == 0)?;
        let raw = &rest[..end];
        rest = &rest[end + 1..];
        if raw.is_empty() {
            break;
        }
        let valid = raw.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'[' | b'-')
        });
        let name = std::str::from_utf8(raw).ok().filter(|_| valid)?;
        // Ascending from "[" also rules out "." and "..".
        if names.last().is_some_and(|last| last.as_str() >= name) {
            return None;
        }
        names.push(name.to_string());
    }
    let has = |wanted: &str| names.iter().any(|n| n == wanted);
    (names.len() >= 50 && has("sh") && has("ls")).then_some(names)
}

/// Writes the built-in image's files into the empty `rootfs`: the binary
/// as `bin/busybox`, a `bin/<applet>` symlink to it for every applet, the
/// usual top-level directories, a minimal passwd and group, and empty
/// `/etc` files for the runtime to bind-mount over.
pub(super) fn write_rootfs(
    rootfs: &Path,
    busybox: &[u8],
    applets: &[String],
) -> Result<(), ImageError> {
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("var", 0o755),
        ("run", 0o755),
    ] {
        let path = rootfs.join(dir);
        fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &path))?;
    }
    let binary = rootfs.join("bin/busybox");
    fs::write(&binary, busybox).map_err(io_err("write", &binary))?;
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod", &binary))?;
    for applet in applets.iter().filter(|a| a.as_str() != "busybox") {
        let link = rootfs.join("bin").join(applet);
        symlink("/bin/busybox", &link).map_err(io_err("create", &link))?;
    }
    for (file, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
        ("etc/hosts", ""),
        ("etc/resolv.conf", ""),
        ("etc/hostname", ""),
    ] {
        let path = rootfs.join(file);
        fs::write(&path, content).map_err(io_err("write", &path))?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A packed applet table of `names`, as busybox lays it out.
    pub(in crate::image) fn applet_table(names: &[String]) -> Vec<u8> {
        let mut blob = b"[\0[[\0".to_vec();
        for n in names {
            blob.extend_from_slice(n.as_bytes());
            blob.push(0);
        }
        blob.push(0);
        blob
    }

    /// 65 sorted names including `sh`, `ls` and `busybox`.
    pub(in crate::image) fn synthetic_applets() -> Vec<String> {
        let mut names: Vec<String> = (0..60).map(|i| format!("ap{i:02}")).collect();
        names.extend(["ls", "sh", "busybox", "run-parts", "ssl_client"].map(String::from));
        names.sort();
        names
    }

    /// A minimal ELF: 64-bit little-endian header with one program header
    /// of type `p_type`, followed by `tail`.
    pub(in crate::image) fn elf(p_type: u32, tail: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2; // 64-bit
        bytes[5] = 1; // little-endian
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        bytes[64..68].copy_from_slice(&p_type.to_le_bytes());
        bytes.extend_from_slice(tail);
        bytes
    }

    #[test]
    fn parses_applet_names() {
        let names = synthetic_applets();
        // A decoy start that is not followed by a valid table.
        let mut blob = b"junk\0[\0[[\0Not Valid\0\0more".to_vec();
        blob.extend(applet_table(&names));
        blob.extend_from_slice(b"trailing\0");
        let found = applet_names(&blob).unwrap();
        assert_eq!(found[..2], ["[", "[["]);
        assert_eq!(found[2..], names[..]);

        // Too few, unsorted, duplicated, missing `sh`, a bad character,
        // unterminated: all refused.
        assert!(applet_names(&applet_table(&names[..40])).is_none());
        let mut unsorted = names.clone();
        unsorted.swap(3, 4);
        assert!(applet_names(&applet_table(&unsorted)).is_none());
        let mut duplicated = names.clone();
        duplicated.insert(5, names[5].clone());
        assert!(applet_names(&applet_table(&duplicated)).is_none());
        let no_sh: Vec<String> = names.iter().filter(|n| *n != "sh").cloned().collect();
        assert!(applet_names(&applet_table(&no_sh)).is_none());
        let mut slash = names.clone();
        slash.push("zz/x".into());
        assert!(applet_names(&applet_table(&slash)).is_none());
        let table = applet_table(&names);
        assert!(applet_names(&table[..table.len() - 1]).is_none());
        assert!(applet_names(b"").is_none());
    }

    #[test]
    fn parses_the_host_busybox() {
        let real = match fs::read(HOST_BUSYBOX) {
            Ok(real) => real,
            Err(e) => {
                eprintln!("skipped: cannot read {HOST_BUSYBOX}: {e}");
                return;
            }
        };
        if !is_static_elf(&real) {
            eprintln!("skipped: {HOST_BUSYBOX} is not statically linked");
            return;
        }
        let applets = applet_names(&real).expect("applet table of the host's busybox");
        eprintln!("{HOST_BUSYBOX}: {} applets", applets.len());
        for needed in ["sh", "ls", "ps", "top", "ip", "nc", "wget"] {
            assert!(applets.iter().any(|a| a == needed), "{needed}");
        }
    }

    #[test]
    fn recognises_static_elf() {
        assert!(is_static_elf(&elf(1, b"")));
        assert!(!is_static_elf(&elf(3, b"")), "PT_INTERP");
        assert!(!is_static_elf(&elf(6, b"")), "no PT_LOAD");
        assert!(!is_static_elf(&elf(1, b"")[..66]), "truncated");
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // 32-bit big-endian.
        let mut be = vec![0u8; 52 + 32];
        be[..4].copy_from_slice(b"\x7fELF");
        be[4] = 1;
        be[5] = 2;
        be[28..32].copy_from_slice(&52u32.to_be_bytes());
        be[42..44].copy_from_slice(&32u16.to_be_bytes());
        be[44..46].copy_from_slice(&1u16.to_be_bytes());
        be[52..56].copy_from_slice(&1u32.to_be_bytes());
        assert!(is_static_elf(&be));
        be[52..56].copy_from_slice(&3u32.to_be_bytes());
        assert!(!is_static_elf(&be));
    }

    #[test]
    fn hint_names_the_override() {
        assert_eq!(hint(Path::new(HOST_BUSYBOX)), HINT);
        let other = hint(Path::new("/opt/bb"));
        assert!(
            other.starts_with(HINT) && other.contains("/opt/bb"),
            "{other}"
        );
    }
}
