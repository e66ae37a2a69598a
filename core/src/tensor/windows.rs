//! Sliding windows over the trailing spatial axes of `[batch…, spatial…, features]` arrays:
//! the patches of a convolution or a pooling (im2col, as
//! `jax.lax.conv_general_dilated_patches` extracts them) and their transpose, which adds
//! each patch element back where it came from (col2im).
//!
//! A convolution is then one GEMM of the patches with the kernel, and a pooling one
//! reduction over the window axes; their gradients go through the transpose.

use super::alloc::check_allocation;
use super::{Array, Buffer, DType, Element, map_buffer};
use crate::error::{Error, Result};

/// The windows of a convolution or pooling, one entry per spatial axis: size, step,
/// `(low, high)` zero padding, the spacing inserted between input elements (input or
/// "lhs" dilation, which a transposed convolution uses) and between window taps (kernel or
/// "rhs" dilation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Windows {
    size: Vec<usize>,
    strides: Vec<usize>,
    padding: Vec<(usize, usize)>,
    input_dilation: Vec<usize>,
    window_dilation: Vec<usize>,
}

impl Windows {
    /// Windows of `size` moving by `strides`, over the input padded with `padding` zeros,
    /// with `input_dilation - 1` zeros between input elements and taps `window_dilation`
    /// apart.
    ///
    /// # Errors
    /// [`Error::Shape`] unless every list has one entry per spatial axis (at least one) and
    /// sizes, strides and dilations are positive.
    pub fn new(
        size: &[usize],
        strides: &[usize],
        padding: &[(usize, usize)],
        input_dilation: &[usize],
        window_dilation: &[usize],
    ) -> Result<Windows> {
        let rank = size.len();
        if rank == 0
            || [strides.len(), padding.len(), input_dilation.len()]
                .into_iter()
                .chain([window_dilation.len()])
                .any(|n| n != rank)
        {
            return Err(Error::shape(
                "patches",
                format!(
                    "window size {size:?}, strides {strides:?}, padding {padding:?} and dilations {input_dilation:?}, {window_dilation:?} need one entry per spatial axis"
                ),
            ));
        }
        if [size, strides, input_dilation, window_dilation]
            .iter()
            .any(|list| list.contains(&0))
        {
            return Err(Error::shape(
                "patches",
                "window sizes, strides and dilations must be positive",
            ));
        }
        Ok(Windows {
            size: size.to_vec(),
            strides: strides.to_vec(),
            padding: padding.to_vec(),
            input_dilation: input_dilation.to_vec(),
            window_dilation: window_dilation.to_vec(),
        })
    }

    /// Windows of `size`, stride 1, no padding or dilation.
    ///
    /// # Errors
    /// As [`Windows::new`].
    pub fn dense(size: &[usize]) -> Result<Windows> {
        let ones = vec![1; size.len()];
        Windows::new(size, &ones, &vec![(0, 0); size.len()], &ones, &ones)
    }

    /// The number of spatial axes.
    pub fn rank(&self) -> usize {
        self.size.len()
    }

    /// The window size per spatial axis.
    pub fn size(&self) -> &[usize] {
        &self.size
    }

    /// The number of windows along each spatial axis of `spatial` (the input's spatial
    /// shape).
    ///
    /// # Errors
    /// [`Error::Shape`] for a window larger than the dilated, padded input, or a spatial
    /// shape of another rank.
    pub fn output_spatial(&self, spatial: &[usize]) -> Result<Vec<usize>> {
        if spatial.len() != self.rank() {
            return Err(Error::shape(
                "patches",
                format!(
                    "{} spatial axes for windows over {}",
                    spatial.len(),
                    self.rank()
                ),
            ));
        }
        (0..self.rank())
            .map(|i| {
                let extent = (self.size[i] - 1) * self.window_dilation[i] + 1;
                let padded = self.dilated(i, spatial[i]) + self.padding[i].0 + self.padding[i].1;
                if padded < extent {
                    return Err(Error::shape(
                        "patches",
                        format!(
                            "spatial axis {i}: a window of {extent} does not fit {padded} (padded) positions"
                        ),
                    ));
                }
                Ok((padded - extent) / self.strides[i] + 1)
            })
            .collect()
    }

    /// `(n - 1) * dilation + 1` positions for `n` input elements along axis `i`.
    fn dilated(&self, i: usize, n: usize) -> usize {
        n.saturating_sub(1) * self.input_dilation[i] + usize::from(n > 0)
    }

