//! `jax.nn.initializers`: functions of a key and a shape that give a layer's initial
//! parameters, bit for bit as JAX computes them in float32.
//!
//! Each is an [`Initializer`] value; [`Initializer::init`] draws with the samplers of
//! `nnx_core::random`, so it records a program when the key is traced (a layer created inside
//! `vmap` gets one set of parameters per lane).
//!
//! ```
//! use nnx_core::random;
//! use nnx_nn::initializers;
//! # fn main() -> nnx_core::Result<()> {
//! let w = initializers::lecun_normal().init(&random::key(0), [3, 4])?;
//! assert_eq!(w.shape(), &[3, 4]);
//! let b = initializers::zeros().init(&random::key(0), [4])?;
//! assert_eq!(b.to_vec::<f32>()?, vec![0.0; 4]);
//! # Ok(())
//! # }
//! ```

use nnx_core::{Error, Result, Tensor, random};

/// Which fan a [`variance_scaling`] initializer divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// `fan_in`: the input size times the receptive field.
    FanIn,
    /// `fan_out`: the output size times the receptive field.
    FanOut,
    /// `(fan_in + fan_out) / 2`.
    FanAvg,
    /// `sqrt(fan_in · fan_out)`.
    FanGeoAvg,
}

/// The distribution a [`variance_scaling`] initializer draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// A normal truncated to two standard deviations, rescaled to the variance.
    TruncatedNormal,
    /// A normal.
    Normal,
    /// A uniform on `[-limit, limit)`.
    Uniform,
}

/// An initializer: `init(key, shape)` gives a float32 array (`jax.nn.initializers.*`).
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    /// `constant(value)` (`zeros`, `ones`).
    Constant(f32),
    /// `normal(stddev)`.
    Normal {
        /// The standard deviation.
        stddev: f32,
    },
    /// `uniform(scale)`: values in `[0, scale)`.
    Uniform {
        /// The upper bound.
        scale: f32,
    },
    /// `truncated_normal(stddev, lower, upper)`: `stddev` times a standard normal truncated
    /// to `(lower, upper)`.
    TruncatedNormal {
        /// The factor applied after truncation.
        stddev: f32,
        /// The lower bound, before scaling.
        lower: f32,
        /// The upper bound, before scaling.
        upper: f32,
    },
    /// `orthogonal(scale, column_axis)`: a matrix with orthonormal columns (or rows) from the
    /// QR decomposition of a normal draw, reshaped. The QR ([`Tensor::qr_q`], a traceable
    /// primitive) runs in float64, so the values agree with JAX's (LAPACK's float32 QR) to
    /// about 1e-6, not bit for bit.
    Orthogonal {
        /// The factor applied.
        scale: f32,
        /// The axis holding the columns (default `-1`).
        column_axis: isize,
    },
    /// `variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis)`.
    VarianceScaling {
        /// The variance's numerator.
        scale: f64,
        /// Which fan the variance divides by.
        mode: FanMode,
        /// The distribution.
        distribution: Distribution,
        /// The input axes (default `[-2]`).
        in_axis: Vec<isize>,
        /// The output axes (default `[-1]`).
        out_axis: Vec<isize>,
        /// Axes ignored when computing the fans (default none).
        batch_axis: Vec<isize>,
    },
}

/// `zeros`: every value 0.
pub fn zeros() -> Initializer {
    Initializer::Constant(0.0)
}

/// `ones`: every value 1.
pub fn ones() -> Initializer {
    Initializer::Constant(1.0)
}

/// `constant(value)`.
pub fn constant(value: f32) -> Initializer {
    Initializer::Constant(value)
}

/// `normal(stddev)` (JAX's default `stddev` is `0.01`).
pub fn normal(stddev: f32) -> Initializer {
    Initializer::Normal { stddev }
}

/// `uniform(scale)`: values in `[0, scale)` (JAX's default `scale` is `0.01`).
pub fn uniform(scale: f32) -> Initializer {
    Initializer::Uniform { scale }
}

/// `truncated_normal(stddev)` with bounds `(-2, 2)` before scaling.
pub fn truncated_normal(stddev: f32) -> Initializer {
    Initializer::TruncatedNormal {
        stddev,
        lower: -2.0,
        upper: 2.0,
    }
}

