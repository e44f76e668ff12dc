//! Parsing of the resource flags users type (`--memory 64m`, `--cpus 0.5`,
//! `--pids-limit 100`...), with Docker's units and limits. Errors are one
//! line naming the bad value.

use nix::sched::{sched_getaffinity, CpuSet};
use nix::unistd::Pid;

use super::DEFAULT_CPU_PERIOD;

/// The smallest memory limit accepted, as in Docker: below it a container
/// cannot even start.
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// The smallest CFS quota the kernel accepts, in microseconds.
const MIN_CPU_QUOTA: i64 = 1000;

/// Parses a byte size such as `64m`, `100M`, `1g`, `512MiB`, `1.5g`,
/// `1048576` or `10kb`. Units are case-insensitive and, as in Docker, all
/// binary: `k`, `kb`, `ki` and `kib` all mean 1024 (likewise `m`, `g`, `t`,
/// `p`); `b` or no unit means bytes. A space may separate number and unit.
pub fn parse_memory_size(input: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size {input:?}: expected a number with an optional unit (b, k, m, g, t, p)"
        )
    };
    let trimmed = input.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier = unit_multiplier(unit.trim_start()).ok_or_else(invalid)?;
    let too_large = || format!("invalid size {input:?}: too large");
    match number.split_once('.') {
        None if !number.is_empty() => {
            let value: u64 = number.parse().map_err(|_| too_large())?;
            value.checked_mul(multiplier).ok_or_else(too_large)
        }
        Some((whole, fraction))
            if !whole.is_empty()
                && !fraction.is_empty()
                && fraction.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let value: f64 = number.parse().map_err(|_| invalid())?;
            let bytes = value * multiplier as f64;
            if bytes >= u64::MAX as f64 {
                return Err(too_large());
            }
            // Truncated to whole bytes, as Docker does.
            Ok(bytes as u64)
        }
        _ => Err(invalid()),
    }
}

/// The byte multiplier of a size unit, `None` for an unknown one.
fn unit_multiplier(unit: &str) -> Option<u64> {
    let unit = unit.to_ascii_lowercase();
    let mut chars = unit.chars();
    let power = match chars.next() {
        None | Some('b') if unit.len() <= 1 => return Some(1),
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some('t') => 4,
        Some('p') => 5,
        _ => return None,
    };
    // After the letter: nothing, "b", "i" or "ib".
    match chars.as_str() {
        "" | "b" | "i" | "ib" => Some(1024u64.pow(power)),
        _ => None,
    }
}

/// Parses a `--memory` value: a size of at least [`MIN_MEMORY`].
pub fn parse_memory_limit(input: &str) -> Result<u64, String> {
    let bytes = parse_memory_size(input)?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "invalid memory limit {input:?}: Minimum memory limit allowed is 6MB"
        ));
    }
    Ok(bytes)
}

/// Parses a `--memory-swap` value (memory plus swap): a size, or `-1` for
/// unlimited swap.
pub fn parse_memory_swap(input: &str) -> Result<i64, String> {
    if input.trim() == "-1" {
        return Ok(-1);
    }
    let bytes = parse_memory_size(input)?;
    if bytes == 0 {
        return Err(format!(
            "invalid memory+swap limit {input:?}: must be a positive size, or -1 for unlimited swap"
        ));
    }
    i64::try_from(bytes).map_err(|_| format!("invalid memory+swap limit {input:?}: too large"))
}

/// Parses a `--cpus` value (a fractional CPU count) into a CFS quota and
/// period in microseconds (period 100000, quota rounded). Refuses counts
/// that are not positive finite numbers, that are below 0.01 (the kernel's
/// minimum quota of 1 ms) or above `host_cpus` (see [`available_cpus`]).
pub fn parse_cpus(input: &str, host_cpus: usize) -> Result<(i64, u64), String> {
    let cpus: f64 = input
        .trim()
        .parse()
        .ok()
        .filter(|cpus: &f64| cpus.is_finite() && *cpus > 0.0)
        .ok_or_else(|| {
            format!("invalid CPU count {input:?}: expected a positive number such as 0.5")
        })?;
    if cpus > host_cpus as f64 {
        return Err(format!(
            "invalid CPU count {input:?}: only {host_cpus} CPUs are available"
        ));
    }
    let quota = (cpus * DEFAULT_CPU_PERIOD as f64).round() as i64;
    if quota < MIN_CPU_QUOTA {
        return Err(format!("invalid CPU count {input:?}: the minimum is 0.01"));
    }
    Ok((quota, DEFAULT_CPU_PERIOD))
}