    /// The patches' shape for an input of `shape` (`[batch…, spatial…, features]`):
    /// `[batch…, windows…, size…, features]`.
    ///
    /// # Errors
    /// [`Error::Shape`] for an input with fewer than `rank + 1` axes, as
    /// [`Windows::output_spatial`].
    pub fn patches_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let first = self.first_spatial(shape)?;
        let spatial = &shape[first..shape.len() - 1];
        let mut out = shape[..first].to_vec();
        out.extend(self.output_spatial(spatial)?);
        out.extend_from_slice(&self.size);
        out.push(shape[shape.len() - 1]);
        Ok(out)
    }

    fn first_spatial(&self, shape: &[usize]) -> Result<usize> {
        shape.len().checked_sub(self.rank() + 1).ok_or_else(|| {
            Error::shape(
                "patches",
                format!(
                    "expected [batch…, {} spatial axes, features], got {shape:?}",
                    self.rank()
                ),
            )
        })
    }

    /// Where each patch row comes from, for an input of `shape`.
    ///
    /// # Errors
    /// As [`Windows::patches_shape`].
    pub fn rows(&self, shape: &[usize]) -> Result<PatchRows> {
        let first = self.first_spatial(shape)?;
        let spatial = &shape[first..shape.len() - 1];
        let windows = self.output_spatial(spatial)?;
        // Per axis, the input position each (window, tap) pair reads, if any.
        let tables: Vec<Vec<Option<usize>>> = (0..self.rank())
            .map(|i| {
                let (n, k) = (windows[i], self.size[i]);
                let mut table = Vec::with_capacity(n * k);
                for w in 0..n {
                    for t in 0..k {
                        let at = (w * self.strides[i] + t * self.window_dilation[i])
                            .checked_sub(self.padding[i].0)
                            .filter(|&p| p < self.dilated(i, spatial[i]))
                            .filter(|p| p % self.input_dilation[i] == 0)
                            .map(|p| p / self.input_dilation[i]);
                        table.push(at);
                    }
                }
                table
            })
            .collect();
        let per_batch: usize = windows.iter().chain(&self.size).product();
        let mut sources = Vec::with_capacity(per_batch);
        let rank = self.rank();
        let mut index = vec![0usize; 2 * rank];
        let extents: Vec<usize> = windows.iter().chain(&self.size).copied().collect();
        for _ in 0..per_batch {
            let mut source = Some(0usize);
            for i in 0..rank {
                let at = tables[i][index[i] * self.size[i] + index[rank + i]];
                source = source.zip(at).map(|(s, a)| s * spatial[i] + a);
            }
            sources.push(source);
            for d in (0..2 * rank).rev() {
                index[d] += 1;
                if index[d] < extents[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(PatchRows {
            batch: shape[..first].iter().product(),
            input_rows: spatial.iter().product(),
            features: shape[shape.len() - 1],
            runs: runs_of(&sources),
            sources,
        })
    }
}

/// `size=[3, 3], strides=[1, 1], padding=[(1, 1), (1, 1)]`, with dilations when not 1.
impl std::fmt::Display for Windows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "size={:?}, strides={:?}, padding={:?}",
            self.size, self.strides, self.padding
        )?;
        if self.input_dilation.iter().any(|&d| d != 1) {
            write!(f, ", input_dilation={:?}", self.input_dilation)?;
        }
        if self.window_dilation.iter().any(|&d| d != 1) {
            write!(f, ", window_dilation={:?}", self.window_dilation)?;
        }
        Ok(())
    }
}

/// The row map of one patch extraction: for every patch row (the `features` elements of
/// one batch entry, window and tap), the input row it copies, or `None` for padding.
#[derive(Debug, Clone)]
pub struct PatchRows {
    batch: usize,
    input_rows: usize,
    features: usize,
    sources: Vec<Option<usize>>,
    /// `sources` as runs `(first source, length)` of consecutive input rows (the taps of a
    /// window along the last spatial axis, with unit strides), or of padding rows: what
    /// one copy moves.
    runs: Vec<(Option<usize>, usize)>,
}

/// `sources` as maximal runs of consecutive input rows, or of padding.
fn runs_of(sources: &[Option<usize>]) -> Vec<(Option<usize>, usize)> {
    let mut runs: Vec<(Option<usize>, usize)> = Vec::new();
    for &source in sources {
        match (runs.last_mut(), source) {
            (Some((Some(first), len)), Some(s)) if *first + *len == s => *len += 1,
            (Some((None, len)), None) => *len += 1,
            _ => runs.push((source, 1)),
        }
    }
    runs
}

impl PatchRows {
    /// The number of elements of the patches.
    pub fn patch_len(&self) -> usize {
        self.batch * self.sources.len() * self.features
    }

