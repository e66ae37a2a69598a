//! Views: arrays that read another array's buffer through an offset and per-axis strides
//! (the design is in [the module's docs](crate::tensor#views)): their layout, the accessors
//! kernels read them with, and the one strided copy ([`copy_strided`]) that turns any
//! layout into row-major elements.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use super::shape::strides as row_major;
use super::{Array, Buffer, Element, pool};
use crate::error::Result;

/// Where a view's elements lie in its base buffer.
#[derive(Debug)]
pub(crate) struct View {
    /// Index of the element at the origin (all indices 0).
    pub(crate) offset: usize,
    /// Elements to step per unit of each axis (0 on broadcast axes).
    pub(crate) strides: Box<[usize]>,
    /// The elements in row-major order, copied on first need.
    dense: OnceLock<Buffer>,
}

/// An array's elements as a kernel that understands strides reads them: element
/// `[i0, i1, …]` is `data[offset + i0·strides[0] + i1·strides[1] + …]`. Every such index of
/// the array's shape is within `data`.
///
/// ```
/// use nnx_core::Array;
/// let x = Array::arange(6).reshape(&[2, 3])?;
/// let t = x.transpose(); // a view: nothing copied
/// let s = t.strided::<i32>()?;
/// assert_eq!((s.offset, &s.strides[..]), (0, &[1, 3][..]));
/// assert_eq!(s.data[s.offset + 2 * s.strides[0] + 1 * s.strides[1]], 5); // t[2, 1]
/// assert!(!t.is_contiguous());
/// assert_eq!(t.to_vec::<i32>()?, vec![0, 3, 1, 4, 2, 5]);
/// # Ok::<(), nnx_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Strided<'a, T> {
    /// The whole buffer the array reads.
    pub data: &'a [T],
    /// Index in `data` of the first element.
    pub offset: usize,
    /// Per-axis steps in elements (0 on broadcast axes).
    pub strides: Cow<'a, [usize]>,
    /// The array's shape.
    pub shape: &'a [usize],
}

impl<'a, T> Strided<'a, T> {
    /// The array as a matrix whose rows are axes `..split` and columns axes `split..`:
    /// `(rows, row_stride, cols, col_stride)`, when each group of axes steps uniformly
    /// through memory (always for a dense array; for a transposed matrix too). `None`
    /// when a group cannot be flattened without copying.
    ///
    /// ```
    /// use nnx_core::Array;
    /// let x = Array::zeros(&[4, 2, 3]);
    /// let s = x.strided::<f32>()?;
    /// assert_eq!(s.matrix(2), Some((8, 3, 3, 1)));
    /// let t = x.permute_axes(&[2, 0, 1])?; // shape [3, 4, 2]
    /// assert_eq!(t.strided::<f32>()?.matrix(1), Some((3, 1, 8, 3)));
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn matrix(&self, split: usize) -> Option<(usize, usize, usize, usize)> {
        if split > self.shape.len() {
            return None;
        }
        let (rows, row_stride) = flatten(&self.shape[..split], &self.strides[..split])?;
        let (cols, col_stride) = flatten(&self.shape[split..], &self.strides[split..])?;
        Some((rows, row_stride, cols, col_stride))
    }

    /// The one block a broadcast repeats: when the array is contiguous data of its trailing
    /// axes repeated along its leading axes (stride 0), that data. A bias broadcast to a
    /// batch's shape gives the bias; a scalar broadcast to any shape gives its one element.
    ///
    /// ```
    /// use nnx_core::Array;
    /// let bias = Array::from_slice(&[1.0f32, 2.0, 3.0]);
    /// let b = bias.broadcast_to(&[4, 3])?;
    /// assert_eq!(b.strided::<f32>()?.repeated_block(), Some(&[1.0, 2.0, 3.0][..]));
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn repeated_block(&self) -> Option<&'a [T]> {
        let lead = self
            .shape
            .iter()
            .zip(self.strides.iter())
            .take_while(|(d, s)| **s == 0 || **d == 1)
            .count();
        let trailing = &self.shape[lead..];
        let len: usize = trailing.iter().product();
        (is_row_major(trailing, &self.strides[lead..]) && len > 0)
            .then(|| &self.data[self.offset..self.offset + len])
    }
}

