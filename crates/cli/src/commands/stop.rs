//! `mcm stop`.

use std::time::Duration;

use mcm::{Result, Runtime};

use super::for_each_id;
use crate::args::StopArgs;

pub fn stop(runtime: &Runtime, args: StopArgs) -> Result<i32> {
    let timeout = Duration::from_secs(args.time);
    for_each_id(&args.ids.all()?, |id| runtime.stop(id, timeout).map(drop))
}
