//! Weights as safetensors under PyTorch's parameter names, so that a model can be checked
//! against (or imported from) PyTorch's `model.state_dict()`.

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::network::Layout;
use super::LstmError;

/// Serialises the flat parameter vector as f32 tensors with PyTorch's names and shapes.
pub(crate) fn to_safetensors(layout: Layout, params: &[f32]) -> Vec<u8> {
    let tensors = layout.tensors();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| {
            params[t.range.clone()]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            let view = TensorView::new(Dtype::F32, t.shape.clone(), b)
                .expect("shape and byte length agree by construction");
            (t.name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, &None).expect("serialising in-memory tensors cannot fail")
}

/// Reads f32 weights for `layout`; every expected tensor must be present with its exact shape,
/// and no other tensor may be.
pub(crate) fn from_safetensors(layout: Layout, bytes: &[u8]) -> Result<Vec<f32>, LstmError> {
    let bad = |m: String| LstmError::InvalidArtefact(m);
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("safetensors: {e}")))?;
    let expected = layout.tensors();
    if st.len() != expected.len() {
        return Err(bad(format!(
            "expected {} tensors, found {}",
            expected.len(),
            st.len()
        )));
    }
    let mut params = vec![0.0f32; layout.len()];
    for t in &expected {
        let view = st
            .tensor(&t.name)
            .map_err(|_| bad(format!("missing tensor {}", t.name)))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "{} is {:?}, expected F32",
                t.name,
                view.dtype()
            )));
        }
        if view.shape() != t.shape.as_slice() {
            return Err(bad(format!(
                "{} has shape {:?}, expected {:?}",
                t.name,
                view.shape(),
                t.shape
            )));
        }
        for (p, chunk) in params[t.range.clone()]
            .iter_mut()
            .zip(view.data().chunks_exact(4))
        {
            *p = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
    if params.iter().any(|p| !p.is_finite()) {
        return Err(bad("non-finite weight".into()));
    }
    Ok(params)
}