/// The size and uniform step of a group of axes read as one, ignoring size-1 axes; `None`
/// when the axes do not step uniformly.
fn flatten(shape: &[usize], strides: &[usize]) -> Option<(usize, usize)> {
    let mut axes = shape.iter().zip(strides).filter(|(d, _)| **d != 1);
    let Some((&first, &step)) = axes.next_back() else {
        return Some((1, 0));
    };
    let (mut size, mut expected) = (first, step * first);
    for (&d, &s) in axes.rev() {
        if s != expected {
            return None;
        }
        size *= d;
        expected = s * d;
    }
    Some((size, step))
}

/// Axes of a layout with the size-1 ones dropped and neighbours that step as one merged,
/// as `(size, stride)` from the outermost.
fn collapse(shape: &[usize], strides: &[usize]) -> Vec<(usize, usize)> {
    let mut axes: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
    for (&d, &s) in shape.iter().zip(strides).filter(|(d, _)| **d != 1) {
        match axes.last_mut() {
            Some(outer) if outer.1 == s * d => *outer = (outer.0 * d, s),
            _ => axes.push((d, s)),
        }
    }
    axes
}

/// Edge of the square tiles a transposing copy moves (a tile of each side stays in L1).
const TILE: usize = 32;

/// Copies the elements of a strided layout of `src` into `out` in row-major order (`out`
/// holds exactly the layout's element count). Runs along a contiguous innermost axis are
/// block copies, broadcast axes are fills, and a layout whose innermost contiguous axis is
/// not the last (a transpose) is copied tile by tile.
pub(crate) fn copy_strided<T: Copy>(
    src: &[T],
    offset: usize,
    shape: &[usize],
    strides: &[usize],
    out: &mut [T],
) {
    if out.is_empty() {
        return;
    }
    let axes = collapse(shape, strides);
    let Some(&(cols, col_stride)) = axes.last() else {
        out[0] = src[offset];
        return;
    };
    let plane = match axes.len() {
        n if n >= 2 && col_stride != 1 && axes[n - 2].1 == 1 && cols > 1 => Some(axes[n - 2]),
        _ => None,
    };
    let inner = if plane.is_some() { 2 } else { 1 };
    let outer = &axes[..axes.len() - inner];
    let block = cols * plane.map_or(1, |(rows, _)| rows);
    let mut index = vec![0usize; outer.len()];
    let mut base = offset;
    for dst in out.chunks_exact_mut(block) {
        match plane {
            Some((rows, _)) => {
                for r0 in (0..rows).step_by(TILE) {
                    for c0 in (0..cols).step_by(TILE) {
                        for r in r0..(r0 + TILE).min(rows) {
                            let row = &mut dst[r * cols..(r + 1) * cols];
                            for (c, o) in row
                                .iter_mut()
                                .enumerate()
                                .take((c0 + TILE).min(cols))
                                .skip(c0)
                            {
                                *o = src[base + r + c * col_stride];
                            }
                        }
                    }
                }
            }
            None => match col_stride {
                1 => dst.copy_from_slice(&src[base..base + cols]),
                0 => dst.fill(src[base]),
                s => dst
                    .iter_mut()
                    .enumerate()
                    .for_each(|(c, o)| *o = src[base + c * s]),
            },
        }
        // The next block: an odometer over the outer axes.
        for (a, &(size, stride)) in outer.iter().enumerate().rev() {
            index[a] += 1;
            base += stride;
            if index[a] < size {
                break;
            }
            base -= stride * size;
            index[a] = 0;
        }
    }
}

