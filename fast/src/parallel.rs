//! How `Fast` uses the machine's cores: an explicit, process-wide setting.
//!
//! Large GEMMs are split across threads by rows of their result; batches of independent products and
//! memory-bound passes over large buffers (per-example gradients) are split across threads
//! by the engine. Everything else runs on the calling thread. The default uses every core
//! (`Threads(n)` with `n` from [`std::thread::available_parallelism`]); `Sequential` keeps
//! every kernel on the calling thread (for embedding in a program that manages its own
//! threads, or for measurements).
//!
//! ```
//! use nnx_fast::{Fast, Parallelism};
//! let before = Fast::parallelism();
//! Fast::set_parallelism(Parallelism::Sequential);
//! assert_eq!(Fast::parallelism(), Parallelism::Sequential);
//! Fast::set_parallelism(before);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Fast;
use crate::helper;

/// How many threads `Fast`'s kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// Every kernel on the calling thread.
    Sequential,
    /// Large kernels split across up to this many threads (the calling one and helpers).
    Threads(usize),
}

/// 0: not set (every core); 1: sequential; n: `Threads(n)`.
static THREADS: AtomicUsize = AtomicUsize::new(0);

impl Fast {
    /// Sets how `Fast` uses the cores, for the whole process. `Threads(0)` and `Threads(1)`
    /// mean `Sequential`.
    pub fn set_parallelism(parallelism: Parallelism) {
        let n = match parallelism {
            Parallelism::Sequential => 1,
            Parallelism::Threads(n) => n.max(1),
        };
        THREADS.store(n, Ordering::Relaxed);
    }

    /// The current setting (by default `Threads(n)` for the machine's `n` cores).
    pub fn parallelism() -> Parallelism {
        match threads() {
            1 => Parallelism::Sequential,
            n => Parallelism::Threads(n),
        }
    }
}

/// The number of threads kernels may use (1: sequential).
pub(crate) fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        // Asked once: the answer comes from system calls (and cgroup files).
        0 => {
            static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
        }
        n => n,
    }
}

/// Multiply-adds above which one product is split across threads by rows of its result.
/// Below, waking the other threads costs more than it saves: on the 2-core development
/// machine 256×256×256 products (the anchor workloads' layers) ran faster on one thread, in
/// a program, than through either split, while from 512×512×256 up independent row blocks
/// beat both one thread and faer's parallel GEMM (1024³: 335 against 275 GFLOP/s).
const ROW_SPLIT: usize = 1 << 22;

/// Rows of the result each thread gets at least, when splitting by rows.
const MIN_ROWS: usize = 32;

/// How many blocks of rows a product of `m` result rows, each costing `row_madds`
/// multiply-adds, is split into (1: not split), one sequential GEMM per thread.
pub(crate) fn row_blocks(m: usize, row_madds: usize) -> usize {
    let n = threads();
    if n <= 1 || m.saturating_mul(row_madds) < ROW_SPLIT {
        1
    } else {
        n.min(m / MIN_ROWS).max(1)
    }
}

/// Bytes of output below which a pass is not worth splitting.
const PARALLEL_BYTES: usize = 1 << 18;

/// Runs `f(i, chunk)` for every `chunk`-sized piece `i` of `out` (the last may be shorter),
/// split across the threads when `out` is large and there are several pieces.
pub(crate) fn for_each_chunk(out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let chunk = chunk.max(1);
    let n = threads();
    let pieces = out.len().div_ceil(chunk);
    if n <= 1 || pieces < 2 || out.len() * 4 < PARALLEL_BYTES {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    // One contiguous run of pieces per thread.
    let per_thread = pieces.div_ceil(n);
    let runs: Vec<std::sync::Mutex<&mut [f32]>> = out
        .chunks_mut(per_thread * chunk)
        .map(std::sync::Mutex::new)
        .collect();
    helper::run_parts(runs.len(), &|t| {
        let mut run = runs[t]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, c) in run.chunks_mut(chunk).enumerate() {
            f(t * per_thread + i, c);
        }
    });
}
