//! Reading a state machine back: which steps are certain to have finished
//! when a step starts (its happens-before set), and how long an execution
//! takes with given step durations and unlimited workers.
//!
//! This walks the ASL JSON only (states, `Next`, `Default`, `Choices`,
//! `Branches`, `ItemProcessor`), never the compiler's own structures, so
//! tests and the benchmark check the compiler against an independent reading.
//! A Task's step is its `Parameters.step` (activity) or
//! `Parameters.MessageBody.step` (approval). Catch paths are failure paths
//! and are not followed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value as Json;

pub type Set = BTreeSet<String>;

/// For every step reached on the normal path: the steps finished before it
/// starts, on every path (Choice joins take the intersection).
pub fn happens_before(def: &Json) -> Result<BTreeMap<String, Set>, String> {
    let mut before = BTreeMap::new();
    region(def, &Set::new(), &mut before)?;
    Ok(before)
}

/// The execution time with `duration(step)` per task and unlimited workers
/// (every Parallel branch and Map item at once). A Choice counts as its
/// longest branch that does not fail.
pub fn makespan(def: &Json, duration: &dyn Fn(&str) -> f64) -> Result<f64, String> {
    let mut memo = HashMap::new();
    let start = str_field(def, "StartAt")?;
    longest(def, start, duration, &mut memo)?.ok_or_else(|| "no successful path".to_string())
}

fn str_field<'a>(v: &'a Json, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| format!("missing `{key}`"))
}

fn states(region: &Json) -> Result<&serde_json::Map<String, Json>, String> {
    region
        .get("States")
        .and_then(Json::as_object)
        .ok_or_else(|| "missing `States`".to_string())
}

/// Normal-flow successors of a state.
fn successors(state: &Json) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    if let Some(n) = state.get("Next").and_then(Json::as_str) {
        out.push(n);
    }
    if let Some(cs) = state.get("Choices").and_then(Json::as_array) {
        out.extend(
            cs.iter()
                .filter_map(|c| c.get("Next").and_then(Json::as_str)),
        );
    }
    if let Some(d) = state.get("Default").and_then(Json::as_str) {
        out.push(d);
    }
    out
}

fn task_step(state: &Json) -> Option<&str> {
    let p = state.get("Parameters")?;
    p.get("step")
        .or_else(|| p.get("MessageBody").and_then(|b| b.get("step")))
        .and_then(Json::as_str)
}

fn is_end(state: &Json) -> bool {
    let ty = state.get("Type").and_then(Json::as_str);
    state.get("End").and_then(Json::as_bool) == Some(true) || ty == Some("Succeed")
}

/// Dataflow over one region; returns the set finished at its (successful) ends.
fn region(def: &Json, input: &Set, before: &mut BTreeMap<String, Set>) -> Result<Set, String> {
    let start = str_field(def, "StartAt")?;
    let sts = states(def)?;
    let mut preds: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, st) in sts {
        for s in successors(st) {
            if !sts.contains_key(s) {
                return Err(format!("`{name}` goes to unknown state `{s}`"));
            }
            preds.entry(s).or_default().push(name);
        }
    }
    // One pass in reverse postorder: every region is acyclic but for the
    // params loop, whose back edge adds nothing.
    let order = reverse_postorder(start, sts);
    let mut outs: HashMap<&str, Set> = HashMap::new();
    for name in order {
        let st = &sts[name];
        let mut inn: Option<Set> = (name == start).then(|| input.clone());
        for p in preds.get(name).into_iter().flatten() {
            if let Some(o) = outs.get(p) {
                inn = Some(match inn {
                    None => o.clone(),
                    Some(i) => i.intersection(o).cloned().collect(),
                });
            }
        }
        let Some(inn) = inn else { continue };
        let out = match st.get("Type").and_then(Json::as_str) {
            Some("Task") => {
                let mut o = inn.clone();
                if let Some(step) = task_step(st) {
                    merge_before(before, step, &inn);
                    o.insert(step.to_string());
                }
                o
            }
            Some("Parallel") => {
                let mut o = inn.clone();
                for b in st
                    .get("Branches")
                    .and_then(Json::as_array)
                    .ok_or("Parallel without Branches")?
                {
                    o.extend(region(b, &inn, before)?);
                }
                o
            }
            Some("Map") => {
                let proc = st
                    .get("ItemProcessor")
                    .or_else(|| st.get("Iterator"))
                    .ok_or("Map without ItemProcessor")?;
                let mut o = inn.clone();
                region(proc, &inn, before)?;
                // The Map finishes its step whether items ran or were skipped.
                for s in states(proc)?.values() {
                    if let Some(step) = task_step(s) {
                        o.insert(step.to_string());
                    }
                }
                o
            }
            Some("Fail") => continue,
            _ => inn,
        };
        outs.insert(name, out);
    }
    let mut end: Option<Set> = None;
    for (name, st) in sts {
        if let Some(o) = outs.get(name.as_str()).filter(|_| is_end(st)) {
            end = Some(match end {
                None => o.clone(),
                Some(e) => e.intersection(o).cloned().collect(),
            });
        }
    }
    Ok(end.unwrap_or_default())
}

