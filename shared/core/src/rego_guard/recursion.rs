//! Refusing recursion between a module's rules and functions, from regorus's syntax tree.

use super::*;

/// Refuse recursion between the module's rules and functions. Rego forbids it, but regorus only notices a rule
/// that depends on itself; a recursive *function* (`f(x) := f(x)`) recurses until the thread's stack overflows,
/// which aborts the process. Conservative: any rule or function reachable from itself through the names its
/// head and bodies mention (locals that share a rule's name included) is refused.
pub fn check_recursion(modules: &[Ref<regorus::unstable::Module>]) -> Result<(), String> {
    use regorus::unstable::{Rule, RuleHead};
    use std::collections::{BTreeMap, BTreeSet};

    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in modules {
        for rule in &module.policy {
            let mut exprs: Vec<&Ref<Expr>> = Vec::new();
            let mut queries = Vec::new();
            let head = match rule.as_ref() {
                Rule::Default {
                    refr, args, value, ..
                } => {
                    exprs.extend(args.iter());
                    exprs.push(value);
                    refr
                }
                Rule::Spec { head, bodies, .. } => {
                    for body in bodies {
                        if let Some(assign) = &body.assign {
                            exprs.push(&assign.value);
                        }
                        queries.push(&body.query);
                    }
                    match head {
                        RuleHead::Compr { refr, assign, .. } => {
                            exprs.extend(assign.iter().map(|a| &a.value));
                            refr
                        }
                        RuleHead::Set { refr, key, .. } => {
                            exprs.extend(key.iter());
                            refr
                        }
                        RuleHead::Func {
                            refr, args, assign, ..
                        } => {
                            exprs.extend(args.iter());
                            exprs.extend(assign.iter().map(|a| &a.value));
                            refr
                        }
                    }
                }
            };
            let Some(name) = root_name(head) else {
                continue;
            };
            let mentioned = graph.entry(name).or_default();
            collect_names(exprs, queries, mentioned);
        }
    }
    // Kahn's algorithm over the defined names: whatever cannot be ordered lies on a cycle.
    let defined: BTreeSet<String> = graph.keys().cloned().collect();
    let mut pending: BTreeMap<&str, usize> = graph
        .iter()
        .map(|(name, uses)| (name.as_str(), uses.intersection(&defined).count()))
        .collect();
    let mut ready: Vec<&str> = pending
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(name, _)| *name)
        .collect();
    while let Some(done) = ready.pop() {
        pending.remove(done);
        for (name, uses) in &graph {
            if uses.contains(done) {
                if let Some(n) = pending.get_mut(name.as_str()) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        ready.push(name.as_str());
                    }
                }
            }
        }
    }
    match pending.keys().next() {
        None => Ok(()),
        Some(name) => Err(format!(
            "rego rule or function `{name}` depends on itself; recursion is not allowed"
        )),
    }
}

fn root_name(expr: &Ref<Expr>) -> Option<String> {
    let mut expr = expr;
    loop {
        match expr.as_ref() {
            Expr::Var { value, .. } => return value.as_string().ok().map(|s| s.to_string()),
            Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => expr = refr,
            _ => return None,
        }
    }
}

/// Every variable name mentioned in `exprs` and `queries`, iteratively.
fn collect_names<'a>(
    mut exprs: Vec<&'a Ref<Expr>>,
    mut queries: Vec<&'a Ref<regorus::unstable::Query>>,
    out: &mut std::collections::BTreeSet<String>,
) {
    use regorus::unstable::Literal;
    loop {
        if let Some(query) = queries.pop() {
            for stmt in &query.stmts {
                for with in &stmt.with_mods {
                    exprs.push(&with.refr);
                    exprs.push(&with.r#as);
                }
                match &stmt.literal {
                    Literal::SomeVars { .. } => {}
                    Literal::SomeIn {
                        key,
                        value,
                        collection,
                        ..
                    } => {
                        exprs.extend(key.iter());
                        exprs.push(value);
                        exprs.push(collection);
                    }
                    Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => exprs.push(expr),
                    Literal::Every { domain, query, .. } => {
                        exprs.push(domain);
                        queries.push(query);
                    }
                }
            }
            continue;
        }
        let Some(expr) = exprs.pop() else {
            return;
        };
        match expr.as_ref() {
            Expr::Var { value, .. } => {
                if let Ok(name) = value.as_string() {
                    out.insert(name.to_string());
                }
            }
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Array { items, .. } | Expr::Set { items, .. } => exprs.extend(items.iter()),
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    exprs.push(k);
                    exprs.push(v);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                exprs.push(term);
                queries.push(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                exprs.push(key);
                exprs.push(value);
                queries.push(query);
            }
            Expr::Call { fcn, params, .. } => {
                exprs.push(fcn);
                exprs.extend(params.iter());
            }
            Expr::UnaryExpr { expr, .. } => exprs.push(expr),
            Expr::RefDot { refr, .. } => exprs.push(refr),
            Expr::RefBrack { refr, index, .. } => {
                exprs.push(refr);
                exprs.push(index);
            }
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                exprs.push(lhs);
                exprs.push(rhs);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                exprs.extend(key.iter());
                exprs.push(value);
                exprs.push(collection);
            }
        }
    }
}
