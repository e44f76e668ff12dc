//! Container names: validated like Docker's, generated when not given.

use crate::error::{Error, Result};

/// Longest name accepted.
const MAX_NAME_LEN: usize = 128;

/// Checks a user-given name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128
/// characters (no slashes, no `..` as a whole, no spaces).
pub fn validate(name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidName {
        name: name.to_string(),
        reason,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("it is empty")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(invalid("it must start with a letter or digit"))
        }
        _ => {}
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 128 characters"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(invalid("only [a-zA-Z0-9_.-] are allowed"));
    }
    Ok(())
}

const ADJECTIVES: [&str; 24] = [
    "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
    "merry", "nimble", "proud", "quick", "quiet", "sharp", "silly", "sleepy", "sturdy", "swift",
    "tender", "vivid", "witty", "zesty",
];
const NOUNS: [&str; 24] = [
    "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler", "fermi", "galois",
    "gauss", "hopper", "kepler", "knuth", "lamport", "lovelace", "mccarthy", "newton", "noether",
    "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
];

/// A readable name derived from random bytes; `attempt` > 0 adds a suffix
/// so a retry after a clash gives another name.
pub fn generate(random: &[u8; 16], attempt: u32) -> String {
    let adjective = ADJECTIVES[random[0] as usize % ADJECTIVES.len()];
    let noun = NOUNS[random[1] as usize % NOUNS.len()];
    if attempt == 0 {
        format!("{adjective}_{noun}")
    } else {
        format!(
            "{adjective}_{noun}_{}",
            u16::from_le_bytes([random[2], random[3]]) as u32 + attempt
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_style_names() {
        for name in ["web", "web-1", "a.b_c", "X9"] {
            validate(name).unwrap();
        }
    }

    #[test]
    fn refuses_bad_names() {
        let long = "a".repeat(300);
        for name in [
            "",
            "../etc",
            "a/b",
            "has space",
            "..",
            "-lead",
            long.as_str(),
            "ümlaut",
        ] {
            assert!(validate(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn generated_names_are_valid() {
        for seed in 0..=255u8 {
            let bytes = [seed; 16];
            validate(&generate(&bytes, 0)).unwrap();
            validate(&generate(&bytes, 3)).unwrap();
        }
    }
}
