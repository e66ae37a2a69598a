//! `Fast`'s helper threads: fine-grained parallelism without sleeping pool threads.
//!
//! The products of a layer-sized program (256×256×256: about 200 µs) are too short for a
//! thread pool whose idle threads go to sleep: waking one costs about what it saves (on the
//! 2-core development machine a rayon `join` of two such products ran slower than the two
//! one after the other). Each helper thread instead spins for [`SPIN`] after its last task,
//! so that the next one — the next layer's products — starts within a microsecond, and only
//! then sleeps until woken. Work is handed out as parts of one call: part 0 runs on the
//! calling thread, part `i` on helper `i - 1`, and the call returns when every part is done.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper spins for new work (and a caller for its parts) before sleeping.
const SPIN: Duration = Duration::from_millis(2);

/// A part of a call, its borrows erased ([`run_parts`] keeps them alive until it is done).
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The helpers' inboxes, started on first use.
static HELPERS: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

/// The inbox of helper `i`, starting helpers up to it; `None` if a thread cannot be started.
fn helper(i: usize) -> Option<Sender<Job>> {
    let mut helpers = HELPERS.lock().unwrap_or_else(PoisonError::into_inner);
    while helpers.len() <= i {
        let (send, recv) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("nnx-fast-{}", helpers.len() + 1))
            .spawn(move || serve(&recv))
            .ok()?;
        helpers.push(send);
    }
    helpers.get(i).cloned()
}

thread_local! {
    /// Whether this thread is running a part (a helper always is): a part that splits its
    /// own work again runs all of it here. A helper waiting on its own inbox would wait
    /// forever, and the caller's part would wait for helpers busy with the other parts.
    static IN_PART: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Spins until `ready()` or until [`SPIN`] has passed (the clock is read every few hundred
/// turns: reading it is a system call's worth of time); `true` if ready.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    loop {
        for _ in 0..256 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if started.elapsed() >= SPIN {
            return ready();
        }
    }
}

fn serve(recv: &Receiver<Job>) {
    IN_PART.with(|p| p.set(true));
    loop {
        let pending = std::cell::Cell::new(None);
        let disconnected = std::cell::Cell::new(false);
        spin_until(|| match recv.try_recv() {
            Ok(job) => {
                pending.set(Some(job));
                true
            }
            Err(TryRecvError::Disconnected) => {
                disconnected.set(true);
                true
            }
            Err(TryRecvError::Empty) => false,
        });
        if disconnected.get() {
            return;
        }
        let job = match pending.take() {
            Some(job) => job,
            None => match recv.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        job();
    }
}

/// Counts a call's outstanding parts; the caller waits on it.
struct Latch {
    remaining: AtomicUsize,
    panicked: AtomicBool,
    caller: Thread,
}

impl Latch {
    fn done(&self, panicked: bool) {
        if panicked {
            self.panicked.store(true, Ordering::Relaxed);
        }
        // The caller may return as soon as the count reaches zero: take what is needed to
        // wake it before.
        let caller = self.caller.clone();
        self.remaining.fetch_sub(1, Ordering::Release);
        caller.unpark();
    }

    fn wait(&self) {
        let done = || self.remaining.load(Ordering::Acquire) == 0;
        if !spin_until(done) {
            while !done() {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        }
    }
}

/// Waits for the latch when dropped, also while unwinding from a panic in part 0: no part
/// may outlive the borrows of [`run_parts`]'s frame.
struct WaitOnDrop<'a>(&'a Latch);

impl Drop for WaitOnDrop<'_> {
    fn drop(&mut self) {
        self.0.wait();
    }
}

