//! A small real dataset shipped with the crate, for examples and tests: scikit-learn's copy
//! of the UCI handwritten digits (`data/digits.bin`, see `data/DIGITS.md` for its source and
//! licence).

use nnx_core::{Error, Result, Tensor};

const DIGITS: &[u8] = include_bytes!("../data/digits.bin");

/// Images and their labels.
#[derive(Clone, Debug)]
pub struct Digits {
    /// `[n, 8, 8, 1]` float32 pixels in `[0, 1]` (channels last, as `nnx.Conv` takes them).
    pub images: Tensor,
    /// `[n]` int32 labels `0..=9`.
    pub labels: Tensor,
}

/// The 1,797 handwritten digits (8×8, `sklearn.datasets.load_digits`), pixels scaled to
/// `[0, 1]`, in the file's order.
///
/// ```
/// let digits = nnx_nn::datasets::digits()?;
/// assert_eq!(digits.images.shape(), &[1797, 8, 8, 1]);
/// assert_eq!(digits.len(), 1797);
/// # Ok::<(), nnx_core::Error>(())
/// ```
///
/// # Errors
/// None in practice (the data ships with the crate).
pub fn digits() -> Result<Digits> {
    let records = DIGITS.chunks_exact(65);
    let n = records.len();
    let mut pixels = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for record in records {
        pixels.extend(record[..64].iter().map(|&p| f32::from(p) / 16.0));
        labels.push(i32::from(record[64]));
    }
    Ok(Digits {
        images: Tensor::from_vec(&[n, 8, 8, 1], pixels)?,
        labels: Tensor::from_vec(&[n], labels)?,
    })
}

impl Digits {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.shape()[0]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images at `indices`, in that order (a batch).
    ///
    /// # Errors
    /// An index out of range.
    pub fn select(&self, indices: &[usize]) -> Result<Digits> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::shape(
                "Digits",
                format!("index {bad} of {} images", self.len()),
            ));
        }
        let at = Tensor::from_vec(
            &[indices.len()],
            indices.iter().map(|&i| i as i32).collect::<Vec<_>>(),
        )?;
        Ok(Digits {
            images: self.images.take(&at, 0)?,
            labels: self.labels.take(&at, 0)?,
        })
    }

    /// The images shuffled by `seed` (a xorshift-driven Fisher–Yates shuffle, the same for
    /// the same seed) in batches of `batch_size`; a last, smaller batch is dropped, so that
    /// every batch has one shape (and a `jit`ted step traces once).
    ///
    /// # Errors
    /// `batch_size` zero.
    pub fn batches(&self, batch_size: usize, seed: u64) -> Result<Vec<Digits>> {
        if batch_size == 0 {
            return Err(Error::shape(
                "Digits",
                "batches: batch_size must be positive",
            ));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        order
            .chunks_exact(batch_size)
            .map(|chunk| self.select(chunk))
            .collect()
    }

    /// A deterministic split: every `every`-th image (from the first) for testing, the rest
    /// for training. Writers are spread through the file, so both parts see all of them.
    ///
    /// # Errors
    /// `every` zero.
    pub fn split(&self, every: usize) -> Result<(Digits, Digits)> {
        if every == 0 {
            return Err(Error::shape("Digits", "split: every must be positive"));
        }
        let (test, train): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|i| i % every == 0);
        Ok((self.select(&train)?, self.select(&test)?))
    }
}
