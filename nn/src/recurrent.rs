//! `nnx.LSTMCell` and `nnx.GRUCell`.

use nnx_core::Module;
use nnx_core::{Result, RngStream, Rngs, Tensor};

use crate::functions::sigmoid;
use crate::initializers::{self, Initializer};
use crate::linear::{Linear, LinearOptions};

/// The recurrent cells' initializers (`kernel_init`, `recurrent_kernel_init`,
/// `bias_init`); [`Default`] gives Flax's (`lecun_normal`, `orthogonal`, zeros).
///
/// ```
/// use nnx_core::{Result, Rngs};
/// use nnx_nn::{CellOptions, LSTMCell, initializers};
/// # fn main() -> Result<()> {
/// let options = CellOptions { recurrent_kernel_init: initializers::lecun_normal(), ..CellOptions::default() };
/// let cell = LSTMCell::with_options(3, 4, options, &Rngs::new(0)?)?;
/// assert_eq!(cell.hi.kernel.value().shape(), &[4, 4]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CellOptions {
    /// The input kernels' initializer.
    pub kernel_init: Initializer,
    /// The hidden (recurrent) kernels' initializer.
    pub recurrent_kernel_init: Initializer,
    /// The biases' initializer.
    pub bias_init: Initializer,
}

impl Default for CellOptions {
    fn default() -> Self {
        CellOptions {
            kernel_init: initializers::lecun_normal(),
            recurrent_kernel_init: initializers::orthogonal(),
            bias_init: initializers::zeros(),
        }
    }
}

impl CellOptions {
    /// A gate's Linear: the input one (`kernel_init`) or the recurrent one
    /// (`recurrent_kernel_init`), with a bias from `bias_init` when `use_bias`.
    fn dense(
        &self,
        in_features: usize,
        out_features: usize,
        recurrent: bool,
        use_bias: bool,
        rngs: &Rngs,
    ) -> Result<Linear> {
        let kernel_init = match recurrent {
            true => self.recurrent_kernel_init.clone(),
            false => self.kernel_init.clone(),
        };
        let options = LinearOptions {
            use_bias,
            kernel_init,
            bias_init: self.bias_init.clone(),
        };
        Linear::with(in_features, out_features, options, rngs)
    }
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
        LSTMCell::with_options(in_features, hidden_features, CellOptions::default(), rngs)
    }

    /// `nnx.LSTMCell(in_features, hidden_features, kernel_init=…, recurrent_kernel_init=…,
    /// bias_init=…, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`LSTMCell::new`].
    pub fn with_options(
        in_features: usize,
        hidden_features: usize,
        options: CellOptions,
        rngs: &Rngs,
    ) -> Result<LSTMCell> {
        let input = |rngs| options.dense(in_features, hidden_features, false, false, rngs);
        let hidden = |rngs| options.dense(hidden_features, hidden_features, true, true, rngs);
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
        GRUCell::with_options(in_features, hidden_features, CellOptions::default(), rngs)
    }

    /// `nnx.GRUCell(in_features, hidden_features, kernel_init=…, recurrent_kernel_init=…,
    /// bias_init=…, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`GRUCell::new`].
    pub fn with_options(
        in_features: usize,
        hidden_features: usize,
        options: CellOptions,
        rngs: &Rngs,
    ) -> Result<GRUCell> {
        let gates = 3 * hidden_features;
        Ok(GRUCell {
            dense_i: options.dense(in_features, gates, false, true, rngs)?,
            dense_h: options.dense(hidden_features, gates, true, false, rngs)?,
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
