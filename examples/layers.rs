//! The layer library at work: a small CNN trained a few steps on synthetic images, and a
//! transformer block (embedding, causal self-attention, MLP, residuals) applied to tokens.
//! Run with `cargo run --release --example layers`.

use nnx_fast::nn::{self, Conv, Dropout, Embed, LayerNorm, Linear, MultiHeadAttention};
use nnx_fast::prelude::*;

/// Conv → relu → max-pool → Conv → relu → global average → Linear.
#[derive(Module, Clone)]
pub struct Cnn {
    conv1: Conv,
    conv2: Conv,
    head: Linear,
    dropout: Dropout,
}

impl Cnn {
    /// A CNN over `[batch, 8, 8, 1]` images with `classes` outputs.
    pub fn new(classes: usize, rngs: &Rngs) -> Result<Cnn> {
        Ok(Cnn {
            conv1: Conv::new(1, 8, &[3, 3], rngs)?,
            conv2: Conv::new(8, 16, &[3, 3], rngs)?,
            head: Linear::new(16, classes, rngs)?,
            dropout: Dropout::new(0.1, rngs)?,
        })
    }

    /// Class scores, `[batch, classes]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(x).relu()?;
        let h = nn::max_pool(&h, &[2, 2], Some(&[2, 2]), nn::Padding::Valid)?;
        let h = self.conv2.forward(&h).relu()?;
        let pooled = h.mean(vec![1, 2])?;
        self.head.forward(&self.dropout.forward(&pooled)?)
    }
}

/// Softmax cross-entropy with integer labels, averaged.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, classes: usize) -> Result<Tensor> {
    let picked = (nn::log_softmax(logits, -1)? * nn::one_hot(labels, classes)?)?;
    picked.sum(-1).mean(None)?.negative()
}

/// Images whose class is the quadrant holding the bright blob; returns (images, labels).
pub fn blobs(n: usize) -> Result<(Tensor, Tensor)> {
    let labels: Vec<i32> = (0..n).map(|i| (i % 4) as i32).collect();
    let mut pixels = vec![0.0f32; n * 64];
    for (i, &label) in labels.iter().enumerate() {
        let (r0, c0) = (4 * (label as usize / 2), 4 * (label as usize % 2));
        for r in r0..r0 + 3 {
            for c in c0..c0 + 3 {
                pixels[i * 64 + r * 8 + c] = 1.0;
            }
        }
    }
    let noise = random::normal(&random::key(9), [n, 8, 8, 1])?;
    let images = (Tensor::from_vec(&[n, 8, 8, 1], pixels)? + (noise * 0.1)?)?;
    Ok((images, Tensor::from_slice(&labels)))
}

/// Trains the CNN with SGD for `steps` steps; returns the losses.
pub fn train_cnn(steps: usize) -> Result<Vec<f32>> {
    let rngs = Rngs::builder()
        .stream("params", 0)
        .stream("dropout", 1)
        .build()?;
    let model = Cnn::new(4, &rngs)?;
    let (images, labels) = blobs(32)?;
    let loss_fn = |m: &Cnn, x: &Tensor, y: &Tensor| cross_entropy(&m.forward(x)?, y, 4);
    let step = jit(|m: &Cnn, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let out = value_and_grad(loss_fn).call(&Fast, (m, x, y))?;
        let grads = out.grads[0].state()?;
        let params = graph::state_by(m, &VariableType::PARAM.into());
        graph::update(
            m,
            &params.map(|path, w| w - &(grads.variable(path)?.value() * 0.5)?)?,
        )?;
        Ok(out.value)
    });
    (0..steps)
        .map(|_| step.call(&Fast, (&model, &images, &labels))?.item::<f32>())
        .collect()
}

/// Pre-norm transformer block: `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Clone)]
pub struct Block {
    ln1: LayerNorm,
    attention: MultiHeadAttention,
    ln2: LayerNorm,
    up: Linear,
    down: Linear,
}

impl Block {
    /// A block over `features` with `heads` heads and a 4× MLP.
    pub fn new(features: usize, heads: usize, rngs: &Rngs) -> Result<Block> {
        Ok(Block {
            ln1: LayerNorm::new(features, rngs)?,
            attention: MultiHeadAttention::new(heads, features, rngs)?,
            ln2: LayerNorm::new(features, rngs)?,
            up: Linear::new(features, 4 * features, rngs)?,
            down: Linear::new(4 * features, features, rngs)?,
        })
    }

    /// `[batch, length, features]` in and out; `mask` as `make_causal_mask` gives it.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = (x + self.attention.forward(&self.ln1.forward(x)?, Some(mask))?)?;
        let hidden = nn::gelu(&self.up.forward(&self.ln2.forward(&x)?)?, true)?;
        &x + self.down.forward(&hidden)?
    }
}

/// A tiny language model: embeddings, one block, logits tied to the embeddings.
#[derive(Module, Clone)]
pub struct TinyLm {
    embed: Embed,
    block: Block,
    ln: LayerNorm,
}

impl TinyLm {
    /// Over a vocabulary of `vocab` tokens, `features` wide.
    pub fn new(vocab: usize, features: usize, rngs: &Rngs) -> Result<TinyLm> {
        Ok(TinyLm {
            embed: Embed::new(vocab, features, rngs)?,
            block: Block::new(features, 2, rngs)?,
            ln: LayerNorm::new(features, rngs)?,
        })
    }

    /// Next-token logits for `[batch, length]` tokens: `[batch, length, vocab]`.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let mask = nn::make_causal_mask(tokens)?;
        let h = self.block.forward(&self.embed.forward(tokens)?, &mask)?;
        self.embed.attend(&self.ln.forward(&h)?)
    }
}

#[allow(dead_code)]
fn main() -> Result<()> {
    for (step, loss) in train_cnn(30)?.iter().enumerate() {
        println!("cnn step {step:2}  loss {loss:.4}");
    }
    let lm = TinyLm::new(16, 8, &Rngs::new(0)?)?;
    let tokens = Tensor::from_vec(&[2, 6], vec![1i32, 5, 2, 7, 3, 0, 4, 4, 9, 1, 15, 2])?;
    let logits = jit(|m: &TinyLm, t: &Tensor| m.forward(t)).call(&Fast, (&lm, &tokens))?;
    println!("transformer logits: shape {:?}", logits.shape());
    println!("{}", lm.to_object());
    Ok(())
}
