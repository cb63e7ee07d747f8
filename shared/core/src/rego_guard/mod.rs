//! Bounds on tenant-supplied Rego: what a module may call, how much a single evaluation may allocate through
//! builtins, and where (and for how long) it runs.
//!
//! The agent is the party the vault guards against, and it chooses the *input* of every evaluation; the tenant
//! chooses the module. Neither may stall or abort the process. Three layers, each closing what the one before
//! cannot:
//!
//! 1. **Registration** ([`check_module`]): a module may refer only to builtins on an allow-list ([`ALLOWED`]).
//!    Builtins that serialise or walk whole values (`json.marshal`, `walk`, `print`, ...), grow numbers without
//!    bound (`bits.lsh`, `product`), or multiply text (`strings.replace_n`, `regex.replace`) are refused, named
//!    in the error. The check reads the module's tokens, so it also sees builtins named in `with ... as`.
//! 2. **Inside builtins** ([`install`]): every allowed builtin that builds a value is shadowed by an extension
//!    (regorus looks extensions up before builtins) that computes the size of its arguments and of its result
//!    *before* anything is allocated, charges it to the evaluation's memory budget, and only then runs
//!    regorus's own implementation. `numbers.range(1, 1e15)` is refused from its two numbers alone; it never
//!    reaches `Vec::with_capacity`. No builtin ever receives an argument whose expanded size exceeds the budget,
//!    so values shared many times over (`b := [a, a]` repeated) cannot be expanded by a builtin either. Every
//!    builtin outside the allow-list (and `print`) is shadowed by an extension that errs, so a reference the
//!    registration check did not recognise still fails closed.
//! 3. **Time** ([`evaluate_off_thread`]): regorus checks its own execution timer before every interpreter step
//!    (`check_interval` 1). What it cannot interrupt — one long comparison of huge shared values, say — runs on a
//!    small dedicated worker pool, never on the async workers: the caller stops waiting at the deadline and fails
//!    closed, and the pool's bounded queue fails closed rather than pile up work.
//!
//! regorus 0.14 also offers allocator-based memory limits (feature `allocator-memory-limits`); they are not used:
//! they replace the process's global allocator, count the whole process's allocations rather than one
//! evaluation's, and `numbers.range` still calls `Vec::with_capacity(n)` before its first check, so the issue's
//! attack would abort the process with them on.

mod budget;
mod pool;
mod recursion;
#[cfg(test)]
mod tests;

pub use budget::{install, size_of_values, with_budget};
pub use pool::{evaluate_blocking, evaluate_off_thread};
pub use recursion::check_recursion;

use std::cell::Cell;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail};
use regorus::unstable::{Expr, Lexer, Ref, Span, TokenKind, BUILTINS};
use regorus::{Source, Value};

/// Default wall-clock budget of one Rego evaluation (VAULT_REGO_TIME_LIMIT_MS).
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(100);
/// Default bytes builtins may produce in one Rego evaluation (VAULT_REGO_MEMORY_LIMIT_BYTES): 32 MiB.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 32 * 1024 * 1024;

/// The limits every evaluation of a tenant's Rego runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegoLimits {
    /// Wall-clock budget of one evaluation.
    pub time: Duration,
    /// Bytes the builtins of one evaluation may produce, counted before they are allocated.
    pub memory_bytes: u64,
}

impl Default for RegoLimits {
    fn default() -> Self {
        RegoLimits {
            time: DEFAULT_TIME_LIMIT,
            memory_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
        }
    }
}

impl RegoLimits {
    /// How long a caller waits for an off-thread evaluation: the budget, plus as much again for queueing and
    /// for regorus to notice its own timer.
    pub fn deadline(&self) -> Duration {
        self.time.saturating_mul(2).max(Duration::from_millis(50))
    }
}

/// How a builtin's result is charged to the memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cost {
    /// Returns a scalar (or one of its arguments): only the arguments' size is bounded.
    Scalar,
    /// Result at most twice the size of the arguments.
    Linear,
    /// Result may hold one value per byte of the arguments (`split(s, "")`).
    PerByte,
    /// Sized from the arguments by its own rule, below.
    Custom,
}

