//! `nnx.LinearGeneral`, `nnx.MultiHeadAttention` and the attention mask helpers.

use nnx_core::random::{self, RngStream};
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::{Cache, Error, Module, Param, Result, Rngs, Tensor};

use crate::common::{dims, isize_of};
use crate::functions::softmax;
use crate::initializers::{self, Initializer};
use crate::normalization::LayerNorm;

/// `nnx.MultiHeadAttention`'s keyword arguments that shape its parameters; [`Default`]
/// gives Flax's (every size `in_features`, no dropout, biases, no query/key normalisation,
/// `lecun_normal` kernels and zero biases, the output projection's the same).
///
/// ```
/// use nnx_core::{Result, Rngs, Tensor};
/// use nnx_nn::{MultiHeadAttention, attention::AttentionOptions};
/// # fn main() -> Result<()> {
/// // nnx.MultiHeadAttention(2, 8, in_kv_features=5, use_bias=False, normalize_qk=True, …)
/// let options = AttentionOptions {
///     in_kv_features: Some(5),
///     use_bias: false,
///     normalize_qk: true,
///     ..AttentionOptions::default()
/// };
/// let mha = MultiHeadAttention::with_options(2, 8, options, &Rngs::new(0)?)?;
/// let (q, kv) = (Tensor::ones([1, 3, 8]), Tensor::ones([1, 4, 5]));
/// assert_eq!(mha.attend(&q, &kv, None)?.shape(), &[1, 3, 8]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionOptions {
    /// The total size of the heads (`None`: `in_features`).
    pub qkv_features: Option<usize>,
    /// The size of the output's last axis (`None`: `in_features`).
    pub out_features: Option<usize>,
    /// The size of the keys' and values' inputs' last axis (`None`: `in_features`).
    pub in_kv_features: Option<usize>,
    /// The probability of dropping an attention weight.
    pub dropout_rate: f64,
    /// Whether the projections have biases.
    pub use_bias: bool,
    /// A `LayerNorm` (no bias) on each head's queries and keys (`query_ln`, `key_ln`).
    pub normalize_qk: bool,
    /// The projections' kernel initializer.
    pub kernel_init: Initializer,
    /// The output projection's (`None`: `kernel_init`).
    pub out_kernel_init: Option<Initializer>,
    /// The projections' bias initializer.
    pub bias_init: Initializer,
    /// The output projection's (`None`: `bias_init`).
    pub out_bias_init: Option<Initializer>,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions {
            qkv_features: None,
            out_features: None,
            in_kv_features: None,
            dropout_rate: 0.0,
            use_bias: true,
            normalize_qk: false,
            kernel_init: initializers::lecun_normal(),
            out_kernel_init: None,
            bias_init: initializers::zeros(),
            out_bias_init: None,
        }
    }
}

/// `nnx.LinearGeneral(in_features, out_features, axis)`: contracts the input's trailing axes
/// `axis` (of sizes `in_features`) with a kernel of shape `in_features + out_features`.
///
/// Initialised as Flax's: the kernel initializer sees the flat shape
/// `[prod(in_features), prod(out_features)]` (so its fans are those of a matrix) and the
/// result is reshaped; the bias likewise from `[prod(out_features)]`. Contraction over axes
/// other than the trailing ones, and batch axes, are not supported yet.
#[derive(Module, Clone, Debug)]
pub struct LinearGeneral {
    /// `in_features + out_features`.
    pub kernel: Param,
    /// `out_features`, or `None` without a bias.
    pub bias: Option<Param>,
    /// The sizes of the contracted axes.
    pub in_features: Vec<usize>,
    /// The sizes of the new trailing axes.
    pub out_features: Vec<usize>,
    /// Whether there is a bias.
    pub use_bias: bool,
}

impl LinearGeneral {
    /// `nnx.LinearGeneral(in_features, out_features, axis=(-len(in), …, -1), rngs=rngs)`
    /// with Flax's default initializers.
    ///
    /// # Errors
    /// A missing `params` (or `default`) stream.
    pub fn new(
        in_features: &[usize],
        out_features: &[usize],
        rngs: &Rngs,
    ) -> Result<LinearGeneral> {
        LinearGeneral::with(
            in_features,
            out_features,
            true,
            &initializers::lecun_normal(),
            &initializers::zeros(),
            rngs,
        )
    }

