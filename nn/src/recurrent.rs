//! `nnx.LSTMCell` and `nnx.GRUCell`.

use nnx_core::Module;
use nnx_core::{Result, RngStream, Rngs, Tensor};

use crate::functions::sigmoid;
use crate::initializers::{self, Initializer};
use crate::linear::{Linear, LinearOptions};

fn dense(
    in_features: usize,
    out_features: usize,
    use_bias: bool,
    kernel_init: Initializer,
    rngs: &Rngs,
) -> Result<Linear> {
    let options = LinearOptions {
        use_bias,
        kernel_init,
        bias_init: initializers::zeros(),
    };
    Linear::with(in_features, out_features, options, rngs)
}

/// The carry's shape for inputs of `input_shape`: its batch axes and `hidden`.
fn carry_shape(input_shape: &[usize], hidden: usize) -> Vec<usize> {
    let mut shape = input_shape[..input_shape.len().saturating_sub(1)].to_vec();
    shape.push(hidden);
    shape
}

/// Draws one key from `stream` and gives zeros: Flax's `carry_init(rngs(), shape)` with
/// the default `zeros_init`.
fn zero_carry(shape: &[usize], stream: &RngStream) -> Result<Tensor> {
    stream.next_key()?;
    Tensor::try_zeros(shape)
}

/// `nnx.LSTMCell(in_features, hidden_features)`: input gates `ii, if_, ig, io` (Linear without
/// bias, `lecun_normal`) and hidden gates `hi, hf, hg, ho` (Linear with bias, `orthogonal`),
/// created in that order as Flax creates them.
///
/// The input kernels are Flax's bit for bit; the recurrent kernels come from a float64 QR
/// and agree with Flax's to about 1e-6 (see [`initializers::orthogonal`]).
#[derive(Module, Clone, Debug)]
pub struct LSTMCell {
    /// Input to input gate.
    pub ii: Linear,
    /// Input to forget gate.
    pub if_: Linear,
    /// Input to cell candidate.
    pub ig: Linear,
    /// Input to output gate.
    pub io: Linear,
    /// Hidden to input gate.
    pub hi: Linear,
    /// Hidden to forget gate.
    pub hf: Linear,
    /// Hidden to cell candidate.
    pub hg: Linear,
    /// Hidden to output gate.
    pub ho: Linear,
    /// The input size.
    pub in_features: usize,
    /// The hidden size.
    pub hidden_features: usize,
}

impl LSTMCell {
    /// `nnx.LSTMCell(in_features, hidden_features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` stream.
    pub fn new(in_features: usize, hidden_features: usize, rngs: &Rngs) -> Result<LSTMCell> {
        let input = |rngs| {
            dense(
                in_features,
                hidden_features,
                false,
                initializers::lecun_normal(),
                rngs,
            )
        };
        let hidden = |rngs| {
            dense(
                hidden_features,
                hidden_features,
                true,
                initializers::orthogonal(),
                rngs,
            )
        };
        Ok(LSTMCell {
            ii: input(rngs)?,
            if_: input(rngs)?,
            ig: input(rngs)?,
            io: input(rngs)?,
            hi: hidden(rngs)?,
            hf: hidden(rngs)?,
            hg: hidden(rngs)?,
            ho: hidden(rngs)?,
            in_features,
            hidden_features,
        })
    }

    /// `cell.initialize_carry(input_shape, rngs)`: zero `(c, h)`, drawing two keys from the
    /// `carry` stream as Flax does.
    ///
    /// # Errors
    /// A missing `carry` (or `default`) stream.
    pub fn initialize_carry(&self, input_shape: &[usize], rngs: &Rngs) -> Result<(Tensor, Tensor)> {
        self.initialize_carry_from(input_shape, &rngs.stream("carry")?)
    }

    /// `cell((c, h), x)`: `((c', h'), h')`.
    ///
    /// # Errors
    /// Inputs or carries of other sizes.
    pub fn forward(
        &self,
        carry: &(Tensor, Tensor),
        x: &Tensor,
    ) -> Result<((Tensor, Tensor), Tensor)> {
        let (c, h) = carry;
        let gate = |input: &Linear, hidden: &Linear| input.forward(x)? + hidden.forward(h)?;
        let i = sigmoid(&gate(&self.ii, &self.hi)?)?;
        let f = sigmoid(&gate(&self.if_, &self.hf)?)?;
        let g = gate(&self.ig, &self.hg)?.tanh()?;
        let o = sigmoid(&gate(&self.io, &self.ho)?)?;
        let new_c = ((&f * c)? + (&i * &g)?)?;
        let new_h = (&o * new_c.tanh()?)?;
        Ok(((new_c, new_h.clone()), new_h))
    }
}