    /// The number of elements of the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.input_rows * self.features
    }

    /// Copies the patches of `input` into `out` (padding stays as `out` has it).
    pub fn gather_into<T: Copy>(&self, input: &[T], out: &mut [T]) {
        let per_batch = self.batch_len();
        if per_batch == 0 {
            return;
        }
        for (b, patches) in out.chunks_exact_mut(per_batch).enumerate() {
            self.gather_batch_into(b, input, patches, None);
        }
    }

    /// The elements of one batch entry's patches.
    pub fn batch_len(&self) -> usize {
        self.sources.len() * self.features
    }

    /// Copies the patches of batch entry `b` of `input` into `out` (its
    /// [`PatchRows::batch_len`] elements); padding rows are set to `pad`, or left as `out`
    /// has them when `None`. Batch entries are independent: engines may copy them on
    /// several threads.
    pub fn gather_batch_into<T: Copy>(&self, b: usize, input: &[T], out: &mut [T], pad: Option<T>) {
        let c = self.features;
        if c == 0 {
            return;
        }
        let x = &input[b * self.input_rows * c..(b + 1) * self.input_rows * c];
        if c == 1 {
            // One feature (a grayscale image): element by element, not one copy call each.
            for (o, source) in out.iter_mut().zip(&self.sources) {
                match (source, pad) {
                    (Some(s), _) => *o = x[*s],
                    (None, Some(pad)) => *o = pad,
                    (None, None) => {}
                }
            }
            return;
        }
        let mut at = 0;
        for &(source, len) in &self.runs {
            let rows = &mut out[at * c..(at + len) * c];
            match (source, pad) {
                (Some(s), _) => rows.copy_from_slice(&x[s * c..(s + len) * c]),
                (None, Some(pad)) => rows.fill(pad),
                (None, None) => {}
            }
            at += len;
        }
    }

    /// Adds every patch row of `patches` into the input row it came from, in `out` (the
    /// input's shape, zeroed by the caller): in patch order, so every engine sums in the
    /// same order. `add` is the element type's addition (wrapping for integers).
    pub fn scatter_add_into<T: Copy>(&self, patches: &[T], out: &mut [T], add: impl Fn(T, T) -> T) {
        let per_batch = self.input_batch_len();
        if per_batch == 0 {
            return;
        }
        for (b, input) in out.chunks_exact_mut(per_batch).enumerate() {
            self.scatter_add_batch_into(b, patches, input, &add);
        }
    }

    /// The elements of one batch entry of the input.
    pub fn input_batch_len(&self) -> usize {
        self.input_rows * self.features
    }

    /// [`PatchRows::scatter_add_into`] for batch entry `b` alone: its patch rows of
    /// `patches` added into `input` (that entry's [`PatchRows::input_batch_len`] elements).
    /// Batch entries are independent: engines may add them on several threads.
    pub fn scatter_add_batch_into<T: Copy>(
        &self,
        b: usize,
        patches: &[T],
        input: &mut [T],
        add: impl Fn(T, T) -> T,
    ) {
        let c = self.features;
        let per_batch = self.batch_len();
        let rows = &patches[b * per_batch..(b + 1) * per_batch];
        for (row, source) in rows.chunks_exact(c.max(1)).zip(&self.sources) {
            if let Some(s) = source {
                for (o, &v) in input[s * c..(s + 1) * c].iter_mut().zip(row) {
                    *o = add(*o, v);
                }
            }
        }
    }
}

impl Array {
    /// The patches of `self` (`[batch…, spatial…, features]`) under `windows`:
    /// `[batch…, windows…, size…, features]`, zeros where a window reads padding or
    /// dilation holes.
    ///
    /// ```
    /// # use nnx_core::{Array, tensor::Windows};
    /// let x = Array::arange(4).reshape(&[4, 1])?; // 4 positions, 1 feature
    /// let p = x.patches(&Windows::dense(&[2])?)?;
    /// assert_eq!(p.shape(), &[3, 2, 1]);
    /// assert_eq!(p.to_vec::<i32>()?, vec![0, 1, 1, 2, 2, 3]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Windows::patches_shape`]; [`Error::UnsupportedDType`] for keys;
    /// [`Error::ArrayTooLarge`] for patches the machine cannot hold.
    pub fn patches(&self, windows: &Windows) -> Result<Array> {
        let shape = windows.patches_shape(self.shape())?;
        check_dtype("patches", self.dtype())?;
        check_allocation(&shape, self.dtype())?;
        let rows = windows.rows(self.shape())?;
        let buffer = map_buffer!(self.buffer(), data => {
            let mut out = vec![Default::default(); rows.patch_len()];
            rows.gather_into(data, &mut out);
            out
        });
        Ok(Array::from_parts(shape, buffer, self.is_weak()))
    }