fn reverse_postorder<'a>(start: &'a str, sts: &'a serde_json::Map<String, Json>) -> Vec<&'a str> {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut post = Vec::new();
    let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
    seen.insert(start);
    while let Some((name, i)) = stack.pop() {
        let succ = sts.get(name).map(successors).unwrap_or_default();
        if let Some(&next) = succ.get(i) {
            stack.push((name, i + 1));
            if seen.insert(next) {
                stack.push((next, 0));
            }
        } else {
            post.push(name);
        }
    }
    post.reverse();
    post
}

fn merge_before(before: &mut BTreeMap<String, Set>, step: &str, set: &Set) {
    match before.get_mut(step) {
        Some(b) => *b = b.intersection(set).cloned().collect(),
        None => {
            before.insert(step.to_string(), set.clone());
        }
    }
}

/// Longest successful time from `name` to the end of its region;
/// `None` when every path fails (or loops).
fn longest<'a>(
    region: &'a Json,
    name: &'a str,
    duration: &dyn Fn(&str) -> f64,
    memo: &mut HashMap<*const Json, Option<f64>>,
) -> Result<Option<f64>, String> {
    let st = states(region)?
        .get(name)
        .ok_or_else(|| format!("unknown state `{name}`"))?;
    let key: *const Json = st;
    if let Some(v) = memo.get(&key) {
        return Ok(*v);
    }
    // In progress: a loop back here is not a path to the end.
    memo.insert(key, None);
    let own = match st.get("Type").and_then(Json::as_str) {
        Some("Task") => Some(task_step(st).map_or(0.0, duration)),
        Some("Parallel") => {
            let mut t: Option<f64> = Some(0.0);
            for b in st
                .get("Branches")
                .and_then(Json::as_array)
                .ok_or("Parallel without Branches")?
            {
                let bt = longest(b, str_field(b, "StartAt")?, duration, memo)?;
                t = match (t, bt) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            t
        }
        Some("Map") => {
            let proc = st.get("ItemProcessor").ok_or("Map without ItemProcessor")?;
            longest(proc, str_field(proc, "StartAt")?, duration, memo)?
        }
        Some("Fail") => None,
        _ => Some(0.0),
    };
    let result = match own {
        None => None,
        Some(own) if is_end(st) => Some(own),
        Some(own) => {
            let mut best: Option<f64> = None;
            for s in successors(st) {
                if let Some(t) = longest(region, s, duration, memo)? {
                    best = Some(best.map_or(t, |b: f64| b.max(t)));
                }
            }
            best.map(|b| own + b)
        }
    };
    memo.insert(key, result);
    Ok(result)
}