/// The number of CPUs this process may run on (its affinity mask), which
/// is what `--cpus` is checked against. Never 0.
pub fn available_cpus() -> usize {
    let from_affinity = sched_getaffinity(Pid::from_raw(0)).ok().map(|set| {
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count()
    });
    match from_affinity {
        Some(count) if count > 0 => count,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Parses a `--pids-limit` value: a positive count, or `-1` for unlimited.
pub fn parse_pids_limit(input: &str) -> Result<i64, String> {
    match input.trim().parse::<i64>() {
        Ok(limit) if limit > 0 || limit == -1 => Ok(limit),
        _ => Err(format!(
            "invalid pids limit {input:?}: expected a positive number, or -1 for unlimited"
        )),
    }
}

/// Parses a `--cpu-shares` value: the v1 range 2 to 262144.
pub fn parse_cpu_shares(input: &str) -> Result<u64, String> {
    match input.trim().parse::<u64>() {
        Ok(shares) if (2..=262_144).contains(&shares) => Ok(shares),
        _ => Err(format!(
            "invalid CPU shares {input:?}: expected a number from 2 to 262144"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn memory_sizes_in_every_spelling() {
        let cases = [
            ("64m", 64 * MIB),
            ("100M", 100 * MIB),
            ("1g", GIB),
            ("512MiB", 512 * MIB),
            ("512mib", 512 * MIB),
            ("1.5g", 3 * GIB / 2),
            ("1048576", MIB),
            ("10kb", 10 * KIB),
            ("10KB", 10 * KIB),
            ("10ki", 10 * KIB),
            ("7b", 7),
            ("7B", 7),
            ("2t", 2 * 1024 * GIB),
            ("1p", 1024 * 1024 * GIB),
            ("100 m", 100 * MIB),
            (" 8g ", 8 * GIB),
            ("0", 0),
            ("0.5k", 512),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_memory_size(input), Ok(expected), "input {input:?}");
        }
    }

    #[test]
    fn bad_memory_sizes_are_refused_naming_the_value() {
        for input in [
            "", "m", "abc", "-5m", "1.m", ".5m", "1..5m", "1.2.3m", "10x", "10mbb", "10bi", "1e3",
            "10 m b", "0x10",
        ] {
            let error = parse_memory_size(input).expect_err(input);
            assert!(error.contains(&format!("{input:?}")), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
        assert!(parse_memory_size("99999999999999999999").is_err());
        assert!(parse_memory_size("20000000p")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_memory_size("99999999.5p")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn memory_limit_has_docker_minimum() {
        assert_eq!(parse_memory_limit("6m"), Ok(MIN_MEMORY));
        assert_eq!(parse_memory_limit("64m"), Ok(64 * MIB));
        let error = parse_memory_limit("5m").unwrap_err();
        assert!(
            error.contains("Minimum memory limit allowed is 6MB"),
            "{error}"
        );
        assert!(error.contains("\"5m\""), "{error}");
        assert!(parse_memory_limit("0").is_err());
    }

    #[test]
    fn memory_swap_takes_sizes_and_minus_one() {
        assert_eq!(parse_memory_swap("-1"), Ok(-1));
        assert_eq!(parse_memory_swap("1g"), Ok(GIB as i64));
        assert!(parse_memory_swap("0").is_err());
        assert!(parse_memory_swap("-2").is_err());
        assert!(parse_memory_swap("9000p")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn cpus_become_quota_and_period() {
        assert_eq!(parse_cpus("0.5", 4), Ok((50_000, 100_000)));
        assert_eq!(parse_cpus("1", 4), Ok((100_000, 100_000)));
        assert_eq!(parse_cpus("1.5", 2), Ok((150_000, 100_000)));
        assert_eq!(parse_cpus("2", 2), Ok((200_000, 100_000)));
        assert_eq!(parse_cpus("0.01", 1), Ok((1_000, 100_000)));
        assert_eq!(parse_cpus("0.333333", 1), Ok((33_333, 100_000)));
        assert_eq!(parse_cpus(" 0.25 ", 1), Ok((25_000, 100_000)));
    }

    #[test]
    fn bad_cpus_are_refused_naming_the_value() {
        for input in [
            "0", "-1", "-0.5", "NaN", "nan", "inf", "-inf", "infinity", "abc", "", "1,5", "0.001",
            "3",
        ] {
            let error = parse_cpus(input, 2).expect_err(input);
            assert!(error.contains(&format!("{input:?}")), "{error}");
        }
        assert!(parse_cpus("3", 2).unwrap_err().contains("only 2 CPUs"));
        assert!(parse_cpus("0.001", 2)
            .unwrap_err()
            .contains("minimum is 0.01"));
    }

    #[test]
    fn available_cpus_is_positive() {
        assert!(available_cpus() >= 1);
    }

    #[test]
    fn pids_limits() {
        assert_eq!(parse_pids_limit("100"), Ok(100));
        assert_eq!(parse_pids_limit("-1"), Ok(-1));
        for input in ["0", "-2", "abc", "", "1.5", "10k"] {
            let error = parse_pids_limit(input).expect_err(input);
            assert!(error.contains(&format!("{input:?}")), "{error}");
        }
    }

    #[test]
    fn cpu_shares_range() {
        assert_eq!(parse_cpu_shares("512"), Ok(512));
        assert_eq!(parse_cpu_shares("2"), Ok(2));
        assert_eq!(parse_cpu_shares("262144"), Ok(262_144));
        for input in ["1", "0", "262145", "-5", "x"] {
            assert!(parse_cpu_shares(input).is_err(), "{input}");
        }
    }
}
