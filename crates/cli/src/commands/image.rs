//! `mcm image import|ls|rm`.

use comfy_table::{presets, Table};
use mcm::format::human_bytes;
use mcm::{Error, Result, Runtime};

use super::{for_each_id, print};
use crate::args::ImageCommand;

pub fn image(runtime: &Runtime, command: ImageCommand) -> Result<i32> {
    let store = runtime.images();
    match command {
        ImageCommand::Import { name, source } => {
            let info = store.import(&name, &source)?;
            print(&format!("{}\n", info.name)).map(|_| 0)
        }
        ImageCommand::Ls => {
            let mut table = Table::new();
            table
                .load_preset(presets::NOTHING)
                .set_header(["NAME", "SIZE", "SOURCE"]);
            for info in store.list()? {
                table.add_row([
                    info.name.clone(),
                    human_bytes(info.size),
                    info.source.clone(),
                ]);
            }
            let text: String = table.lines().map(|l| format!("{}\n", l.trim())).collect();
            print(&text).map(|_| 0)
        }
        ImageCommand::Rm { names } => for_each_id(&names, |name| {
            let users: Vec<String> = runtime
                .list()?
                .containers
                .iter()
                .filter(|c| c.config.image == name)
                .map(|c| c.config.short_id().to_string())
                .collect();
            if !users.is_empty() {
                return Err(Error::InvalidValue {
                    what: "image removal of",
                    value: name.to_string(),
                    reason: format!("in use by container(s) {}", users.join(", ")),
                });
            }
            store.remove(name).map_err(Error::from)
        }),
    }
}
