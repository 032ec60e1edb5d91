//! The one way work runs in parallel here: items taken in order by a fixed number of workers
//! (a rayon pool of that size), results back in item order, and an optional early stop.
//!
//! Each caller says how many workers it wants: [`cpu`] for work that keeps a core busy
//! (hashing contexts, planning jobs), [`NETWORK`] for work that mostly waits on the registry
//! (one `HEAD` or one layer per item), or its own number (`-j N` builds, release resolution).
//! Taking items in order means one worker runs them in order, and a stop leaves exactly the
//! items not yet taken.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Workers for work that mostly waits on the registry: enough requests in flight to hide the
/// round trips, few enough not to flood one registry.
pub const NETWORK: usize = 16;

/// Workers for work that keeps a core busy: one per core the process may use.
pub fn cpu() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Whether the workers should take another item.
pub enum Next {
    Continue,
    /// Take no new item (the ones running finish).
    Stop,
}

/// Runs `f` on `items` with up to `workers` at once; `f` says whether to go on. Returns one
/// result per item in item order, `None` for the items never taken after a stop.
pub fn run<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(usize, &T) -> (R, Next) + Sync,
) -> Vec<Option<R>> {
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let worker = || {
        while !stop.load(Ordering::SeqCst) {
            let index = next.fetch_add(1, Ordering::SeqCst);
            let Some(item) = items.get(index) else { return };
            let (r, then) = f(index, item);
            if matches!(then, Next::Stop) {
                stop.store(true, Ordering::SeqCst);
            }
            *results[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    };
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        // One worker: no pool to start, the items run on this thread.
        worker();
        return into_results(results);
    }
    match rayon::ThreadPoolBuilder::new().num_threads(workers).build() {
        Ok(pool) => pool.scope(|s| {
            for _ in 0..workers {
                s.spawn(|_| worker());
            }
        }),
        // No threads to be had: one item after the other on this one.
        Err(_) => worker(),
    }
    into_results(results)
}

fn into_results<R>(results: Vec<Mutex<Option<R>>>) -> Vec<Option<R>> {
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// [`run`] without a stop: `f` on every item, results in item order.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    run(items, workers, |_, item| (f(item), Next::Continue))
        .into_iter()
        .map(|r| r.expect("without a stop every item is taken"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_work_gets_at_least_one_worker() {
        assert!(cpu() >= 1);
    }

    #[test]
    fn results_come_back_in_item_order() {
        let items: Vec<u32> = (0..100).collect();
        let out = map(&items, 8, |i| {
            std::thread::sleep(std::time::Duration::from_micros(u64::from(100 - i)));
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_stop_leaves_exactly_the_items_not_yet_taken() {
        let items: Vec<u32> = (0..10).collect();
        // One worker: items are taken one after the other, the stop comes at item 3.
        let out = run(&items, 1, |_, &i| {
            (i, if i == 3 { Next::Stop } else { Next::Continue })
        });
        assert_eq!(
            out,
            [
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
    }
}
