//! `nnx.RNN`: a cell run over a sequence with `scan`.

use nnx_core::engine::eager_engine;
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::transforms::{Carry, scan};
use nnx_core::{DType, Engine, Error, Module, Result, RngStream, Rngs, Tensor};

use crate::common::{dims, isize_of};
use crate::recurrent::{RnnCarry, RnnCell};

/// `nnx.RNN(cell)`: runs `cell` over the time axis of `[batch…, time, features]` inputs
/// (`[time, batch…, features]` with `time_major`) as one `scan` whose carry is the cell's
/// carry and the cell itself (its state threads through the steps).
///
/// As Flax's, it holds its own `carry` stream (`RngStream(0, tag='carry')` by default),
/// from which the cell's initial carry draws its keys on every call. With `reverse`, each
/// sequence runs from its last valid step (`seq_lengths` keep padding at the end), and
/// `keep_order` flips the outputs back.
///
/// ```
/// use nnx_core::{Result, Rngs, Tensor};
/// use nnx_nn::{GRUCell, RNN};
/// let rnn = RNN::new(GRUCell::new(3, 4, &Rngs::new(0)?)?)?;
/// let x = Tensor::ones([2, 5, 3]); // batch 2, 5 steps, 3 features
/// assert_eq!(rnn.forward(&x)?.shape(), &[2, 5, 4]);
/// # Ok::<(), nnx_core::Error>(())
/// ```
#[derive(Module, Clone, Debug)]
#[module(name = "RNN")]
pub struct RNN<C> {
    /// The cell.
    pub cell: C,
    /// The stream the initial carry draws from (`None`: a call must pass an initial carry).
    pub rngs: Option<RngStream>,
    /// Inputs are `[time, batch…, features]`.
    pub time_major: bool,
    /// Run each sequence from its end.
    pub reverse: bool,
    /// With `reverse`, give the outputs in the inputs' order.
    pub keep_order: bool,
}

/// The optional arguments of [`RNN::call`] (`initial_carry`, `seq_lengths`).
#[derive(Clone, Debug)]
pub struct RnnCall<K> {
    /// The carry to start from (else the cell's, initialised from the RNN's stream).
    pub initial_carry: Option<K>,
    /// The valid length of each sequence (`[batch…]`, int32): with `reverse` the valid
    /// steps are flipped, padding stays at the end; the returned carry is each sequence's
    /// carry after its last valid step.
    pub seq_lengths: Option<Tensor>,
}

impl<K> Default for RnnCall<K> {
    fn default() -> RnnCall<K> {
        RnnCall {
            initial_carry: None,
            seq_lengths: None,
        }
    }
}

impl<C: RnnCell> RNN<C> {
    /// `nnx.RNN(cell)`: batch-major, forwards, with its own `carry` stream seeded 0.
    ///
    /// # Errors
    /// None in practice (creating the stream).
    pub fn new(cell: C) -> Result<RNN<C>> {
        Ok(RNN {
            cell,
            rngs: Some(RngStream::new("carry", 0)?),
            time_major: false,
            reverse: false,
            keep_order: false,
        })
    }

    /// `nnx.RNN(cell, rngs=rngs)`: the stream is a fork of `rngs`' `carry` (or `default`)
    /// stream.
    ///
    /// # Errors
    /// No `carry` or `default` stream.
    pub fn with_rngs(cell: C, rngs: &Rngs) -> Result<RNN<C>> {
        Ok(RNN {
            rngs: Some(rngs.stream("carry")?.fork()?),
            ..RNN::new(cell)?
        })
    }

