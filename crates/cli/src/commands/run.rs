//! `mcm run`.

use mcm::{NetworkMode, Result, RunSpec, Runtime};

use super::print;
use crate::args::{Network, RunArgs};

pub fn run(runtime: &Runtime, args: RunArgs) -> Result<i32> {
    let spec = RunSpec {
        image: args.image,
        command: args.command,
        name: args.name,
        hostname: args.hostname,
        env: args.env,
        workdir: args.workdir,
        network: match args.network {
            Network::None => NetworkMode::None,
            Network::Host => NetworkMode::Host,
        },
        tty: args.tty,
        interactive: args.interactive,
        init: !args.no_init,
        auto_remove: args.rm,
        ..RunSpec::default()
    };
    if args.detach {
        let container = runtime.run(&spec)?;
        print(&format!("{}\n", container.config.id))?;
        return Ok(0);
    }
    let tty_size = if spec.tty { mcm::window_size(0) } else { None };
    let attached = runtime.run_attached(&spec, tty_size)?;
    let id = attached.id.clone();
    let code = attached.wait()?;
    if spec.auto_remove {
        runtime.remove(&id, true)?;
    }
    Ok(code)
}