/// The row-major elements of a strided layout of a typed buffer, as a new buffer.
fn copy_buffer(base: &Buffer, offset: usize, shape: &[usize], strides: &[usize]) -> Buffer {
    fn copied<T: Copy>(src: &[T], offset: usize, shape: &[usize], strides: &[usize]) -> Vec<T> {
        let n: usize = shape.iter().product();
        if n == 0 {
            return Vec::new();
        }
        let mut out = vec![src[offset]; n];
        copy_strided(src, offset, shape, strides, &mut out);
        out
    }
    match base {
        Buffer::F32(d) => {
            let mut out = pool::take(shape.iter().product());
            copy_strided(d, offset, shape, strides, &mut out);
            Buffer::F32(Arc::new(out.into()))
        }
        Buffer::Bool(d) => Buffer::Bool(Arc::new(copied(d, offset, shape, strides))),
        Buffer::I32(d) => Buffer::I32(Arc::new(copied(d, offset, shape, strides))),
        Buffer::U32(d) => Buffer::U32(Arc::new(copied(d, offset, shape, strides))),
        Buffer::Key(d) => Buffer::Key(Arc::new(copied(d, offset, shape, strides))),
    }
}

/// Whether a layout of `shape` with these strides is row-major and gap-free.
/// (Without allocating: it runs on every read of a view.)
fn is_row_major(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

impl Array {
    /// The offset and strides of the array's elements in its buffer (row-major strides and
    /// offset 0 for a dense array).
    pub(crate) fn layout(&self) -> (usize, Cow<'_, [usize]>) {
        match &self.view {
            Some(view) => (view.offset, Cow::Borrowed(&view.strides)),
            None => (0, Cow::Owned(row_major(self.shape()))),
        }
    }

    /// An array of `shape` reading this array's buffer at `offset` with `strides` (which the
    /// caller derived from [`Array::layout`], so every index is in the buffer). A layout that
    /// is the whole buffer in row-major order is a dense array; an empty one owns an empty
    /// buffer.
    pub(crate) fn with_layout(
        &self,
        shape: Vec<usize>,
        offset: usize,
        strides: Vec<usize>,
    ) -> Array {
        let size: usize = shape.iter().product();
        let base = &self.base;
        if size == 0 {
            return Array::from_parts(shape, copy_buffer(base, 0, &[0], &[1]), self.weak);
        }
        if offset == 0 && size == base.len() && is_row_major(&shape, &strides) {
            return Array::from_parts(shape, base.clone(), self.weak);
        }
        Array {
            shape: shape.into(),
            base: base.clone(),
            view: Some(Arc::new(View {
                offset,
                strides: strides.into(),
                dense: OnceLock::new(),
            })),
            weak: self.weak,
        }
    }

    /// The elements in row-major order as one buffer: the array's own for a dense array, a
    /// copy made once (and shared by clones) for a view.
    pub(crate) fn buffer(&self) -> &Buffer {
        match &self.view {
            None => &self.base,
            Some(view) => view
                .dense
                .get_or_init(|| copy_buffer(&self.base, view.offset, self.shape(), &view.strides)),
        }
    }

    /// For a view whose elements are one row-major run of its buffer, that run's start.
    pub(crate) fn contiguous_offset(&self) -> Option<usize> {
        match &self.view {
            None => Some(0),
            Some(view) => is_row_major(self.shape(), &view.strides).then_some(view.offset),
        }
    }

    /// Whether the elements are one row-major run of memory (true for every array that is
    /// not a view, and for views such as a slice along the first axis); only then can a
    /// kernel read [`Array::as_slice`] without a copy being made.
    pub fn is_contiguous(&self) -> bool {
        self.contiguous_offset().is_some()
    }

    /// The elements as strides over the buffer, for kernels that read views in place; see
    /// [`Strided`].
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`](crate::Error::DTypeMismatch) when `T` is not the array's
    /// dtype.
    pub fn strided<T: Element>(&self) -> Result<Strided<'_, T>> {
        let data = T::from_buffer(&self.base).ok_or(crate::Error::DTypeMismatch {
            op: "strided",
            lhs: self.dtype(),
            rhs: T::DTYPE,
        })?;
        let (offset, strides) = self.layout();
        Ok(Strided {
            data,
            offset,
            strides,
            shape: self.shape(),
        })
    }

    /// The same elements in a buffer of their own: a view is copied (releasing the array it
    /// reads once every other handle is gone); a dense array is returned as it is.
    ///
    /// ```
    /// use nnx_core::Array;
    /// let stacked = Array::zeros(&[16, 256, 256]);
    /// let layer = stacked.index_axis(0, 3)?.compact(); // no longer holds all 16 layers
    /// assert!(layer.is_contiguous());
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn compact(&self) -> Array {
        match &self.view {
            None => self.clone(),
            Some(_) => Array::from_parts(self.shape().to_vec(), self.buffer().clone(), self.weak),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Axes;
    use proptest::prelude::*;

    /// The element at a multi-index, by the definition of a strided layout.
    fn naive(src: &[i32], offset: usize, shape: &[usize], strides: &[usize]) -> Vec<i32> {
        let n: usize = shape.iter().product();
        (0..n)
            .map(|mut flat| {
                let mut at = offset;
                for (&d, &s) in shape.iter().zip(strides).rev() {
                    at += (flat % d) * s;
                    flat /= d;
                }
                src[at]
            })
            .collect()
    }

    /// An independent model of the layout operations: a row-major vector and its shape, each
    /// operation computing every output element from its multi-index.
    #[derive(Clone, Debug)]
    struct Model {
        shape: Vec<usize>,
        data: Vec<i32>,
    }

    impl Model {
        fn build(shape: Vec<usize>, at: impl Fn(&[usize]) -> i32) -> Model {
            let n: usize = shape.iter().product();
            let data = (0..n)
                .map(|mut flat| {
                    let mut index = vec![0; shape.len()];
                    for (i, &d) in index.iter_mut().zip(&shape).rev() {
                        *i = flat % d;
                        flat /= d;
                    }
                    at(&index)
                })
                .collect();
            Model { shape, data }
        }

        fn get(&self, index: &[usize]) -> i32 {
            let flat = index
                .iter()
                .zip(&self.shape)
                .fold(0, |acc, (&i, &d)| acc * d + i);
            self.data[flat]
        }
    }

    /// A random array, a random chain of layout operations on it (building views of views,
    /// and dense arrays where a reshape must copy), and the same chain on the [`Model`]:
    /// identical elements and shapes at every step.
    fn views() -> impl Strategy<Value = (Vec<usize>, Vec<u8>)> {
        (
            proptest::collection::vec(1usize..6, 1..5),
            proptest::collection::vec(any::<u8>(), 0..6),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn chains_of_views_match_an_independent_model((shape, ops) in views()) {
            let n: usize = shape.iter().product();
            let data: Vec<i32> = (0..n as i32).collect();
            let mut v = Array::from_vec(&shape, data.clone()).unwrap();
            let mut m = Model { shape, data };
            for op in ops {
                let rank = v.ndim();
                let axis = (op as usize) % rank.max(1);
                let old = m.clone();
                (v, m) = match op % 6 {
                    0 if rank > 0 => {
                        let perm: Vec<isize> = (0..rank as isize).rev().collect();
                        let shape = old.shape.iter().rev().copied().collect();
                        (v.permute_axes(&perm).unwrap(), Model::build(shape, |i| {
                            old.get(&i.iter().rev().copied().collect::<Vec<_>>())
                        }))
                    }
                    1 if rank > 0 && v.shape()[axis] > 1 => {
                        let mut shape = old.shape.clone();
                        shape[axis] -= 1;
                        (v.slice_axis(axis as isize, 1..v.shape()[axis]).unwrap(),
                         Model::build(shape, |i| {
                            let mut i = i.to_vec();
                            i[axis] += 1;
                            old.get(&i)
                        }))
                    }
                    2 if rank > 1 => {
                        let mut shape = old.shape.clone();
                        shape.remove(axis);
                        let last = old.shape[axis] - 1;
                        (v.index_axis(axis as isize, -1).unwrap(), Model::build(shape, |i| {
                            let mut i = i.to_vec();
                            i.insert(axis, last);
                            old.get(&i)
                        }))
                    }
                    3 if v.size() < 2000 => {
                        // A new leading axis, and every size-1 axis stretched to 2.
                        let mut target = vec![3];
                        target.extend(old.shape.iter().map(|&d| if d == 1 { 2 } else { d }));
                        (v.broadcast_to(&target).unwrap(), Model::build(target, |i| {
                            let i: Vec<usize> = i[1..]
                                .iter()
                                .zip(&old.shape)
                                .map(|(&i, &d)| if d == 1 { 0 } else { i })
                                .collect();
                            old.get(&i)
                        }))
                    }
                    4 => {
                        let mut shape = old.shape.clone();
                        shape.insert(axis, 1);
                        (v.expand_dims(axis as isize).unwrap(), Model { shape, data: old.data })
                    }
                    _ => {
                        let squeezed: Vec<usize> =
                            old.shape.iter().copied().filter(|&d| d != 1).collect();
                        let dims: Vec<isize> = squeezed.iter().map(|&d| d as isize).collect();
                        let flat = v.squeeze(Axes::All).unwrap().reshape(&[-1]).unwrap();
                        (flat.reshape(&dims).unwrap(), Model { shape: squeezed, data: old.data })
                    }
                };
                prop_assert_eq!(v.shape(), &m.shape[..]);
                prop_assert_eq!(v.size(), m.data.len());
                prop_assert_eq!(v.to_vec::<i32>().unwrap(), m.data.clone());
            }
        }
    }

    #[test]
    fn copies_follow_the_layout() {
        let src: Vec<i32> = (0..64).collect();
        // A transpose (tiled), a broadcast (fill), a strided row, a plain block.
        for (shape, strides, offset) in [
            (vec![5, 7], vec![1, 5], 0),
            (vec![4, 3], vec![0, 1], 2),
            (vec![3, 4], vec![16, 2], 1),
            (vec![2, 2, 3], vec![12, 0, 1], 0),
            (vec![40, 1], vec![1, 9], 0),
        ] {
            let n: usize = shape.iter().product();
            let mut out = vec![0; n];
            copy_strided(&src, offset, &shape, &strides, &mut out);
            assert_eq!(
                out,
                naive(&src, offset, &shape, &strides),
                "{shape:?} {strides:?}"
            );
        }
    }

    #[test]
    fn contiguous_views_are_borrowed_and_others_copied_once() {
        let x = Array::arange(12).reshape(&[3, 4]).unwrap();
        let row = x.index_axis(0, 1).unwrap();
        assert!(row.is_contiguous());
        assert_eq!(row.as_slice::<i32>().unwrap(), &[4, 5, 6, 7]);
        let column = x.index_axis(1, 2).unwrap();
        assert!(!column.is_contiguous());
        let first = column.as_slice::<i32>().unwrap().as_ptr();
        assert_eq!(column.clone().as_slice::<i32>().unwrap().as_ptr(), first);
        assert_eq!(column.to_vec::<i32>().unwrap(), vec![2, 6, 10]);
        // A view never lends its buffer for writing, nor does the array it reads.
        let mut v = Array::ones(&[4, 4]).transpose();
        assert!(v.unique_f32_mut().is_none());
        assert_eq!(v.compact().to_vec::<f32>().unwrap(), vec![1.0; 16]);
    }

    #[test]
    fn matrices_and_repeated_blocks() {
        let x = Array::zeros(&[2, 3, 4]);
        let t = x.permute_axes(&[0, 2, 1]).unwrap();
        let s = t.strided::<f32>().unwrap();
        assert_eq!(s.matrix(2), None); // rows (0, 2) do not step uniformly
        assert_eq!(s.matrix(3), None);
        assert_eq!(x.strided::<f32>().unwrap().matrix(0), Some((1, 0, 24, 1)));
        let m = x.index_axis(0, 1).unwrap().transpose();
        assert_eq!(m.strided::<f32>().unwrap().matrix(1), Some((4, 1, 3, 4)));
        assert_eq!(
            x.strided::<f32>()
                .unwrap()
                .repeated_block()
                .map(<[f32]>::len),
            Some(24)
        );
        let scalar = Array::scalar(2.0f32).broadcast_to(&[5, 5]).unwrap();
        assert_eq!(
            scalar.strided::<f32>().unwrap().repeated_block(),
            Some(&[2.0][..])
        );
        assert!(t.strided::<f32>().unwrap().repeated_block().is_none());
    }
}
