//! `trainer DIR > DICT`: trains a zstd dictionary for `HeaderSerde` on the sample heads in
//! `DIR` (one per file) and writes it to standard output.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: trainer DIR > DICT\n\ntrains a header dictionary on the files in DIR");
        return ExitCode::from(2);
    };
    let dict = match pingora_header_serde::dict::try_train(&dir) {
        Ok(dict) => dict,
        Err(e) => {
            eprintln!("trainer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&dict).and_then(|()| stdout.flush()) {
        eprintln!("trainer: write the dictionary: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
