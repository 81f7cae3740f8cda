//! Printing the one-JSON-line log record. Below the configured level nothing is serialized at all.

use bugbot_shared::log::{Level, LogLine};

/// Prints `line` (as JSON) when its level is at least `min`: errors on `console.error`, warnings on
/// `console.warn`, the rest on `console.log`, so `wrangler tail` shows each at its level.
pub fn emit(line: &LogLine<'_>, min: Level) {
    if line.level < min {
        return;
    }
    let json = line.to_json();
    match line.level {
        Level::Error => worker::console_error!("{json}"),
        Level::Warn => worker::console_warn!("{json}"),
        Level::Debug | Level::Info => worker::console_log!("{json}"),
    }
}
