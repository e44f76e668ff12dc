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
    /// Also join the init's user namespace.
    pub userns: bool,
    /// `cgroup.procs` files to join before forking.
    pub cgroup_procs: Vec<PathBuf>,
    /// The command's whole environment, `K=V`.
    pub env: Vec<String>,
    /// Working directory inside the container (`/` by default).
    pub cwd: String,
    /// (uid, gid); the gid defaults to the uid.
    pub user: Option<(u32, u32)>,
    /// A pty from the container's devpts (ignored with `detach`).
    pub tty: bool,
    /// Run in the background, stdio on /dev/null, and return at once.
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
                    if args.pid <= 0 {
                        return Err(format!("--pid: invalid value \"{}\"", args.pid));
                    }
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

    #[test]
    fn defaults_for_the_minimal_form() {
        let args = parse(&["--pid", "7", "--start-time", "123", "--", "true"]).unwrap();
        assert_eq!((args.pid, args.start_time), (7, 123));
        assert_eq!(args.cwd, "/");
        assert_eq!(args.user, None);
        assert_eq!(args.seccomp, "default");
        assert_eq!(args.caps, u64::MAX);
        assert!(!args.userns && !args.tty && !args.detach && !args.no_new_privs);
        assert!(args.env.is_empty() && args.cgroup_procs.is_empty());
        assert_eq!(args.command, ["true"]);
    }

    #[test]
    fn keeps_the_environment_in_order_and_exactly() {
        let args = parse(&[
            "--pid",
            "7",
            "--start-time",
            "1",
            "--env",
            "PATH=/bin",
            "--env",
            "A=x=y",
            "--env",
            "EMPTY=",
            "--userns",
            "--detach",
            "--",
            "env",
        ])
        .unwrap();
        assert_eq!(args.env, ["PATH=/bin", "A=x=y", "EMPTY="]);
        assert!(args.userns && args.detach);
    }

    #[test]
    fn everything_after_the_separator_is_the_command() {
        let args = parse(&["--pid", "7", "--start-time", "1", "--", "--pid", "--", "x"]).unwrap();
        assert_eq!(args.command, ["--pid", "--", "x"]);
    }

    #[test]
    fn explains_what_is_wrong() {
        let error = |list: &[&str]| parse(list).unwrap_err();
        assert_eq!(error(&["--pid"]), "--pid needs a value");
        assert_eq!(
            error(&["--pid", "7", "--start-time", "1", "--env"]),
            "--env needs a value"
        );
        assert!(error(&["--pid", "0", "--start-time", "1", "--", "x"]).contains("--pid"));
        assert!(error(&["--pid", "-3", "--start-time", "1", "--", "x"]).contains("--pid"));
        assert!(error(&["--pid", "7", "--start-time", "-1", "--", "x"]).contains("--start-time"));
        assert_eq!(
            error(&["--pid", "7", "--start-time", "1", "--frob", "--", "x"]),
            "unknown argument \"--frob\""
        );
        assert_eq!(
            error(&["--pid", "7", "--start-time", "1", "true"]),
            "unknown argument \"true\""
        );
        assert_eq!(
            error(&["--pid", "7", "--start-time", "1", "--"]),
            "no command given after --"
        );
        assert_eq!(error(&["--", "x"]), "--pid and --start-time are required");
        assert!(
            error(&["--pid", "7", "--start-time", "1", "--caps", "zz", "--", "x"])
                .contains("--caps")
        );
        assert!(parse_user("1:").is_err() && parse_user(":1").is_err() && parse_user("").is_err());
        assert_eq!(parse_user("0:0").unwrap(), (0, 0));
    }
}
