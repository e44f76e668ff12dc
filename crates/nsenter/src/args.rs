//! The command line `mcm` builds for `mcm-nsenter` (no framework: the
//! helper stays tiny).

use std::path::PathBuf;

/// What to join and what to run.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    /// Host PID of the container's init.
    pub pid: i32,
    /// Its start time, to refuse a recycled PID.
    pub start_time: u64,
    pub userns: bool,
    pub cgroup_procs: Vec<PathBuf>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<(u32, u32)>,
    pub tty: bool,
    pub detach: bool,
    /// Capability mask the process keeps.
    pub caps: u64,
    /// `default`, `unconfined` or the path of a Docker-format profile.
    pub seccomp: String,
    pub no_new_privs: bool,
    pub command: Vec<String>,
}

/// The usage line shown with argument errors.
pub const USAGE: &str =
    "usage: mcm-nsenter --pid PID --start-time TICKS [--userns] [--cgroup-procs FILE]... \
[--env K=V]... [--cwd DIR] [--user UID[:GID]] [--tty] [--detach] [--caps HEXMASK] \
[--seccomp default|unconfined|PROFILE] [--no-new-privs] -- COMMAND [ARG...]";

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("{flag}: invalid value {value:?}"))
}

/// Parses `UID` or `UID:GID` (gid defaults to uid).
pub fn parse_user(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--user: invalid value {text:?} (expected UID[:GID])");
    let (uid, gid) = text.split_once(':').unwrap_or((text, text));
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            cwd: "/".into(),
            seccomp: "default".into(),
            caps: u64::MAX,
            ..Args::default()
        };
        let mut it = argv.into_iter();
        let (mut have_pid, mut have_start) = (false, false);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--pid" => {
                    args.pid = number("--pid", it.next())?;
                    have_pid = true;
                }
                "--start-time" => {
                    args.start_time = number("--start-time", it.next())?;
                    have_start = true;
                }
                "--userns" => args.userns = true,
                "--cgroup-procs" => args
                    .cgroup_procs
                    .push(it.next().ok_or("--cgroup-procs needs a value")?.into()),
                "--env" => args.env.push(it.next().ok_or("--env needs a value")?),
                "--cwd" => args.cwd = it.next().ok_or("--cwd needs a value")?,
                "--user" => {
                    args.user = Some(parse_user(&it.next().ok_or("--user needs a value")?)?)
                }
                "--tty" => args.tty = true,
                "--detach" => args.detach = true,
                "--caps" => {
                    let value = it.next().ok_or("--caps needs a value")?;
                    args.caps = u64::from_str_radix(value.trim_start_matches("0x"), 16)
                        .map_err(|_| format!("--caps: invalid mask {value:?}"))?;
                }
                "--seccomp" => args.seccomp = it.next().ok_or("--seccomp needs a value")?,
                "--no-new-privs" => args.no_new_privs = true,
                "--" => {
                    args.command = it.collect();
                    break;
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if !have_pid || !have_start {
            return Err("--pid and --start-time are required".into());
        }
        if args.command.is_empty() {
            return Err("no command given after --".into());
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Args, String> {
        Args::parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_the_full_form() {
        let args = parse(&[
            "--pid",
            "42",
            "--start-time",
            "99",
            "--cgroup-procs",
            "/a",
            "--cgroup-procs",
            "/b",
            "--env",
            "A=1",
            "--cwd",
            "/tmp",
            "--user",
            "1000:1001",
            "--tty",
            "--caps",
            "a80425fb",
            "--seccomp",
            "unconfined",
            "--no-new-privs",
            "--",
            "sh",
            "-c",
            "echo --tty",
        ])
        .unwrap();
        assert_eq!((args.pid, args.start_time), (42, 99));
        assert_eq!(args.cgroup_procs.len(), 2);
        assert_eq!(args.user, Some((1000, 1001)));
        assert!(args.tty && args.no_new_privs && !args.detach);
        assert_eq!(args.caps, 0xa80425fb);
        assert_eq!(args.command, ["sh", "-c", "echo --tty"]);
    }

    #[test]
    fn refuses_bad_forms() {
        assert!(parse(&["--start-time", "1", "--", "true"]).is_err());
        assert!(parse(&["--pid", "x", "--start-time", "1", "--", "true"]).is_err());
        assert!(parse(&["--pid", "1", "--start-time", "1"]).is_err());
        assert!(parse(&["--pid", "1", "--start-time", "1", "--bogus", "--", "true"]).is_err());
        assert!(parse(&[
            "--pid",
            "1",
            "--start-time",
            "1",
            "--user",
            "root",
            "--",
            "true"
        ])
        .is_err());
        assert_eq!(parse_user("7").unwrap(), (7, 7));
    }
}
