//! `mcm update`: new limits, live.

use mcm::{Result, Runtime};

use super::for_each_id;
use crate::args::UpdateArgs;

pub fn update(runtime: &Runtime, args: UpdateArgs) -> Result<i32> {
    let limits = args.limits.flags().parse()?;
    for_each_id(&args.ids.all()?, |id| runtime.update(id, &limits).map(drop))
}
