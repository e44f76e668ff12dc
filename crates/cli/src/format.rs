//! Human-readable figures as Docker prints them.

use std::time::Duration;

/// Docker's "human duration": `Less than a second`, `3 seconds`,
/// `About a minute`, `5 minutes`, `About an hour`, `3 hours`, `2 days`, ...
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        0 => "Less than a second".into(),
        1..=59 => plural(secs, "second"),
        60..=119 => "About a minute".into(),
        120..=3599 => plural(secs / 60, "minute"),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => plural(secs / 3600, "hour"),
        172_800..=1_209_599 => plural(secs / 86_400, "day"),
        1_209_600..=7_862_399 => plural(secs / 604_800, "week"),
        7_862_400..=63_071_999 => plural(secs / 2_592_000, "month"),
        _ => plural(secs / 31_536_000, "year"),
    }
}

/// A command line as `ps` shows it: quoted, cut to `max` characters.
pub fn short_command(command: &[String], max: usize) -> String {
    let joined = command.join(" ");
    let cut: String = if joined.chars().count() > max {
        let mut s: String = joined.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    } else {
        joined
    };
    format!("\"{cut}\"")
}

/// Bytes in Docker's units (`1.5MiB`, `100MiB`, `2GiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{:.4}", value)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .chars()
            .take(6)
            .collect::<String>()
            .trim_end_matches('.')
            .to_string()
            + UNITS[unit]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(5)), "5 seconds");
        assert_eq!(human_duration(s(70)), "About a minute");
        assert_eq!(human_duration(s(180)), "3 minutes");
        assert_eq!(human_duration(s(3700)), "About an hour");
        assert_eq!(human_duration(s(3 * 3600)), "3 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
    }

    #[test]
    fn commands_are_quoted_and_cut() {
        assert_eq!(
            short_command(&["sleep".into(), "10".into()], 20),
            "\"sleep 10\""
        );
        let long = short_command(&["a".repeat(40)], 20);
        assert_eq!(long.chars().count(), 22);
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(100 * 1024 * 1024), "100MiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5MiB");
    }
}