    /// As [`LinearGeneral::new`] with a choice of bias and initializers.
    ///
    /// # Errors
    /// As [`LinearGeneral::new`], and an initializer's errors.
    pub fn with(
        in_features: &[usize],
        out_features: &[usize],
        use_bias: bool,
        kernel_init: &Initializer,
        bias_init: &Initializer,
        rngs: &Rngs,
    ) -> Result<LinearGeneral> {
        let fan_in: usize = in_features.iter().product();
        let fan_out: usize = out_features.iter().product();
        let shape = dims(&[in_features, out_features].concat())?;
        let kernel = kernel_init
            .init(&rngs.next_key("params")?, [fan_in, fan_out])?
            .reshape(&shape)?;
        let bias = if use_bias {
            let flat = bias_init.init(&rngs.next_key("params")?, [fan_out])?;
            Some(Param::new(flat.reshape(&dims(out_features)?)?))
        } else {
            None
        };
        Ok(LinearGeneral {
            kernel: Param::new(kernel),
            bias,
            in_features: in_features.to_vec(),
            out_features: out_features.to_vec(),
            use_bias,
        })
    }

    /// `layer(x)`: `x`'s trailing `in_features` axes replaced by `out_features`.
    ///
    /// # Errors
    /// An input whose trailing axes are not `in_features`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n_in = self.in_features.len();
        let shape = x.shape();
        if shape.len() < n_in || shape[shape.len() - n_in..] != self.in_features[..] {
            return Err(Error::shape(
                "LinearGeneral",
                format!(
                    "the input's trailing axes {:?} are not in_features {:?}",
                    &shape[shape.len().saturating_sub(n_in)..],
                    self.in_features
                ),
            ));
        }
        let fan_in: usize = self.in_features.iter().product();
        let fan_out: usize = self.out_features.iter().product();
        let batch = &shape[..shape.len() - n_in];
        let kernel = self.kernel.value().reshape(&dims(&[fan_in, fan_out])?)?;
        let y = x
            .reshape(&dims(&[batch, &[fan_in]].concat())?)?
            .matmul(&kernel)?;
        let y = y.reshape(&dims(&[batch, &self.out_features].concat())?)?;
        match &self.bias {
            Some(bias) => y + &bias.value(),
            None => Ok(y),
        }
    }
}

/// `nnx.MultiHeadAttention(num_heads, in_features, qkv_features, out_features,
/// dropout_rate)`: query, key and value projections to `num_heads`
/// heads of `qkv_features / num_heads`, scaled dot-product attention, an output projection.
/// Parameters are Flax's for the same seed (query, key, value, out, in that order). With a
/// `dropout_rate`, the layer forks the `dropout` stream after creating its projections, as
/// Flax does, and drops attention weights (one mask shared by the batch and the heads) unless
/// `deterministic` (`eval()` sets it).
///
/// For autoregressive decoding, [`MultiHeadAttention::init_cache`] adds the `cached_key`,
/// `cached_value` and `cache_index` Cache Variables and [`MultiHeadAttention::decode`] takes
/// one position at a time, as Flax's `decode=True`.
#[derive(Module, Clone, Debug)]
pub struct MultiHeadAttention {
    /// `in_features → (num_heads, head_dim)`.
    pub query: LinearGeneral,
    /// As `query`.
    pub key: LinearGeneral,
    /// As `query`.
    pub value: LinearGeneral,
    /// `(num_heads, head_dim) → out_features`.
    pub out: LinearGeneral,
    /// The number of heads.
    pub num_heads: usize,
    /// The size of the inputs' last axis.
    pub in_features: usize,
    /// The total size of the heads.
    pub qkv_features: usize,
    /// The size of the output's last axis.
    pub out_features: usize,
    /// `qkv_features / num_heads`.
    pub head_dim: usize,
    /// The size of the keys' and values' inputs' last axis.
    pub in_kv_features: usize,
    /// Whether the projections have biases.
    pub use_bias: bool,
    /// Whether queries and keys are normalised per head.
    pub normalize_qk: bool,
    /// The queries' `LayerNorm` with `normalize_qk`.
    pub query_ln: Option<LayerNorm>,
    /// The keys' `LayerNorm` with `normalize_qk`.
    pub key_ln: Option<LayerNorm>,
    /// The probability of dropping an attention weight.
    pub dropout_rate: f64,
    /// No dropout (`eval()` sets it, `train()` clears it).
    pub deterministic: bool,
    /// The dropout stream, with a positive `dropout_rate`.
    pub rngs: Option<RngStream>,
    /// The keys seen so far, `[batch…, max_length, num_heads, head_dim]`, after `init_cache`.
    pub cached_key: Option<Cache>,
    /// The values seen so far, as `cached_key`.
    pub cached_value: Option<Cache>,
    /// The next position to write (int32).
    pub cache_index: Option<Cache>,
}

