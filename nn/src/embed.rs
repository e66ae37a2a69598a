//! `nnx.Embed`.

use nnx_core::{DType, Error, Module, Param, Result, Rngs, Tensor};

use crate::common::param;
use crate::initializers::{Distribution, FanMode, Initializer};

/// `nnx.Embed(num_embeddings, features)`: a table of `num_embeddings` vectors; `forward`
/// looks up integer indices (`jnp.take(embedding, inputs, axis=0)`), `attend` scores a query
/// against every vector (`query @ embedding.T`).
///
/// The table is initialised as Flax's (`variance_scaling(1, fan_in, normal, out_axis=0)`,
/// one `params` key). As `jnp.take`, a negative index counts from the end and an index out
/// of range gives a row of NaN.
#[derive(Module, Clone, Debug)]
pub struct Embed {
    /// `[num_embeddings, features]`.
    pub embedding: Param,
    /// The number of vectors.
    pub num_embeddings: usize,
    /// The size of each vector.
    pub features: usize,
}

impl Embed {
    /// `nnx.Embed(num_embeddings, features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` (or `default`) stream.
    pub fn new(num_embeddings: usize, features: usize, rngs: &Rngs) -> Result<Embed> {
        let init = Initializer::VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanIn,
            distribution: Distribution::Normal,
            in_axis: vec![-2],
            out_axis: vec![0],
            batch_axis: Vec::new(),
        };
        Embed::with_init(num_embeddings, features, &init, rngs)
    }

    /// `nnx.Embed(num_embeddings, features, embedding_init=init, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`Embed::new`].
    pub fn with_init(
        num_embeddings: usize,
        features: usize,
        init: &Initializer,
        rngs: &Rngs,
    ) -> Result<Embed> {
        Ok(Embed {
            embedding: param(init, [num_embeddings, features], rngs)?,
            num_embeddings,
            features,
        })
    }

    /// `layer(inputs)`: the vectors of integer `inputs`, shape `inputs.shape + [features]`.
    ///
    /// The lookup is one `take` (a gather of rows); its gradient adds the cotangent rows
    /// back at their indices (a scatter-add), so repeated indices add up. With one
    /// embedding, every index reads it, in range or not, as in Flax (which broadcasts it).
    ///
    /// # Errors
    /// Non-integer inputs ("Input type must be an integer or unsigned integer", as Flax).
    pub fn forward(&self, inputs: &Tensor) -> Result<Tensor> {
        if inputs.dtype().is_float() || inputs.dtype() == DType::Bool {
            return Err(Error::shape(
                "Embed",
                format!(
                    "Input type must be an integer or unsigned integer, got {}",
                    inputs.dtype()
                ),
            ));
        }
        let embedding = self.embedding.value();
        // One embedding: every index reads it, in range or not (Flax broadcasts it).
        if let [1, features] = *embedding.shape() {
            let mut shape = inputs.shape().to_vec();
            shape.push(features);
            return embedding
                .reshape(&[features as isize])?
                .broadcast_to(&shape);
        }
        embedding.take(inputs, 0)
    }

    /// `layer.attend(query)`: `query @ embedding.T`, a score per vector (tied output
    /// embeddings).
    ///
    /// # Errors
    /// A query whose last axis is not `features`.
    pub fn attend(&self, query: &Tensor) -> Result<Tensor> {
        query.matmul(&self.embedding.value().transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_embedding_is_read_by_every_index() -> Result<()> {
        let layer = Embed::new(1, 3, &Rngs::new(0)?)?;
        let indices = Tensor::from_vec(&[2, 2], vec![0i32, 10, -4, 0])?;
        let out = layer.forward(&indices)?;
        assert_eq!(out.shape(), &[2, 2, 3]);
        let row = layer.embedding.value().to_vec::<f32>()?;
        assert_eq!(out.to_vec::<f32>()?, row.repeat(4));
        Ok(())
    }
}
