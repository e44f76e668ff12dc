//! One module per verb; each turns parsed arguments into library calls and
//! prints the result. Returns the process exit code.

mod exec;
mod image;
mod inspect;
mod kill;
mod logs;
mod pause;
mod ps;
mod rm;
mod run;
mod start;
mod stats;
mod status;
mod stop;
mod system;
mod update;

use std::io::{self, Write};

use mcm::{Result, Runtime};

use crate::args::{Cli, Command};

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let runtime = Runtime::open(&cli.root)?.with_cgroup_parent(cli.cgroup_parent)?;
    match cli.command {
        Command::Run(args) => run::run(&runtime, *args),
        Command::Start(args) => start::start(&runtime, args),
        Command::Stop(args) => stop::stop(&runtime, args),
        Command::Kill(args) => kill::kill(&runtime, args),
        Command::Rm(args) => rm::rm(&runtime, args),
        Command::Ps(args) => ps::ps(&runtime, args, false),
        Command::List(args) => ps::ps(&runtime, args, true),
        Command::Exec(args) => exec::exec(&runtime, args),
        Command::Logs(args) => logs::logs(&runtime, args),
        Command::Inspect(ids) => inspect::inspect(&runtime, ids),
        Command::Image(command) => image::image(&runtime, command),
        Command::Pause(ids) => pause::pause(&runtime, ids),
        Command::Unpause(ids) => pause::unpause(&runtime, ids),
        Command::Update(args) => update::update(&runtime, args),
        Command::Status(ids) => status::status(&runtime, ids),
        Command::Stats(args) => stats::stats(&runtime, args),
        Command::System(command) => system::system(&runtime, command),
    }
}

/// Prints to stdout; a closed pipe (`mcm ps | head -1`) is not an error.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(mcm::Error::io("write", "stdout")(e))
        }
        _ => Ok(()),
    }
}

/// Applies `action` to every id, printing each one done like Docker and an
/// error line for each failure; the exit code is 125 if any failed.
pub fn for_each_id(ids: &[String], mut action: impl FnMut(&str) -> Result<()>) -> Result<i32> {
    let mut code = 0;
    for id in ids {
        match action(id) {
            Ok(()) => print(&format!("{id}\n"))?,
            Err(e) => {
                eprintln!("mcm: {e}");
                code = e.exit_code();
            }
        }
    }
    Ok(code)
}