impl MultiHeadAttention {
    /// `nnx.MultiHeadAttention(num_heads, in_features, decode=False, rngs=rngs)`
    /// (`qkv_features = out_features = in_features`).
    ///
    /// # Errors
    /// As [`MultiHeadAttention::with`].
    pub fn new(num_heads: usize, in_features: usize, rngs: &Rngs) -> Result<MultiHeadAttention> {
        MultiHeadAttention::with(num_heads, in_features, in_features, in_features, 0.0, rngs)
    }

    /// `nnx.MultiHeadAttention(num_heads, in_features, qkv_features, out_features,
    /// dropout_rate=…, …)`.
    ///
    /// # Errors
    /// `qkv_features` not a multiple of `num_heads` (Flax's message); a missing `params`
    /// stream, or `dropout` stream with a positive `dropout_rate`.
    pub fn with(
        num_heads: usize,
        in_features: usize,
        qkv_features: usize,
        out_features: usize,
        dropout_rate: f64,
        rngs: &Rngs,
    ) -> Result<MultiHeadAttention> {
        let options = AttentionOptions {
            qkv_features: Some(qkv_features),
            out_features: Some(out_features),
            dropout_rate,
            ..AttentionOptions::default()
        };
        MultiHeadAttention::with_options(num_heads, in_features, options, rngs)
    }

    /// `nnx.MultiHeadAttention(num_heads, in_features, **options, rngs=rngs)`: the query,
    /// key and value projections, the query and key `LayerNorm`s with `normalize_qk`, then
    /// the output projection, in Flax's order (so the same keys).
    ///
    /// # Errors
    /// As [`MultiHeadAttention::with`].
    pub fn with_options(
        num_heads: usize,
        in_features: usize,
        options: AttentionOptions,
        rngs: &Rngs,
    ) -> Result<MultiHeadAttention> {
        let qkv_features = options.qkv_features.unwrap_or(in_features);
        let out_features = options.out_features.unwrap_or(in_features);
        let in_kv_features = options.in_kv_features.unwrap_or(in_features);
        if num_heads == 0 || !qkv_features.is_multiple_of(num_heads) {
            return Err(Error::shape(
                "MultiHeadAttention",
                format!(
                    "Memory dimension ({qkv_features}) must be divisible by 'num_heads' heads ({num_heads})."
                ),
            ));
        }
        let head_dim = qkv_features / num_heads;
        let use_bias = options.use_bias;
        let projection = |features: usize| {
            LinearGeneral::with(
                &[features],
                &[num_heads, head_dim],
                use_bias,
                &options.kernel_init,
                &options.bias_init,
                rngs,
            )
        };
        let query = projection(in_features)?;
        let key = projection(in_kv_features)?;
        let value = projection(in_kv_features)?;
        let norm = || LayerNorm::with(head_dim, 1e-6, false, true, rngs);
        let (query_ln, key_ln) = match options.normalize_qk {
            true => (Some(norm()?), Some(norm()?)),
            false => (None, None),
        };
        let out = LinearGeneral::with(
            &[num_heads, head_dim],
            &[out_features],
            use_bias,
            options
                .out_kernel_init
                .as_ref()
                .unwrap_or(&options.kernel_init),
            options.out_bias_init.as_ref().unwrap_or(&options.bias_init),
            rngs,
        )?;
        let dropout_rate = options.dropout_rate;
        let stream = if dropout_rate > 0.0 {
            Some(rngs.stream("dropout")?.fork()?)
        } else {
            None
        };
        Ok(MultiHeadAttention {
            query,
            key,
            value,
            out,
            num_heads,
            in_features,
            qkv_features,
            out_features,
            head_dim,
            in_kv_features,
            use_bias,
            normalize_qk: options.normalize_qk,
            query_ln,
            key_ln,
            dropout_rate,
            deterministic: false,
            rngs: stream,
            cached_key: None,
            cached_value: None,
            cache_index: None,
        })
    }

