//! Standard output for the commands: a reader that goes away
//! (`smsflow validate pipeline.yaml | head -1`) ends the command quietly,
//! with success, as it ends `cat` or ripgrep, instead of a panic.

use std::fmt;
use std::io::{self, Write};

/// Write `args` to standard output and flush. When the reader has closed
/// the pipe, exit at once with status 0; any other failure to write is an
/// error that ends the command with status 1.
pub fn write(args: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `print!` through [`write()`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

/// `println!` through [`write()`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