    /// The transpose of [`Array::patches`] for an input of spatial shape `spatial`: each
    /// element of `self` (`[batch…, windows…, size…, features]`) is added to the input
    /// position it was read from (col2im).
    ///
    /// # Errors
    /// [`Error::Shape`] when `self` is not the patches' shape of such an input;
    /// [`Error::UnsupportedDType`] for bool and keys.
    pub fn patches_transpose(&self, windows: &Windows, spatial: &[usize]) -> Result<Array> {
        let input = patches_input_shape(windows, self.shape(), spatial)?;
        let rows = windows.rows(&input)?;
        let buffer = match self.buffer() {
            Buffer::F32(d) => f32::into_buffer(scatter(&rows, d, |a, b| a + b)),
            Buffer::I32(d) => i32::into_buffer(scatter(&rows, d, i32::wrapping_add)),
            Buffer::U32(d) => u32::into_buffer(scatter(&rows, d, u32::wrapping_add)),
            _ => {
                return Err(Error::UnsupportedDType {
                    op: "patches_transpose",
                    dtype: self.dtype(),
                    expected: Some("int32, uint32 or float32"),
                });
            }
        };
        Ok(Array::from_parts(input, buffer, self.is_weak()))
    }
}

/// The input shape `[batch…, spatial…, features]` whose patches under `windows` have
/// `patches`'s shape.
///
/// # Errors
/// [`Error::Shape`] when there is none.
pub fn patches_input_shape(
    windows: &Windows,
    patches: &[usize],
    spatial: &[usize],
) -> Result<Vec<usize>> {
    let rank = windows.rank();
    let lead = patches.len().checked_sub(2 * rank + 1).ok_or_else(|| {
        Error::shape(
            "patches_transpose",
            format!("expected [batch…, windows…, size…, features], got {patches:?}"),
        )
    })?;
    let mut input = patches[..lead].to_vec();
    input.extend_from_slice(spatial);
    input.push(patches[patches.len() - 1]);
    if spatial.len() != rank || windows.patches_shape(&input)? != patches {
        return Err(Error::shape(
            "patches_transpose",
            format!("{patches:?} are not the patches of an input with spatial shape {spatial:?}"),
        ));
    }
    Ok(input)
}

fn check_dtype(op: &'static str, dtype: DType) -> Result<()> {
    match dtype {
        DType::Key => Err(Error::UnsupportedDType {
            op,
            dtype,
            expected: None,
        }),
        _ => Ok(()),
    }
}

fn scatter<T: Copy + Default>(rows: &PatchRows, patches: &[T], add: fn(T, T) -> T) -> Vec<T> {
    let mut out = vec![T::default(); rows.input_len()];
    rows.scatter_add_into(patches, &mut out, add);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_padded_dilated_windows() {
        // 5 positions, windows of 2 taps 2 apart, stride 2, one zero of padding each side.
        let w = Windows::new(&[2], &[2], &[(1, 1)], &[1], &[2]).unwrap();
        let x = Array::from_vec(&[5, 1], vec![1.0f32, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let p = x.patches(&w).unwrap();
        assert_eq!(p.shape(), &[3, 2, 1]);
        assert_eq!(
            p.to_vec::<f32>().unwrap(),
            vec![0.0, 2.0, 2.0, 4.0, 4.0, 0.0]
        );
        let back = p.patches_transpose(&w, &[5]).unwrap();
        assert_eq!(back.to_vec::<f32>().unwrap(), vec![0.0, 4.0, 0.0, 8.0, 0.0]);
    }

    #[test]
    fn input_dilation_inserts_holes() {
        let w = Windows::new(&[2], &[1], &[(0, 0)], &[2], &[1]).unwrap();
        let x = Array::from_vec(&[1, 3, 1], vec![1i32, 2, 3]).unwrap();
        let p = x.patches(&w).unwrap();
        assert_eq!(p.shape(), &[1, 4, 2, 1]);
        assert_eq!(p.to_vec::<i32>().unwrap(), vec![1, 0, 0, 2, 2, 0, 0, 3]);
    }

    #[test]
    fn two_spatial_axes_and_errors() {
        let x = Array::arange(2 * 3 * 3 * 2).reshape(&[2, 3, 3, 2]).unwrap();
        let w = Windows::dense(&[2, 2]).unwrap();
        let p = x.patches(&w).unwrap();
        assert_eq!(p.shape(), &[2, 2, 2, 2, 2, 2]);
        // Batch 1, window (1, 0), tap (0, 1), feature 1: input (1, 1, 1, 1).
        let at = |b: usize, i: usize, j: usize, s: usize, t: usize, c: usize| {
            ((((b * 2 + i) * 2 + j) * 2 + s) * 2 + t) * 2 + c
        };
        let v = p.to_vec::<i32>().unwrap();
        assert_eq!(v[at(1, 1, 0, 0, 1, 1)], ((9 + 3) + 1) * 2 + 1);
        assert!(x.patches(&Windows::dense(&[4, 1]).unwrap()).is_err());
        assert!(Windows::new(&[2], &[0], &[(0, 0)], &[1], &[1]).is_err());
        assert!(p.patches_transpose(&w, &[3, 4]).is_err());
    }
}