/// `nnx.GRUCell(in_features, hidden_features)`: `dense_i` (Linear with bias,
/// `lecun_normal`) and `dense_h` (Linear without bias, `orthogonal`), each to
/// `3 · hidden_features` (reset, update, candidate).
#[derive(Module, Clone, Debug)]
pub struct GRUCell {
    /// Input to the three gates.
    pub dense_i: Linear,
    /// Hidden to the three gates.
    pub dense_h: Linear,
    /// The input size.
    pub in_features: usize,
    /// The hidden size.
    pub hidden_features: usize,
}

impl GRUCell {
    /// `nnx.GRUCell(in_features, hidden_features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` stream.
    pub fn new(in_features: usize, hidden_features: usize, rngs: &Rngs) -> Result<GRUCell> {
        Ok(GRUCell {
            dense_i: dense(
                in_features,
                3 * hidden_features,
                true,
                initializers::lecun_normal(),
                rngs,
            )?,
            dense_h: dense(
                hidden_features,
                3 * hidden_features,
                false,
                initializers::orthogonal(),
                rngs,
            )?,
            in_features,
            hidden_features,
        })
    }

    /// `cell.initialize_carry(input_shape, rngs)`: a zero `h`, drawing one `carry` key.
    ///
    /// # Errors
    /// A missing `carry` (or `default`) stream.
    pub fn initialize_carry(&self, input_shape: &[usize], rngs: &Rngs) -> Result<Tensor> {
        self.initialize_carry_from(input_shape, &rngs.stream("carry")?)
    }

    /// `cell(h, x)`: `(h', h')`.
    ///
    /// # Errors
    /// Inputs or carries of other sizes.
    pub fn forward(&self, h: &Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = self.hidden_features;
        let xs = self.dense_i.forward(x)?;
        let hs = self.dense_h.forward(h)?;
        let part = |t: &Tensor, k: usize| t.slice_axis(-1, k * n..(k + 1) * n);
        let r = sigmoid(&(part(&xs, 0)? + part(&hs, 0)?)?)?;
        let z = sigmoid(&(part(&xs, 1)? + part(&hs, 1)?)?)?;
        let candidate = (part(&xs, 2)? + (&r * part(&hs, 2)?)?)?.tanh()?;
        let new_h = (((1.0f32 - &z)? * &candidate)? + (&z * h)?)?;
        Ok((new_h.clone(), new_h))
    }
}

/// A cell [`RNN`](crate::RNN) runs over a sequence (`nnx.RNNCellBase`): a carry, initialised
/// from a stream of keys, and one step `(carry, x) -> (carry, y)`.
pub trait RnnCell: nnx_core::graph::GraphValue + Clone {
    /// The carry threaded through the steps (`(c, h)` for an LSTM, `h` for a GRU).
    type Carry: RnnCarry;

    /// `cell.initialize_carry(input_shape, stream)` for one step's input shape
    /// (`[batch…, features]`), drawing its keys from `stream`.
    ///
    /// # Errors
    /// As the cell's initialiser.
    fn initialize_carry_from(
        &self,
        input_shape: &[usize],
        stream: &RngStream,
    ) -> Result<Self::Carry>;

    /// `cell(carry, x)`: the new carry and the step's output.
    ///
    /// # Errors
    /// Inputs or carries the cell does not fit.
    fn step(&self, carry: &Self::Carry, x: &Tensor) -> Result<(Self::Carry, Tensor)>;
}

/// A cell's carry: a value that crosses `scan`, whose arrays can be rewritten one by one.
pub trait RnnCarry: nnx_core::graph::ToValue + nnx_core::graph::FromValue + Clone {
    /// The same structure with `f` applied to every array.
    ///
    /// # Errors
    /// Whatever `f` returns.
    fn map_arrays(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self>;
}

impl RnnCarry for Tensor {
    fn map_arrays(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        f(self)
    }
}

impl RnnCarry for (Tensor, Tensor) {
    fn map_arrays(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<(Tensor, Tensor)> {
        Ok((f(&self.0)?, f(&self.1)?))
    }
}

impl RnnCell for LSTMCell {
    type Carry = (Tensor, Tensor);

    /// Zero `(c, h)`, drawing two keys from `stream` as Flax does.
    fn initialize_carry_from(
        &self,
        input_shape: &[usize],
        stream: &RngStream,
    ) -> Result<(Tensor, Tensor)> {
        let shape = carry_shape(input_shape, self.hidden_features);
        Ok((zero_carry(&shape, stream)?, zero_carry(&shape, stream)?))
    }

    fn step(&self, carry: &(Tensor, Tensor), x: &Tensor) -> Result<((Tensor, Tensor), Tensor)> {
        self.forward(carry, x)
    }
}

impl RnnCell for GRUCell {
    type Carry = Tensor;

    /// A zero `h`, drawing one key from `stream` as Flax does.
    fn initialize_carry_from(&self, input_shape: &[usize], stream: &RngStream) -> Result<Tensor> {
        zero_carry(&carry_shape(input_shape, self.hidden_features), stream)
    }

    fn step(&self, carry: &Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.forward(carry, x)
    }
}