/// `variance_scaling(scale, mode, distribution)` over the last two axes (`in_axis=-2`,
/// `out_axis=-1`); the other axes form the receptive field.
pub fn variance_scaling(scale: f64, mode: FanMode, distribution: Distribution) -> Initializer {
    Initializer::VarianceScaling {
        scale,
        mode,
        distribution,
        in_axis: vec![-2],
        out_axis: vec![-1],
        batch_axis: Vec::new(),
    }
}

/// `orthogonal()`: see [`Initializer::Orthogonal`] (scale 1, columns on the last axis);
/// `nnx.LSTMCell`'s and `nnx.GRUCell`'s recurrent kernels use it.
pub fn orthogonal() -> Initializer {
    Initializer::Orthogonal {
        scale: 1.0,
        column_axis: -1,
    }
}

/// `lecun_normal()`: `variance_scaling(1, fan_in, truncated_normal)`; `nnx.Linear`'s and
/// `nnx.Conv`'s default kernel initializer.
pub fn lecun_normal() -> Initializer {
    variance_scaling(1.0, FanMode::FanIn, Distribution::TruncatedNormal)
}

/// `lecun_uniform()`: `variance_scaling(1, fan_in, uniform)`.
pub fn lecun_uniform() -> Initializer {
    variance_scaling(1.0, FanMode::FanIn, Distribution::Uniform)
}

/// `glorot_normal()` (`xavier_normal`): `variance_scaling(1, fan_avg, truncated_normal)`.
pub fn glorot_normal() -> Initializer {
    variance_scaling(1.0, FanMode::FanAvg, Distribution::TruncatedNormal)
}

/// `glorot_uniform()` (`xavier_uniform`): `variance_scaling(1, fan_avg, uniform)`.
pub fn glorot_uniform() -> Initializer {
    variance_scaling(1.0, FanMode::FanAvg, Distribution::Uniform)
}

/// `he_normal()` (`kaiming_normal`): `variance_scaling(2, fan_in, truncated_normal)`.
pub fn he_normal() -> Initializer {
    variance_scaling(2.0, FanMode::FanIn, Distribution::TruncatedNormal)
}

/// `he_uniform()` (`kaiming_uniform`): `variance_scaling(2, fan_in, uniform)`.
pub fn he_uniform() -> Initializer {
    variance_scaling(2.0, FanMode::FanIn, Distribution::Uniform)
}

/// The standard deviation of a standard normal truncated to `(-2, 2)`.
const TRUNCATED_STDDEV: f32 = f32::from_bits(0x3F61_2F26);

impl Initializer {
    /// The initial values for `shape`, drawn with `key` (a scalar key, traced or not).
    ///
    /// # Errors
    /// A shape `variance_scaling` cannot take fans from (fewer than two axes with the
    /// default axes, an axis out of range, a zero fan); the samplers' errors.
    pub fn init(&self, key: &Tensor, shape: impl AsRef<[usize]>) -> Result<Tensor> {
        let shape = shape.as_ref();
        match self {
            Initializer::Constant(value) => Tensor::try_full(shape, *value),
            Initializer::Normal { stddev } => random::normal(key, shape)? * *stddev,
            Initializer::Uniform { scale } => random::uniform(key, shape)? * *scale,
            Initializer::TruncatedNormal {
                stddev,
                lower,
                upper,
            } => random::truncated_normal(key, *lower, *upper, shape)? * *stddev,
            Initializer::Orthogonal { scale, column_axis } => {
                orthogonal_init(key, shape, *scale, *column_axis)
            }
            Initializer::VarianceScaling {
                scale,
                mode,
                distribution,
                in_axis,
                out_axis,
                batch_axis,
            } => {
                let (fan_in, fan_out) = fans(shape, in_axis, out_axis, batch_axis)?;
                let denominator = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                    FanMode::FanGeoAvg => (fan_in * fan_out).sqrt(),
                };
                if denominator == 0.0 {
                    return Err(Error::shape(
                        "variance_scaling",
                        format!("the fan of shape {shape:?} is zero"),
                    ));
                }
                // As JAX: the variance is computed in float64 and cast; the rest is float32.
                let variance = (scale / denominator) as f32;
                match distribution {
                    Distribution::TruncatedNormal => {
                        let stddev = variance.sqrt() / TRUNCATED_STDDEV;
                        random::truncated_normal(key, -2.0, 2.0, shape)? * stddev
                    }
                    Distribution::Normal => random::normal(key, shape)? * variance.sqrt(),
                    Distribution::Uniform => {
                        random::uniform_range(key, shape, -1.0, 1.0)? * (3.0 * variance).sqrt()
                    }
                }
            }
        }
    }
}

