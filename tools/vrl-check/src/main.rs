//! vrl-check PROGRAM.vrl [EVENT.json]
//!
//! Compiles PROGRAM with VRL's standard library; exit 1 with the compiler's diagnostics when it
//! does not compile. With EVENT (one JSON object), runs the program on it and prints the
//! resulting event as JSON (`null` when the program aborts): what Vector's remap would pass on.
use std::{env, fs, process};

use vrl::compiler::{compile, state::RuntimeState, Context, ExpressionError, TargetValue, TimeZone};
use vrl::diagnostic::Formatter;
use vrl::value::{Secrets, Value};

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: vrl-check PROGRAM.vrl [EVENT.json]");
        process::exit(2);
    }
    let source = fs::read_to_string(&args[1]).unwrap_or_else(|e| fail(&format!("{}: {e}", args[1])));
    let program = match compile(&source, &vrl::stdlib::all()) {
        Ok(result) => result.program,
        Err(diagnostics) => {
            eprintln!("{}: {}", args[1], Formatter::new(&source, diagnostics));
            process::exit(1);
        }
    };
    let Some(event_path) = args.get(2) else { return };
    let text = fs::read_to_string(event_path).unwrap_or_else(|e| fail(&format!("{event_path}: {e}")));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| fail(&format!("{event_path}: {e}")));
    let mut target = TargetValue { value: Value::from(json), metadata: Value::Object(Default::default()), secrets: Secrets::default() };
    let mut state = RuntimeState::default();
    let timezone = TimeZone::default();
    let mut ctx = Context::new(&mut target, &mut state, &timezone);
    match program.resolve(&mut ctx) {
        Ok(_) => println!("{}", serde_json::to_string(&target.value).unwrap()),
        // `abort`: Vector's remap drops the event (drop_on_abort defaults to true).
        Err(ExpressionError::Abort { .. }) => println!("null"),
        Err(e) => fail(&format!("runtime error: {e}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    process::exit(1);
}