/// The builtins a tenant's module may use, and how each is charged. Everything else regorus offers is refused
/// at registration.
pub const ALLOWED: &[&str] = &[
    // aggregates, numbers, bits
    "count",
    "max",
    "min",
    "sum",
    "sort",
    "abs",
    "ceil",
    "floor",
    "round",
    "numbers.range",
    "numbers.range_step",
    "to_number",
    "bits.and",
    "bits.or",
    "bits.xor",
    "bits.negate",
    "bits.rsh",
    // strings
    "concat",
    "contains",
    "endswith",
    "startswith",
    "format_int",
    "indexof",
    "indexof_n",
    "lower",
    "upper",
    "replace",
    "split",
    "sprintf",
    "strings.any_prefix_match",
    "strings.any_suffix_match",
    "strings.count",
    "strings.reverse",
    "substring",
    "trim",
    "trim_left",
    "trim_prefix",
    "trim_right",
    "trim_space",
    "trim_suffix",
    // regex (the regex crate: linear-time matching, size-limited compilation)
    "regex.match",
    "regex.is_valid",
    "regex.split",
    "regex.find_n",
    // arrays, sets, objects
    "array.concat",
    "array.reverse",
    "array.slice",
    "intersection",
    "union",
    "object.get",
    "object.keys",
    "object.remove",
    "object.filter",
    "object.subset",
    "object.union",
    "object.union_n",
    "json.filter",
    "json.remove",
    // types, units
    "is_array",
    "is_boolean",
    "is_null",
    "is_number",
    "is_object",
    "is_set",
    "is_string",
    "type_name",
    "units.parse",
    "units.parse_bytes",
];

fn cost(name: &str) -> Cost {
    match name {
        "numbers.range" | "numbers.range_step" | "concat" | "replace" | "sprintf" => Cost::Custom,
        "split" | "indexof_n" | "regex.split" | "regex.find_n" => Cost::PerByte,
        "sort" | "format_int" | "lower" | "upper" | "strings.reverse" | "substring" | "trim"
        | "trim_left" | "trim_prefix" | "trim_right" | "trim_space" | "trim_suffix"
        | "array.concat" | "array.reverse" | "array.slice" | "intersection" | "union"
        | "object.keys" | "object.remove" | "object.filter" | "object.union" | "object.union_n"
        | "json.filter" | "json.remove" => Cost::Linear,
        _ => Cost::Scalar,
    }
}

/// Bytes charged per value held in a collection (a `regorus::Value` plus its share of the collection).
const VALUE_BYTES: u64 = 32;
/// Bytes charged per value a `PerByte` builtin may create for each byte of its arguments.
const PER_BYTE: u64 = 64;
/// The widest field a `sprintf` verb can ask for (regorus reads at most two width digits), plus slack.
const SPRINTF_VERB_BYTES: u64 = 128;

/// Refuse a module that refers to a builtin outside [`ALLOWED`] (or to `print`), naming it.
pub fn check_module(module: &str) -> Result<(), String> {
    let source = Source::from_contents("policy.rego".into(), module.to_string())
        .map_err(|e| e.to_string())?;
    let mut lexer = Lexer::new(&source);
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token().map_err(|e| e.to_string())?;
        if matches!(token.0, TokenKind::Eof) {
            break;
        }
        tokens.push(token);
    }
    let text = |i: usize| tokens.get(i).map(|t| t.1.text()).unwrap_or("");
    let kind = |i: usize| tokens.get(i).map(|t| &t.0);
    let mut i = 0;
    while i < tokens.len() {
        let starts_chain = matches!(kind(i), Some(TokenKind::Ident))
            && !(i > 0 && matches!(kind(i - 1), Some(TokenKind::Symbol)) && text(i - 1) == ".");
        if !starts_chain {
            i += 1;
            continue;
        }
        // A reference: `a.b.c`, `a["b"].c`. It names a function when it is called (`(` follows) or put in
        // place of one (`with f as a.b`); then every prefix that names a builtin must be allowed. A variable
        // that merely shares a builtin's name (`product := input.product`) is data, not a call.
        let mut names = vec![text(i).to_string()];
        let mut j = i + 1;
        loop {
            let name = names.last().cloned().unwrap_or_default();
            if text(j) == "." && matches!(kind(j + 1), Some(TokenKind::Ident)) {
                names.push(format!("{name}.{}", text(j + 1)));
                j += 2;
            } else if text(j) == "["
                && matches!(kind(j + 1), Some(TokenKind::String | TokenKind::RawString))
                && text(j + 2) == "]"
            {
                // A JSON string literal (escapes decoded, so `"m\u0061rshal"` is `marshal`), or a raw string.
                let literal = text(j + 1);
                let key = match kind(j + 1) {
                    // The lexer gives a string's text without its quotes, escapes undecoded.
                    Some(TokenKind::String) => {
                        serde_json::from_str::<String>(&format!("\"{literal}\""))
                            .map_err(|_| format!("rego string {literal:?} cannot be read"))?
                    }
                    _ => literal.to_string(),
                };
                names.push(format!("{name}.{key}"));
                j += 3;
            } else {
                break;
            }
        }
        let called = text(j) == "(";
        let substituted =
            i > 0 && matches!(kind(i - 1), Some(TokenKind::Ident)) && text(i - 1) == "as";
        if called || substituted {
            for name in &names {
                refused(name)?;
            }
        }
        i = j;
    }
    Ok(())
}

fn refused(name: &str) -> Result<(), String> {
    let builtin = name == "print" || BUILTINS.contains_key(name);
    if builtin && !ALLOWED.contains(&name) {
        return Err(format!(
            "rego builtin `{name}` is not allowed in tenant policies (it can allocate or run without bound)"
        ));
    }
    Ok(())
}
