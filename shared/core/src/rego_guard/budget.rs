//! Builtins shadowed by bounded forms: each charges the size of its arguments and result to the evaluation's
//! memory budget before regorus's own implementation allocates anything.

use super::*;

/// Shadow every builtin of this regorus build: the allowed ones with their bounded form, every other one (and
/// `print`) with an error. Registration already refuses modules naming those; this holds even for a reference
/// the token check did not recognise.
pub fn install(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    for (name, (_, nargs)) in BUILTINS.iter() {
        let name: &'static str = name;
        if ALLOWED.contains(&name) {
            engine.add_extension(
                name.to_string(),
                *nargs,
                Box::new(move |args: Vec<Value>| bounded_call(name, &args)),
            )?;
        } else {
            engine.add_extension(
                name.to_string(),
                *nargs,
                Box::new(move |_: Vec<Value>| not_allowed(name)),
            )?;
        }
    }
    engine.add_extension(
        "print".into(),
        1,
        Box::new(|_: Vec<Value>| not_allowed("print")),
    )?;
    Ok(())
}

fn not_allowed(name: &str) -> anyhow::Result<Value> {
    bail!("rego builtin `{name}` is not allowed in tenant policies")
}

thread_local! {
    /// Bytes the running evaluation on this thread may still have its builtins produce.
    static BUDGET: Cell<u64> = const { Cell::new(DEFAULT_MEMORY_LIMIT_BYTES) };
}

/// Run `f` with a fresh memory budget on this thread.
pub fn with_budget<R>(bytes: u64, f: impl FnOnce() -> R) -> R {
    let before = BUDGET.with(|b| b.replace(bytes));
    let result = f();
    BUDGET.with(|b| b.set(before));
    result
}

fn remaining() -> u64 {
    BUDGET.with(Cell::get)
}

fn charge(name: &str, bytes: u64) -> anyhow::Result<()> {
    let left = remaining();
    if bytes > left {
        bail!(
            "{name}: would exceed the evaluation's memory limit ({bytes} bytes asked, {left} left)"
        );
    }
    BUDGET.with(|b| b.set(left - bytes));
    Ok(())
}

fn bounded_call(name: &'static str, args: &[Value]) -> anyhow::Result<Value> {
    let left = remaining();
    let size = size_of_values(args, left)
        .ok_or_else(|| anyhow!("{name}: arguments exceed the evaluation's memory limit"))?;
    match cost(name) {
        Cost::Scalar => {}
        Cost::Linear => charge(name, size.saturating_mul(2))?,
        Cost::PerByte => charge(name, size.saturating_mul(PER_BYTE))?,
        Cost::Custom => charge(name, custom_cost(name, args, size)?)?,
    }
    call_builtin(name, args)
}

fn custom_cost(name: &str, args: &[Value], size: u64) -> anyhow::Result<u64> {
    let number = |i: usize| args.get(i).and_then(|v| v.as_f64().ok());
    let string = |i: usize| args.get(i).and_then(|v| v.as_string().ok());
    match name {
        "numbers.range" => {
            let (Some(a), Some(b)) = (number(0), number(1)) else {
                return Ok(0); // not numbers: regorus reports the type error
            };
            range_bytes(name, (b - a).abs())
        }
        "numbers.range_step" => {
            let (Some(a), Some(b), Some(step)) = (number(0), number(1), number(2)) else {
                return Ok(0);
            };
            // regorus divides by the step before checking it: refuse zero (and what OPA refuses) first.
            if !(step >= 1.0 && step.fract() == 0.0) {
                bail!("numbers.range_step: step must be a positive integer");
            }
            range_bytes(name, ((b - a).abs() / step).floor())
        }
        "concat" => {
            let separator = string(0).map_or(0, |s| s.len() as u64);
            let parts = match args.get(1) {
                Some(Value::Array(a)) => a.iter().count() as u64,
                Some(Value::Set(s)) => s.len() as u64,
                _ => 0,
            };
            Ok(size.saturating_add(separator.saturating_mul(parts)))
        }
        "replace" => {
            let (Some(s), Some(old), Some(new)) = (string(0), string(1), string(2)) else {
                return Ok(0);
            };
            // `str::replace` with an empty pattern inserts at every character boundary.
            let hits = if old.is_empty() {
                s.chars().count() as u64 + 1
            } else {
                s.matches(old.as_ref()).count() as u64
            };
            Ok((s.len() as u64).saturating_add(hits.saturating_mul(new.len() as u64)))
        }
        "sprintf" => {
            let format = string(0).map_or(0, |s| s.len() as u64);
            // Text of a value: escaping can take six bytes per byte (`\u0000`).
            Ok(format
                .saturating_mul(SPRINTF_VERB_BYTES)
                .saturating_add(size.saturating_mul(6)))
        }
        _ => Ok(size),
    }
}

fn range_bytes(name: &str, span: f64) -> anyhow::Result<u64> {
    let elements = span + 1.0;
    let bytes = elements * VALUE_BYTES as f64;
    if !bytes.is_finite() || bytes >= remaining() as f64 {
        bail!("{name}: {elements} elements would exceed the evaluation's memory limit");
    }
    Ok(bytes as u64)
}

/// Run regorus's own implementation of a builtin (strict errors, as the engine's default).
fn call_builtin(name: &str, args: &[Value]) -> anyhow::Result<Value> {
    let (builtin, _) = BUILTINS
        .get(name)
        .ok_or_else(|| anyhow!("unknown builtin {name}"))?;
    let source = Source::from_contents("builtin".into(), name.to_string())?;
    let span = Span {
        source,
        line: 1,
        col: 1,
        start: 0,
        end: u32::try_from(name.len()).unwrap_or(0),
    };
    let params: Vec<Ref<Expr>> = args
        .iter()
        .map(|_| {
            Ref::new(Expr::Null {
                span: span.clone(),
                value: Value::Null,
                eidx: 0,
            })
        })
        .collect();
    builtin(&span, &params, args, true)
}

/// Size of values as if every shared part were written out, or `None` once it passes `cap`. Iterative, and it
/// stops at the cap, so a value shared 2^40 times over costs no more to measure than `cap` bytes.
pub fn size_of_values(values: &[Value], cap: u64) -> Option<u64> {
    let mut total: u64 = 0;
    let mut stack: Vec<&Value> = values.iter().collect();
    while let Some(value) = stack.pop() {
        total = total.saturating_add(match value {
            Value::String(s) => 24 + s.len() as u64,
            Value::Array(a) => {
                stack.extend(a.iter());
                VALUE_BYTES
            }
            Value::Set(s) => {
                stack.extend(s.iter());
                VALUE_BYTES
            }
            Value::Object(o) => {
                for (k, v) in o.iter() {
                    stack.push(k);
                    stack.push(v);
                }
                VALUE_BYTES
            }
            _ => 16,
        });
        if total > cap {
            return None;
        }
    }
    Some(total)
}
