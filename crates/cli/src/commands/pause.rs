//! `mcm pause` / `mcm unpause` (aliases `freeze` / `resume`).

use mcm::{Result, Runtime};

use super::for_each_id;
use crate::args::Ids;

pub fn pause(runtime: &Runtime, ids: Ids) -> Result<i32> {
    for_each_id(&ids.all()?, |id| runtime.pause(id).map(drop))
}

pub fn unpause(runtime: &Runtime, ids: Ids) -> Result<i32> {
    for_each_id(&ids.all()?, |id| runtime.unpause(id).map(drop))
}