    /// The projected queries, keys and values, queries and keys normalised with
    /// `normalize_qk`.
    fn project(
        &self,
        inputs_q: &Tensor,
        inputs_k: &Tensor,
        inputs_v: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let mut query = self.query.forward(inputs_q)?;
        let mut key = self.key.forward(inputs_k)?;
        let value = self.value.forward(inputs_v)?;
        if let (Some(query_ln), Some(key_ln)) = (&self.query_ln, &self.key_ln) {
            query = query_ln.forward(&query)?;
            key = key_ln.forward(&key)?;
        }
        Ok((query, key, value))
    }

    /// `layer.init_cache(input_shape)`: zero caches for inputs of shape
    /// `[batch…, max_length, in_features]`, and position 0.
    ///
    /// # Errors
    /// An `input_shape` without a length and a feature axis.
    pub fn init_cache(&mut self, input_shape: &[usize]) -> Result<()> {
        if input_shape.len() < 2 {
            return Err(Error::shape(
                "init_cache",
                "input_shape needs [batch…, length, features]",
            ));
        }
        let mut shape = input_shape[..input_shape.len() - 1].to_vec();
        shape.extend([self.num_heads, self.head_dim]);
        self.cached_key = Some(Cache::new(Tensor::try_zeros(&shape)?));
        self.cached_value = Some(Cache::new(Tensor::try_zeros(&shape)?));
        self.cache_index = Some(Cache::new(Tensor::scalar(0i32)));
        Ok(())
    }

    /// `layer(x, decode=True)`: one position `x` (`[batch…, 1, in_features]`) attending to
    /// every position so far; its key and value are written into the cache at
    /// `cache_index`, which then advances.
    ///
    /// # Errors
    /// No cache ("Autoregressive cache not initialized, call ``init_cache`` first."); an
    /// input that is not one position of the cache's batch shape.
    pub fn decode(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (Some(cached_key), Some(cached_value), Some(cache_index)) =
            (&self.cached_key, &self.cached_value, &self.cache_index)
        else {
            return Err(Error::shape(
                "MultiHeadAttention",
                "Autoregressive cache not initialized, call ``init_cache`` first.",
            ));
        };
        let (query, key, value) = self.project(x, x, x)?;
        let cache_shape = cached_key.value().shape().to_vec();
        let rank = cache_shape.len();
        let mut expected = cache_shape.clone();
        expected[rank - 3] = 1;
        if key.shape() != &expected[..] {
            return Err(Error::shape(
                "MultiHeadAttention",
                format!(
                    "Autoregressive cache shape error, expected key shape {expected:?} instead got {:?}.",
                    key.shape()
                ),
            ));
        }
        let max_length = cache_shape[rank - 3];
        let index = cache_index.value();
        // Written at `cache_index` along the length axis, as Flax's `dynamic_update_slice`
        // (which clamps an index past the end to the last position).
        let length_axis = isize_of(rank - 3)?;
        let write = |cache: &Cache, new: &Tensor| -> Result<Tensor> {
            cache
                .value()
                .dynamic_update_slice_in_dim(new, &index, length_axis)
        };
        let keys = write(cached_key, &key)?;
        let values = write(cached_value, &value)?;
        cached_key.set_value(keys.clone())?;
        cached_value.set_value(values.clone())?;
        cache_index.set_value((&index + 1i32)?)?;
        // Only the positions written so far: [batch…, 1, 1, max_length].
        let mut seen_shape: Vec<usize> = cache_shape[..rank - 3].to_vec();
        seen_shape.extend([1, 1, max_length]);
        let seen = Tensor::try_arange(max_length)?
            .compare(CompareOp::Le, &index)?
            .broadcast_to(&seen_shape)?;
        let mask = match mask {
            Some(m) => m
                .compare(CompareOp::Ne, &Tensor::scalar(false))?
                .select(&seen, &Tensor::scalar(false))?,
            None => seen,
        };
        let y = attention(&query, &keys, &values, Some(&mask), None)?;
        self.out.forward(&y)
    }

