//! The plan loader on arbitrary bytes: parsing, the rules, the structural
//! pass, locating diagnostics, rendering them (miette snippets, JSON), and
//! for a valid plan compiling and rendering it. Nothing may panic.
#![no_main]

use ferry::graph::{self, Format, render::RenderOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ferry::plan::parse::parse_bytes("fuzz.yaml", data) {
        Ok(plan) => {
            let compiled = graph::compile(&plan);
            for format in [Format::Text, Format::Json, Format::Dot, Format::Markdown] {
                let _ = graph::render::render(&compiled, &plan, format, &RenderOptions::default());
            }
        }
        Err(diags) => {
            assert!(!diags.is_empty(), "an error without a diagnostic");
            let _ = diags.render_human(false);
            let _ = diags.to_json();
        }
    }
});
