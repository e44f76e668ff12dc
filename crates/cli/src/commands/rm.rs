//! `mcm rm` (alias `delete`).

use mcm::{Result, Runtime};

use super::for_each_id;
use crate::args::RmArgs;

pub fn rm(runtime: &Runtime, args: RmArgs) -> Result<i32> {
    for_each_id(&args.ids.all()?, |id| {
        runtime.remove(id, args.force).map(drop)
    })
}
