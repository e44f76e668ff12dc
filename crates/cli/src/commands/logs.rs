//! `mcm logs`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use mcm::{Error, Result, Runtime};

use super::print;
use crate::args::LogsArgs;

/// How often `logs -f` looks for new output.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

pub fn logs(runtime: &Runtime, args: LogsArgs) -> Result<i32> {
    let ids = args.ids.all()?;
    let [id] = ids.as_slice() else {
        return Err(Error::InvalidValue {
            what: "arguments",
            value: ids.join(" "),
            reason: "logs takes exactly one container".into(),
        });
    };
    let container = runtime.inspect(id)?;
    let path = container.dir.log();
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !args.follow => return Ok(0),
        Err(e) => return Err(Error::io("open", &path)(e)),
    };
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .map_err(Error::io("read", &path))?;
    print(&String::from_utf8_lossy(tail(&content, args.tail)))?;
    if !args.follow {
        return Ok(0);
    }
    let mut offset = content.len() as u64;
    loop {
        let alive = runtime.status(id).map(|s| s.is_alive()).unwrap_or(false);
        let mut more = Vec::new();
        file.seek(SeekFrom::Start(offset))
            .map_err(Error::io("read", &path))?;
        file.read_to_end(&mut more)
            .map_err(Error::io("read", &path))?;
        offset += more.len() as u64;
        print(&String::from_utf8_lossy(&more))?;
        if !alive {
            return Ok(0);
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// The last `lines` lines of `content` (all of it when `None`).
fn tail(content: &[u8], lines: Option<usize>) -> &[u8] {
    let Some(lines) = lines else { return content };
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return &content[i + 1..];
            }
        }
    }
    if lines == 0 {
        &content[content.len()..]
    } else {
        content
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tails_lines() {
        let text = b"a\nb\nc\n";
        assert_eq!(tail(text, Some(2)), b"b\nc\n");
        assert_eq!(tail(text, Some(5)), text);
        assert_eq!(tail(text, Some(0)), b"");
        assert_eq!(tail(text, None), text);
        assert_eq!(tail(b"a\nb", Some(1)), b"b");
    }
}