/// `jax.nn.initializers.orthogonal` for `shape`: `random.orthogonal(key, n_rows, m=n_cols)`
/// (the QR of a `[max, min]` normal draw, columns signed by `R`'s diagonal, transposed when
/// there are fewer rows), reshaped with the columns on `column_axis`, times `scale`.
fn orthogonal_init(
    key: &Tensor,
    shape: &[usize],
    scale: f32,
    column_axis: isize,
) -> Result<Tensor> {
    let bad = |why: String| Error::shape("orthogonal", why);
    if shape.len() < 2 {
        return Err(bad(format!("needs at least two axes, got {shape:?}")));
    }
    let rank = shape.len() as isize;
    let axis = if column_axis < 0 {
        column_axis + rank
    } else {
        column_axis
    };
    let axis = usize::try_from(axis)
        .ok()
        .filter(|&a| a < shape.len())
        .ok_or_else(|| bad(format!("column_axis {column_axis} is out of range")))?;
    let n_cols = shape[axis];
    let n_rows = shape.iter().product::<usize>() / n_cols.max(1);
    let (tall, narrow) = (n_rows.max(n_cols), n_rows.min(n_cols));
    let q = random::normal(key, [tall, narrow])?.qr_q()?;
    // [tall, narrow] -> [n_rows, n_cols] (transposed when there are fewer rows).
    let q = if n_rows < n_cols { q.transpose()? } else { q };
    let x = (q * scale)?;
    // The rows are the other axes in order, the columns last; then the columns move to
    // column_axis.
    let mut flat_shape: Vec<usize> = (0..shape.len())
        .filter(|&a| a != axis)
        .map(|a| shape[a])
        .collect();
    flat_shape.push(n_cols);
    x.reshape(&crate::common::dims(&flat_shape)?)?
        .moveaxis(-1, axis as isize)
}

/// `(fan_in, fan_out)` as JAX's `_compute_fans`: the product of the input (output) axes times
/// the receptive field, the product of the axes that are none of input, output or batch.
fn fans(
    shape: &[usize],
    in_axis: &[isize],
    out_axis: &[isize],
    batch_axis: &[isize],
) -> Result<(f64, f64)> {
    let rank = shape.len();
    let resolve = |axes: &[isize]| -> Result<Vec<usize>> {
        axes.iter()
            .map(|&a| {
                let i = if a < 0 { a + rank as isize } else { a };
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < rank)
                    .ok_or_else(|| {
                        Error::shape(
                            "variance_scaling",
                            format!(
                                "axis {a} is out of range for a weight of shape {shape:?}: \
                             variance scaling needs at least two axes (input and output)"
                            ),
                        )
                    })
            })
            .collect()
    };
    let (ins, outs, batch) = (resolve(in_axis)?, resolve(out_axis)?, resolve(batch_axis)?);
    let size = |axes: &[usize]| axes.iter().map(|&i| shape[i] as f64).product::<f64>();
    let total: f64 = shape.iter().map(|&d| d as f64).product();
    let (in_size, out_size) = (size(&ins), size(&outs));
    let receptive = total / in_size / out_size / size(&batch);
    Ok((in_size * receptive, out_size * receptive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_jax() {
        assert_eq!(fans(&[3, 4], &[-2], &[-1], &[]).unwrap(), (3.0, 4.0));
        // A 3x3 convolution from 2 to 8 features: receptive field 9.
        assert_eq!(
            fans(&[3, 3, 2, 8], &[-2], &[-1], &[]).unwrap(),
            (18.0, 72.0)
        );
        let err = lecun_normal().init(&random::key(0), [5]).unwrap_err();
        assert!(err.to_string().contains("at least two axes"), "{err}");
    }

    #[test]
    fn truncated_values_stay_within_two_standard_deviations() {
        let w = lecun_normal().init(&random::key(0), [100, 50]).unwrap();
        let limit = 2.0 * (1.0f32 / 100.0).sqrt() / TRUNCATED_STDDEV;
        assert!(w.to_vec::<f32>().unwrap().iter().all(|v| v.abs() < limit));
    }
}
