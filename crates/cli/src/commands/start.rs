//! `mcm start`.

use mcm::{Result, Runtime};

use super::for_each_id;
use crate::args::StartArgs;

pub fn start(runtime: &Runtime, args: StartArgs) -> Result<i32> {
    let ids = args.ids.all()?;
    if args.attach {
        let [id] = ids.as_slice() else {
            return Err(mcm::Error::InvalidValue {
                what: "arguments",
                value: ids.join(" "),
                reason: "start -a takes exactly one container".into(),
            });
        };
        let tty = runtime.inspect(id)?.config.tty;
        let size = if tty { mcm::window_size(0) } else { None };
        return runtime.start_attached(id, size)?.wait();
    }
    for_each_id(&ids, |id| runtime.start(id).map(drop))
}
