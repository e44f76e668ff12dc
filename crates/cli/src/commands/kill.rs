//! `mcm kill`.

use std::str::FromStr;

use nix::sys::signal::Signal;

use mcm::{Error, Result, Runtime};

use super::for_each_id;
use crate::args::KillArgs;

pub fn kill(runtime: &Runtime, args: KillArgs) -> Result<i32> {
    let signal = parse_signal(&args.signal)?;
    for_each_id(&args.ids.all()?, |id| runtime.kill(id, signal).map(drop))
}

/// `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let invalid = || Error::InvalidValue {
        what: "signal",
        value: text.to_string(),
        reason: "expected a name like TERM or a number".into(),
    };
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| invalid());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_forms() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