    /// Self-attention: `layer(x, mask=mask)`. `mask` (bool, broadcastable to
    /// `[batch…, num_heads, length, length]`) is `false` where attention is not allowed; see
    /// [`make_causal_mask`].
    ///
    /// # Errors
    /// An input whose last axis is not `in_features`; a mask that does not broadcast.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.attend(x, x, mask)
    }

    /// Cross-attention: queries from `inputs_q`, keys and values from `inputs_kv`.
    ///
    /// # Errors
    /// As [`MultiHeadAttention::forward`].
    pub fn attend(
        &self,
        inputs_q: &Tensor,
        inputs_kv: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.attend_qkv(inputs_q, inputs_kv, inputs_kv, mask)
    }

    /// `layer(inputs_q, inputs_k, inputs_v, mask=mask)`: queries, keys and values each from
    /// their own inputs.
    ///
    /// # Errors
    /// As [`MultiHeadAttention::forward`].
    pub fn attend_qkv(
        &self,
        inputs_q: &Tensor,
        inputs_k: &Tensor,
        inputs_v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (query, key, value) = self.project(inputs_q, inputs_k, inputs_v)?;
        let dropout = match &self.rngs {
            Some(stream) if self.dropout_rate > 0.0 && !self.deterministic => {
                Some((stream.next_key()?, self.dropout_rate))
            }
            _ => None,
        };
        let x = attention(&query, &key, &value, mask, dropout)?;
        self.out.forward(&x)
    }
}

/// The axes of a `[batch…, a, b, c]` array reordered to `[batch…, x, y, z]` by `tail`
/// (indices into the last three).
fn tail_permutation(rank: usize, tail: [usize; 3]) -> Result<Vec<isize>> {
    if rank < 3 {
        return Err(Error::shape(
            "dot_product_attention",
            "inputs need [batch…, length, heads, depth]",
        ));
    }
    let base = rank - 3;
    let mut axes: Vec<isize> = (0..base).map(isize_of).collect::<Result<_>>()?;
    for t in tail {
        axes.push(isize_of(base + t)?);
    }
    Ok(axes)
}

/// `nnx.dot_product_attention(query, key, value, mask)` for `[batch…, length, heads, depth]`
/// inputs: `softmax(q kᵀ / sqrt(depth))` per head, masked where `mask` is `false` (with
/// float32's lowest value, as Flax), applied to `value`; the result has the query's shape.
///
/// # Errors
/// Shapes that do not fit; a mask that does not broadcast.
pub fn dot_product_attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let fail = |why: String| Err(Error::shape("dot_product_attention", why));
    let arrays = [query.shape(), key.shape(), value.shape()];
    if arrays.iter().any(|s| s.len() != query.ndim()) {
        let ranks: Vec<String> = arrays.iter().map(|s| s.len().to_string()).collect();
        return fail(format!(
            "q, k, v must have same rank, but got {}.",
            ranks.join(", ")
        ));
    }
    let batch = |s: &[usize]| s[..s.len().saturating_sub(3)].to_vec();
    // Shapes as Python prints them, so the messages are Flax's.
    let tuple = |s: &[usize]| match s {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            s.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if arrays.iter().any(|s| batch(s) != batch(query.shape())) {
        let shapes: Vec<String> = arrays.iter().map(|s| tuple(s)).collect();
        return fail(format!(
            "q, k, v batch dims must match, but got shapes {}.",
            shapes.join(", ")
        ));
    }
    if let (Some(&k), Some(&v)) = (
        key.shape().get(key.ndim().wrapping_sub(3)),
        value.shape().get(value.ndim().wrapping_sub(3)),
    ) && k != v
    {
        return fail(format!("k, v lengths must match, but got {k} and {v}."));
    }
    attention(query, key, value, mask, None)
}

/// `nnx.make_attention_mask(query_input, key_input)` (`pairwise_fn = jnp.multiply`): for
/// inputs `[batch…, q_length]` and `[batch…, kv_length]`, the float32 mask
/// `[batch…, 1, q_length, kv_length]` of their pairwise products (padding tokens as 0 give
/// 0 rows and columns).
///
/// ```
/// use nnx_core::{Result, Tensor};
/// use nnx_nn::attention::make_attention_mask;
/// # fn main() -> Result<()> {
/// let tokens = Tensor::from_vec(&[1, 3], vec![1.0f32, 1.0, 0.0])?; // the last is padding
/// let mask = make_attention_mask(&tokens, &tokens)?;
/// assert_eq!(mask.shape(), &[1, 1, 3, 3]);
/// assert_eq!(mask.to_vec::<f32>()?, vec![1., 1., 0., 1., 1., 0., 0., 0., 0.]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Inputs whose leading axes do not broadcast.
pub fn make_attention_mask(query_input: &Tensor, key_input: &Tensor) -> Result<Tensor> {
    // Bools multiply as their logical and, which their 0/1 values give.
    let numeric = |t: &Tensor| match t.dtype() {
        nnx_core::DType::Bool => t.astype(nnx_core::DType::F32),
        _ => Ok(t.clone()),
    };
    let pairs = numeric(query_input)?
        .expand_dims(-1)?
        .mul(&numeric(key_input)?.expand_dims(-2)?)?;
    pairs.expand_dims(-3)?.astype(nnx_core::DType::F32)
}

