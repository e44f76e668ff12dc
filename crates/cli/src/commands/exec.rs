//! `mcm exec`: becomes `mcm-nsenter`, which relays the terminal, signals
//! and exit code itself.

use std::os::unix::process::CommandExt;

use mcm::exec::ExecSpec;
use mcm::{Error, Result, Runtime};

use crate::args::ExecArgs;

pub fn exec(runtime: &Runtime, args: ExecArgs) -> Result<i32> {
    let mut rest = args.rest.into_iter();
    let Some(id) = args.id.or_else(|| rest.next()) else {
        return Err(Error::InvalidValue {
            what: "arguments",
            value: String::new(),
            reason: "exec needs a container and a command".into(),
        });
    };
    let spec = ExecSpec {
        command: rest.collect(),
        env: args.env,
        workdir: args.workdir,
        user: args.user,
        tty: args.tty,
        detach: args.detach,
    };
    let mut command = runtime.exec_command(&id, &spec)?;
    if !args.interactive && !args.detach {
        command.stdin(std::process::Stdio::null());
    }
    // exec only returns on failure.
    let error = command.exec();
    Err(Error::io("run", "mcm-nsenter")(error))
}