    /// `layer(inputs)`: the outputs of every step, with the time axis where the inputs
    /// have it.
    ///
    /// # Errors
    /// As [`RNN::call`].
    pub fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        Ok(self.call(inputs, RnnCall::default())?.1)
    }

    /// `layer(inputs, initial_carry=…, seq_lengths=…, return_carry=True)`: the final carry
    /// and the outputs. The loop runs on the engine of eager work (reference kernels when
    /// none is set); inside a transform it is one `scan` of the enclosing program.
    ///
    /// # Errors
    /// Inputs with fewer than two axes; no initial carry and no stream ("RNGs must be
    /// provided to initialize the cell carry."); the cell's errors.
    pub fn call(&self, inputs: &Tensor, options: RnnCall<C::Carry>) -> Result<(C::Carry, Tensor)> {
        match eager_engine() {
            Some(engine) => self.call_on(engine.as_ref(), inputs, options),
            None => self.call_on(&nnx_reference::Reference, inputs, options),
        }
    }

    /// [`RNN::call`] with the loop run on `engine`.
    ///
    /// # Errors
    /// As [`RNN::call`].
    pub fn call_on(
        &self,
        engine: &(impl Engine + ?Sized),
        inputs: &Tensor,
        options: RnnCall<C::Carry>,
    ) -> Result<(C::Carry, Tensor)> {
        let rank = inputs.ndim();
        if rank < 2 {
            return Err(Error::shape(
                "RNN",
                format!(
                    "expected inputs [batch…, time, features], got {:?}",
                    inputs.shape()
                ),
            ));
        }
        let time_axis = if self.time_major { 0 } else { rank - 2 };
        let seq_lengths = options.seq_lengths.as_ref();
        let inputs = match self.reverse {
            true => flip_sequences(inputs, seq_lengths, time_axis)?,
            false => inputs.clone(),
        };
        let carry = match options.initial_carry {
            Some(carry) => carry,
            None => {
                let stream = self.rngs.as_ref().ok_or_else(|| {
                    Error::shape("RNN", "RNGs must be provided to initialize the cell carry.")
                })?;
                let mut step_shape = inputs.shape().to_vec();
                step_shape.remove(time_axis);
                self.cell.initialize_carry_from(&step_shape, stream)?
            }
        };
        let t = isize_of(time_axis)?;
        let ((_, carry), (carries, outputs)) =
            scan(|state: &Loop<C>, x: &Tensor| -> Result<Step<C>> {
                let (carry, y) = state.0.step(&state.1, x)?;
                Ok(((state.0.clone(), carry.clone()), (carry, y)))
            })
            .in_axes((Carry, t as i32))
            .out_axes((Carry, (0, t as i32)))
            .call(engine, (&(self.cell.clone(), carry), &inputs))?;
        let carry = match seq_lengths {
            Some(lengths) => last_valid(&carries, lengths)?,
            None => carry,
        };
        let outputs = match self.reverse && self.keep_order {
            true => flip_sequences(&outputs, seq_lengths, time_axis)?,
            false => outputs,
        };
        Ok((carry, outputs))
    }
}

/// What the loop carries: the cell (its state threads through the steps) and its carry.
type Loop<C> = (C, <C as RnnCell>::Carry);

/// One step's results: the loop's new state, and the step's carry and output (stacked).
type Step<C> = (Loop<C>, (<C as RnnCell>::Carry, Tensor));

/// Each sequence's carry after its last valid step, from the carries of every step
/// (`[time, batch…, …]`): `carries[seq_lengths - 1, b]`.
fn last_valid<K: RnnCarry>(carries: &K, seq_lengths: &Tensor) -> Result<K> {
    carries.map_arrays(&|history: &Tensor| {
        let steps = history.shape()[0];
        let last = (seq_lengths.astype(DType::I32)? - 1i32)?;
        // One-hot over time: [time, batch…], broadcast over the carry's features.
        let mut shape = vec![isize_of(steps)?];
        shape.extend(vec![1; last.ndim()]);
        let at = Tensor::try_arange(steps)?.reshape(&shape)?.equal(&last)?;
        let mut mask_shape = dims(at.shape())?;
        mask_shape.extend(vec![1; history.ndim() - at.ndim()]);
        let mask = at.reshape(&mask_shape)?;
        mask.select(history, &Tensor::from(0.0f32))?.sum(0)
    })
}

/// `flip_sequences`: each sequence reversed along `time_axis` within its valid length
/// (`seq_lengths`, one per batch entry; all steps without), padding kept at the end.
fn flip_sequences(x: &Tensor, seq_lengths: Option<&Tensor>, time_axis: usize) -> Result<Tensor> {
    let steps = x.shape()[time_axis];
    let t = isize_of(time_axis)?;
    let reversed = Tensor::from_vec(
        &[steps],
        (0..steps).rev().map(|i| i as i32).collect::<Vec<_>>(),
    )?;
    let Some(lengths) = seq_lengths else {
        return x.take(&reversed, t);
    };
    // Batch-major `[batch, time, rest…]`: source step `(steps - 1 - t + length) % steps`.
    let major = if time_axis == 0 {
        x.moveaxis(0, -2)?
    } else {
        x.clone()
    };
    let time = major.ndim() - 2;
    let batch: usize = major.shape()[..time].iter().product();
    let features = major.shape()[time + 1];
    let lengths = lengths
        .astype(DType::I32)?
        .reshape(&[isize_of(batch)?, 1])?;
    let n = i32::try_from(steps).map_err(|_| Error::shape("RNN", "too many steps"))?;
    let shifted = (reversed.reshape(&[1, -1])? + &lengths)?;
    let wrapped = shifted.compare(CompareOp::Ge, &Tensor::from(n))?;
    let source = wrapped.select(&(&shifted - n)?, &shifted)?;
    let rows = (Tensor::try_arange(batch)?.reshape(&[-1, 1])? * n)?;
    let flat = major.reshape(&[isize_of(batch * steps)?, isize_of(features)?])?;
    let flipped = flat
        .take(&(source + rows)?.reshape(&[-1])?, 0)?
        .reshape(&dims(major.shape())?)?;
    match time_axis {
        0 => flipped.moveaxis(-2, 0),
        _ => Ok(flipped),
    }
}