/// `nnx.combine_masks(*masks)`: the logical and of the masks given (`None`s skipped), as
/// float32; `None` when none is given.
///
/// # Errors
/// Masks of different ranks ("masks must have same rank"), or shapes that do not
/// broadcast.
pub fn combine_masks(masks: &[Option<&Tensor>]) -> Result<Option<Tensor>> {
    let given: Vec<&Tensor> = masks.iter().flatten().copied().collect();
    let Some(first) = given.first() else {
        return Ok(None);
    };
    if given.iter().any(|m| m.ndim() != first.ndim()) {
        return Err(Error::shape("combine_masks", "masks must have same rank"));
    }
    let truth = |m: &Tensor| m.compare(CompareOp::Ne, &Tensor::scalar(false));
    let mut combined = truth(first)?;
    for mask in &given[1..] {
        combined = combined.select(&truth(mask)?, &Tensor::scalar(false))?;
    }
    combined.astype(nnx_core::DType::F32).map(Some)
}

/// [`dot_product_attention`], with dropout of the weights drawn from `(key, rate)`: one
/// mask `[1…, q, k]` for the batch and the heads (Flax's `broadcast_dropout`), the kept
/// weights scaled by `1 / (1 - rate)`.
fn attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    mask: Option<&Tensor>,
    dropout: Option<(Tensor, f64)>,
) -> Result<Tensor> {
    let rank = query.ndim();
    let depth = *query.shape().last().unwrap_or(&1) as f32;
    let scaled = (query / depth.sqrt())?;
    // [..., q, h, d] -> [..., h, q, d]; [..., k, h, d] -> [..., h, d, k].
    let q = scaled.permute_axes(&tail_permutation(rank, [1, 0, 2])?)?;
    let k = key.permute_axes(&tail_permutation(rank, [1, 2, 0])?)?;
    let mut weights = q.matmul(&k)?;
    if let Some(mask) = mask {
        let lowest = Tensor::try_full(weights.shape(), f32::MIN)?;
        let mask = mask.compare(CompareOp::Ne, &Tensor::scalar(false))?;
        weights = mask
            .broadcast_to(weights.shape())?
            .select(&weights, &lowest)?;
    }
    let mut weights = softmax(&weights, -1)?;
    if let Some((rng, rate)) = dropout {
        let keep = (1.0 - rate) as f32;
        let mut shape = vec![1; weights.ndim() - 2];
        shape.extend_from_slice(&weights.shape()[weights.ndim() - 2..]);
        let kept = random::bernoulli(&rng, keep, &shape)?.astype(nnx_core::DType::F32)?;
        weights = (weights * (kept / keep)?)?;
    }
    let v = value.permute_axes(&tail_permutation(rank, [1, 0, 2])?)?;
    // [..., h, q, d] -> [..., q, h, d].
    weights
        .matmul(&v)?
        .permute_axes(&tail_permutation(rank, [1, 0, 2])?)
}

/// `nnx.make_causal_mask(x)` for `x` of shape `[batch…, length]`: a bool mask
/// `[batch…, 1, length, length]`, `true` where the key position is at most the query's.
///
/// # Errors
/// A scalar `x`.
pub fn make_causal_mask(x: &Tensor) -> Result<Tensor> {
    let shape = x.shape();
    let length = *shape
        .last()
        .ok_or_else(|| Error::shape("make_causal_mask", "x needs a length axis"))?;
    let positions = Tensor::try_arange(length)?;
    let causal = positions
        .expand_dims(-1)?
        .compare(CompareOp::Ge, &positions.expand_dims(0)?)?;
    let mut target: Vec<usize> = shape[..shape.len() - 1].to_vec();
    target.extend([1, length, length]);
    causal.broadcast_to(&target)
}