/// Runs `part(0)`, …, `part(parts - 1)`, part 0 on the calling thread and the others on
/// helper threads, and returns when all are done. A part that panics on a helper makes this
/// panic too, after every part has finished. Called from a helper, every part runs there.
pub(crate) fn run_parts(parts: usize, part: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 || IN_PART.with(std::cell::Cell::get) {
        (0..parts).for_each(part);
        return;
    }
    let latch = Latch {
        remaining: AtomicUsize::new(parts - 1),
        panicked: AtomicBool::new(false),
        caller: std::thread::current(),
    };
    {
        let _wait = WaitOnDrop(&latch);
        for i in 1..parts {
            let latch_ref = &latch;
            let job = move || {
                let result = catch_unwind(AssertUnwindSafe(|| part(i)));
                latch_ref.done(result.is_err());
            };
            let job: Box<dyn FnOnce() + Send + '_> = Box::new(job);
            // SAFETY: the job borrows `part` and `latch`, both of which live in this frame
            // (or its caller's) until `_wait` is dropped. Dropping `_wait` — on return and on
            // unwinding alike — blocks until `latch.remaining` is zero, which happens only
            // after this job's last access to anything it borrows (`done` clones the caller's
            // handle before the decrement). A job that is never run (its helper gone) is run
            // right here instead, so the count always reaches zero. The erased lifetime is
            // therefore never outlived.
            #[allow(unsafe_code)]
            let job: Job = unsafe { std::mem::transmute::<_, Job>(job) };
            match helper(i - 1) {
                Some(inbox) => {
                    if let Err(mpsc::SendError(job)) = inbox.send(job) {
                        job();
                    }
                }
                // No helper thread could be started: the part runs here.
                None => job(),
            }
        }
        // Part 0 runs as a part: what it splits again stays on this thread.
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_PART.with(|p| p.set(false));
            }
        }
        IN_PART.with(|p| p.set(true));
        let _reset = Reset;
        part(0);
    }
    if latch.panicked.load(Ordering::Relaxed) {
        panic!("a part of a parallel kernel panicked on a helper thread");
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// `(a(), b())`, `b` on a helper thread.
pub(crate) fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    let tasks = (Mutex::new(Some(a)), Mutex::new(Some(b)));
    let results: (Mutex<Option<A>>, Mutex<Option<B>>) = (Mutex::new(None), Mutex::new(None));
    run_parts(2, &|i| {
        if i == 0 {
            if let Some(a) = take(&tasks.0) {
                *results.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(a());
            }
        } else if let Some(b) = take(&tasks.1) {
            *results.1.lock().unwrap_or_else(PoisonError::into_inner) = Some(b());
        }
    });
    match (take(&results.0), take(&results.1)) {
        (Some(a), Some(b)) => (a, b),
        // Both parts ran to completion (a panic would have propagated above).
        _ => unreachable!("join's parts both completed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_run_once_each_and_borrow_the_callers_data() {
        let data: Vec<usize> = (0..1000).collect();
        let sums: Vec<Mutex<usize>> = (0..3).map(|_| Mutex::new(0)).collect();
        for _ in 0..50 {
            run_parts(3, &|i| {
                let s: usize = data[i * 300..(i + 1) * 300].iter().sum();
                *sums[i].lock().unwrap() += s;
            });
        }
        let total: usize = sums.iter().map(|s| *s.lock().unwrap()).sum();
        assert_eq!(total, 50 * data[..900].iter().sum::<usize>());
        let (a, b) = join(|| data.len(), || data.iter().sum::<usize>());
        assert_eq!((a, b), (1000, 499_500));
    }

    #[test]
    fn a_panicking_part_panics_the_caller_after_all_parts_finish() {
        let finished = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_parts(2, &|i| {
                if i == 1 {
                    panic!("boom");
                }
                std::thread::sleep(Duration::from_millis(5));
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }));
        assert!(result.is_err());
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        // The helper survives and keeps serving.
        let (a, b) = join(|| 1, || 2);
        assert_eq!((a, b), (1, 2));
    }

    #[test]
    fn parts_that_split_again_do_not_wait_on_themselves() {
        let total = AtomicUsize::new(0);
        run_parts(2, &|_| {
            run_parts(2, &|j| {
                total.fetch_add(j + 1, Ordering::SeqCst);
            })
        });
        assert_eq!(total.load(Ordering::SeqCst), 6);
    }
}
