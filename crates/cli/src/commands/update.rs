//! `mcm update`: new limits, live.

use mcm::{Error, Result, Runtime};

use super::for_each_id;
use crate::args::UpdateArgs;

pub fn update(runtime: &Runtime, args: UpdateArgs) -> Result<i32> {
    let flags = args.limits.flags();
    if flags.is_empty() {
        return Err(Error::InvalidValue {
            what: "arguments",
            value: String::new(),
            reason: "give at least one of --memory, --memory-swap, --cpus, --cpu-shares, \
                     --cpuset-cpus, --pids-limit"
                .into(),
        });
    }
    // Bad values are refused before any container is changed.
    flags.parse()?;
    let ids = args.ids.all()?;
    for_each_id(&ids, |id| runtime.update(id, &flags).map(drop))
}
