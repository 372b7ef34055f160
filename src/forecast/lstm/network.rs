//! The network: where PyTorch's tensors sit in one flat parameter vector, the training forward
//! pass that keeps what backpropagation needs, the hand-written backward pass through time, and
//! the lean forward pass used for inference.
//!
//! Activations are time-major (`[t][b][unit]`) so that one time step of a whole batch is one
//! contiguous `batch x units` matrix: the recurrent product of a step is then a single GEMM.

use std::ops::Range;

use super::kernel::{cell_backward, cell_forward, panel_gemm_acc, sgemm, Panels};

/// `W_hh^T` (`H x 4H`) of every layer as panels: the right operand of the forward step products.
fn pack_recurrent(layout: Layout, p: &[f32], out: &mut [Panels]) {
    let (h, g) = (layout.hidden, layout.gates());
    for (l, panels) in out.iter_mut().enumerate() {
        let w = &p[layout.w_hh(l)];
        panels.pack(h, g, |k, gi| w[gi * h + k]);
    }
}

/// The input projection of every time step at once: `gates[r] += input[r] * W_ih^T` for the
/// `rows` rows of `n_in` inputs (`gates` rows are `W_ih`'s row count wide).
fn project_inputs(rows: usize, n_in: usize, input: &[f32], w_ih: &[f32], gates: &mut [f32]) {
    let g = w_ih.len() / n_in;
    if n_in == 1 {
        // A scalar input (layer 0): an outer product, which matrixmultiply would pack for.
        for (row, &x) in gates.chunks_exact_mut(g).zip(&input[..rows]) {
            for (r, &w) in row.iter_mut().zip(w_ih) {
                *r += x * w;
            }
        }
        return;
    }
    sgemm(
        rows,
        n_in,
        g,
        1.0,
        input,
        (n_in, 1),
        w_ih,
        (1, n_in),
        1.0,
        gates,
        (g, 1),
    );
}

/// The input-weight gradient of every time step at once: `grad_w += dgates^T input` over the
/// `rows` rows of `dgates` (`W_ih`'s row count wide) and of `input` (`n_in` wide); the
/// backward twin of [`project_inputs`].
fn input_weight_grad(rows: usize, n_in: usize, dgates: &[f32], input: &[f32], grad_w: &mut [f32]) {
    let g = grad_w.len() / n_in;
    if n_in == 1 {
        // A scalar input (layer 0): a matrix-vector product, for which matrixmultiply packed
        // all of `dgates` (1 MB per 16 windows).
        let mut acc = vec![0.0f32; g];
        for (row, &x) in dgates.chunks_exact(g).zip(&input[..rows]) {
            for (a, &d) in acc.iter_mut().zip(row) {
                *a += d * x;
            }
        }
        for (gv, a) in grad_w.iter_mut().zip(&acc) {
            *gv += a;
        }
        return;
    }
    sgemm(
        g,
        rows,
        n_in,
        1.0,
        dgates,
        (1, g),
        input,
        (n_in, 1),
        1.0,
        grad_w,
        (n_in, 1),
    );
}

/// Shape of the stacked LSTM plus its linear head (input size 1, output size 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub hidden: usize,
    pub layers: usize,
}

/// One named parameter tensor inside the flat vector.
#[derive(Clone, Debug)]
pub(crate) struct Tensor {
    pub name: String,
    pub range: Range<usize>,
    pub shape: Vec<usize>,
}

impl Layout {
    /// Rows of the stacked gate matrices (i, f, g, o).
    pub fn gates(&self) -> usize {
        4 * self.hidden
    }

    /// Input features of `layer`.
    pub fn input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            1
        } else {
            self.hidden
        }
    }

    fn layer_start(&self, layer: usize) -> usize {
        (0..layer)
            .map(|l| self.gates() * (self.input_size(l) + self.hidden + 2))
            .sum()
    }

    pub fn w_ih(&self, layer: usize) -> Range<usize> {
        let s = self.layer_start(layer);
        s..s + self.gates() * self.input_size(layer)
    }

    pub fn w_hh(&self, layer: usize) -> Range<usize> {
        let s = self.w_ih(layer).end;
        s..s + self.gates() * self.hidden
    }

    pub fn b_ih(&self, layer: usize) -> Range<usize> {
        let s = self.w_hh(layer).end;
        s..s + self.gates()
    }

    pub fn b_hh(&self, layer: usize) -> Range<usize> {
        let s = self.b_ih(layer).end;
        s..s + self.gates()
    }

    pub fn fc_w(&self) -> Range<usize> {
        let s = self.layer_start(self.layers);
        s..s + self.hidden
    }

    pub fn fc_b(&self) -> Range<usize> {
        let s = self.fc_w().end;
        s..s + 1
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.fc_b().end
    }

    /// Every tensor with PyTorch's name and shape, in PyTorch's `named_parameters()` order.
    pub fn tensors(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        let g = self.gates();
        for l in 0..self.layers {
            let mut push = |name: &str, range: Range<usize>, shape: Vec<usize>| {
                out.push(Tensor {
                    name: format!("lstm.{name}_l{l}"),
                    range,
                    shape,
                })
            };
            push("weight_ih", self.w_ih(l), vec![g, self.input_size(l)]);
            push("weight_hh", self.w_hh(l), vec![g, self.hidden]);
            push("bias_ih", self.b_ih(l), vec![g]);
            push("bias_hh", self.b_hh(l), vec![g]);
        }
        out.push(Tensor {
            name: "fc.weight".into(),
            range: self.fc_w(),
            shape: vec![1, self.hidden],
        });
        out.push(Tensor {
            name: "fc.bias".into(),
            range: self.fc_b(),
            shape: vec![1],
        });
        out
    }
}

/// Per-layer activations of one forward pass, all time steps.
struct LayerBuffers {
    /// `[T*B, 4H]`: pre-activations during the step, activations afterwards.
    gates: Vec<f32>,
    c: Vec<f32>,
    tanh_c: Vec<f32>,
    h: Vec<f32>,
    /// Dropout mask applied to this layer's output before the next layer (0 or 1/(1-p)).
    mask: Vec<f32>,
    /// `h * mask`: the next layer's input.
    dropped: Vec<f32>,
}

/// Buffers for training on batches of one shape; allocated once, reused every batch.
pub(crate) struct Workspace {
    layout: Layout,
    steps: usize,
    batch: usize,
    /// Inputs, time-major: `x[t * batch + b]`.
    pub x: Vec<f32>,
    /// Targets, one per sample.
    pub target: Vec<f32>,
    /// Network outputs of the last forward pass.
    pub y: Vec<f32>,
    /// Whether the masks are applied (training with dropout > 0).
    dropout: bool,
    layers: Vec<LayerBuffers>,
    zeros: Vec<f32>,
    /// `W_hh^T` per layer, packed for the forward step products.
    w_hh_t: Vec<Panels>,
    /// `W_hh` per layer, packed for the backward step products.
    w_hh_p: Vec<Panels>,
    /// `W_ih` of the layer being back-propagated, packed for the gradient to the layer below.
    w_ih_p: Panels,
    dgates: Vec<f32>,
    dh_out: Vec<f32>,
    dc: Vec<f32>,
    bias_acc: Vec<f32>,
}

/// SplitMix64: tiny, fast, good enough for initialisation and dropout masks.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

impl Workspace {
    pub fn new(layout: Layout, steps: usize, batch: usize) -> Self {
        let (h, g, tb) = (layout.hidden, layout.gates(), steps * batch);
        let layers = (0..layout.layers)
            .map(|l| {
                let has_next = l + 1 < layout.layers;
                LayerBuffers {
                    gates: vec![0.0; tb * g],
                    c: vec![0.0; tb * h],
                    tanh_c: vec![0.0; tb * h],
                    h: vec![0.0; tb * h],
                    mask: if has_next {
                        vec![1.0; tb * h]
                    } else {
                        Vec::new()
                    },
                    dropped: if has_next {
                        vec![0.0; tb * h]
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        Self {
            layout,
            steps,
            batch,
            x: vec![0.0; tb],
            target: vec![0.0; batch],
            y: vec![0.0; batch],
            dropout: false,
            layers,
            zeros: vec![0.0; batch * h],
            w_hh_t: vec![Panels::default(); layout.layers],
            w_hh_p: vec![Panels::default(); layout.layers],
            w_ih_p: Panels::default(),
            dgates: vec![0.0; tb * g],
            dh_out: vec![0.0; tb * h],
            dc: vec![0.0; batch * h],
            bias_acc: vec![0.0; g],
        }
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Loads windows (`windows[b]` has `steps` values) and their targets.
    pub fn load(&mut self, windows: &[&[f32]], targets: &[f32]) {
        assert_eq!(windows.len(), self.batch);
        for (b, w) in windows.iter().enumerate() {
            assert_eq!(w.len(), self.steps);
            for (t, &v) in w.iter().enumerate() {
                self.x[t * self.batch + b] = v;
            }
        }
        self.target.copy_from_slice(targets);
    }

    /// Turns dropout off, or on with a fresh mask drawn per sample from `sample_seeds`, so that
    /// the masks of a window do not depend on how a batch is split between threads.
    pub fn set_dropout(&mut self, p: f32, sample_seeds: Option<&[u64]>) {
        let seeds = match sample_seeds {
            Some(s) if p > 0.0 && self.layout.layers > 1 => s,
            _ => {
                self.dropout = false;
                return;
            }
        };
        self.dropout = true;
        let keep = 1.0 / (1.0 - p);
        let (h, batch) = (self.layout.hidden, self.batch);
        for (b, &seed) in seeds.iter().enumerate() {
            let mut rng = SplitMix64(seed);
            for layer in self.layers.iter_mut().filter(|l| !l.mask.is_empty()) {
                for t in 0..self.steps {
                    let row = &mut layer.mask[(t * batch + b) * h..(t * batch + b + 1) * h];
                    for m in row {
                        *m = if rng.next_f32() < p { 0.0 } else { keep };
                    }
                }
            }
        }
    }

    /// Forward pass over the loaded batch; fills `y`.
    pub fn forward(&mut self, p: &[f32]) {
        let lay = self.layout;
        let (hd, g, bt, steps) = (lay.hidden, lay.gates(), self.batch, self.steps);
        let (bh, bg) = (bt * hd, bt * g);
        pack_recurrent(lay, p, &mut self.w_hh_t);
        for l in 0..lay.layers {
            let (below, rest) = self.layers.split_at_mut(l);
            let cur = &mut rest[0];
            let input: &[f32] = match below.last() {
                None => &self.x,
                Some(prev) if self.dropout => &prev.dropped,
                Some(prev) => &prev.h,
            };
            let n_in = lay.input_size(l);
            let (b_ih, b_hh) = (&p[lay.b_ih(l)], &p[lay.b_hh(l)]);
            for row in cur.gates.chunks_exact_mut(g) {
                for ((r, a), b) in row.iter_mut().zip(b_ih).zip(b_hh) {
                    *r = a + b;
                }
            }
            project_inputs(steps * bt, n_in, input, &p[lay.w_ih(l)], &mut cur.gates);
            let w_hh_t = &self.w_hh_t[l];
            for t in 0..steps {
                let gt = &mut cur.gates[t * bg..(t + 1) * bg];
                let (h_done, h_rest) = cur.h.split_at_mut(t * bh);
                let (c_done, c_rest) = cur.c.split_at_mut(t * bh);
                if t > 0 {
                    panel_gemm_acc(bt, &h_done[(t - 1) * bh..], hd, w_hh_t, gt, g);
                }
                let c_prev = (t > 0).then(|| &c_done[(t - 1) * bh..]);
                cell_forward(
                    hd,
                    gt,
                    c_prev,
                    &mut c_rest[..bh],
                    &mut cur.tanh_c[t * bh..(t + 1) * bh],
                    &mut h_rest[..bh],
                );
            }
            if self.dropout && !cur.mask.is_empty() {
                for ((d, h), m) in cur.dropped.iter_mut().zip(&cur.h).zip(&cur.mask) {
                    *d = h * m;
                }
            }
        }
        let top = &self.layers[lay.layers - 1].h[(steps - 1) * bh..];
        let (fc_w, fc_b) = (&p[lay.fc_w()], p[lay.fc_b()][0]);
        for (b, y) in self.y.iter_mut().enumerate() {
            let hb = &top[b * hd..(b + 1) * hd];
            *y = fc_b + hb.iter().zip(fc_w).map(|(h, w)| h * w).sum::<f32>();
        }
    }

    /// Backward pass for the squared error of the last forward pass, scaled by `scale` (1 / the
    /// full batch size for a mean): adds every parameter gradient into `grad` and returns the
    /// unscaled sum of squared errors.
    pub fn backward(&mut self, p: &[f32], grad: &mut [f32], scale: f32) -> f64 {
        let lay = self.layout;
        let (hd, g, bt, steps) = (lay.hidden, lay.gates(), self.batch, self.steps);
        let (bh, bg) = (bt * hd, bt * g);
        let mut sse = 0.0f64;
        self.dh_out.fill(0.0);
        let top = &self.layers[lay.layers - 1].h[(steps - 1) * bh..];
        let fc_w = &p[lay.fc_w()];
        let (fw, fb) = (lay.fc_w(), lay.fc_b());
        for b in 0..bt {
            let e = self.y[b] - self.target[b];
            sse += f64::from(e) * f64::from(e);
            let d = 2.0 * e * scale;
            grad[fb.start] += d;
            let hb = &top[b * hd..(b + 1) * hd];
            for (gw, h) in grad[fw.clone()].iter_mut().zip(hb) {
                *gw += d * h;
            }
            let dh = &mut self.dh_out[(steps - 1) * bh + b * hd..(steps - 1) * bh + (b + 1) * hd];
            for (o, w) in dh.iter_mut().zip(fc_w) {
                *o = d * w;
            }
        }
        for l in (0..lay.layers).rev() {
            let (below, rest) = self.layers.split_at(l);
            let cur = &rest[0];
            let w_hh = &p[lay.w_hh(l)];
            let w_hh_p = &mut self.w_hh_p[l];
            w_hh_p.pack(g, hd, |gi, k| w_hh[gi * hd + k]);
            let w_hh_p = &self.w_hh_p[l];
            self.dc.fill(0.0);
            for t in (0..steps).rev() {
                let c_prev = if t > 0 {
                    &cur.c[(t - 1) * bh..t * bh]
                } else {
                    &self.zeros[..]
                };
                let (dh_before, dh_rest) = self.dh_out.split_at_mut(t * bh);
                let dgt = &mut self.dgates[t * bg..(t + 1) * bg];
                cell_backward(
                    hd,
                    &cur.gates[t * bg..(t + 1) * bg],
                    c_prev,
                    &cur.tanh_c[t * bh..(t + 1) * bh],
                    &dh_rest[..bh],
                    &mut self.dc,
                    dgt,
                );
                if t > 0 {
                    // The recurrent part of the hidden-state gradient flows to step t-1.
                    panel_gemm_acc(bt, dgt, g, w_hh_p, &mut dh_before[(t - 1) * bh..], hd);
                }
            }
            // Weight gradients of all steps in one GEMM each.
            sgemm(
                g,
                (steps - 1) * bt,
                hd,
                1.0,
                &self.dgates[bg..],
                (1, g),
                &cur.h,
                (hd, 1),
                1.0,
                &mut grad[lay.w_hh(l)],
                (hd, 1),
            );
            let input: &[f32] = match below.last() {
                None => &self.x,
                Some(prev) if self.dropout => &prev.dropped,
                Some(prev) => &prev.h,
            };
            let n_in = lay.input_size(l);
            input_weight_grad(
                steps * bt,
                n_in,
                &self.dgates,
                input,
                &mut grad[lay.w_ih(l)],
            );
            self.bias_acc.fill(0.0);
            for row in self.dgates.chunks_exact(g) {
                for (a, d) in self.bias_acc.iter_mut().zip(row) {
                    *a += d;
                }
            }
            for r in [lay.b_ih(l), lay.b_hh(l)] {
                for (gb, a) in grad[r].iter_mut().zip(&self.bias_acc) {
                    *gb += a;
                }
            }
            if let Some(prev) = below.last() {
                // The hidden-state gradient of the layer below: `dgates * W_ih` over all steps.
                // Through the packed-panel kernel, not matrixmultiply: 66 vs 34 GFLOP/s for
                // this 960 x 256 x 64 shape (`cargo bench --bench kernels -- training_gemm`).
                let w_ih = &p[lay.w_ih(l)];
                self.w_ih_p.pack(g, hd, |gi, k| w_ih[gi * hd + k]);
                self.dh_out.fill(0.0);
                panel_gemm_acc(
                    steps * bt,
                    &self.dgates,
                    g,
                    &self.w_ih_p,
                    &mut self.dh_out,
                    hd,
                );
                if self.dropout {
                    for (d, m) in self.dh_out.iter_mut().zip(&prev.mask) {
                        *d *= m;
                    }
                }
            }
        }
        sse
    }
}

/// Buffers for forward-only passes over a batch of windows: no per-step cell states, no masks.
pub(crate) struct Predictor {
    layout: Layout,
    steps: usize,
    batch: usize,
    x: Vec<f32>,
    gates: Vec<f32>,
    h_in: Vec<f32>,
    h_out: Vec<f32>,
    c: Vec<f32>,
    c_next: Vec<f32>,
    tanh_c: Vec<f32>,
    w_hh_t: Vec<Panels>,
}

impl Predictor {
    pub fn new(layout: Layout, steps: usize, batch: usize) -> Self {
        let (h, g, tb) = (layout.hidden, layout.gates(), steps * batch);
        Self {
            layout,
            steps,
            batch,
            x: vec![0.0; tb],
            gates: vec![0.0; tb * g],
            h_in: vec![0.0; tb * h],
            h_out: vec![0.0; tb * h],
            c: vec![0.0; batch * h],
            c_next: vec![0.0; batch * h],
            tanh_c: vec![0.0; batch * h],
            w_hh_t: vec![Panels::default(); layout.layers],
        }
    }

    /// One-step predictions (scaled units) for up to `batch` windows of `steps` values each.
    pub fn predict(&mut self, p: &[f32], windows: &[&[f32]], out: &mut [f32]) {
        let n = windows.len();
        assert!(n <= self.batch && out.len() == n);
        let lay = self.layout;
        let (hd, g, steps) = (lay.hidden, lay.gates(), self.steps);
        let (bh, bg) = (n * hd, n * g);
        pack_recurrent(lay, p, &mut self.w_hh_t);
        for (b, w) in windows.iter().enumerate() {
            assert_eq!(w.len(), steps);
            for (t, &v) in w.iter().enumerate() {
                self.x[t * n + b] = v;
            }
        }
        for l in 0..lay.layers {
            let n_in = lay.input_size(l);
            let input: &[f32] = if l == 0 {
                &self.x[..steps * n]
            } else {
                std::mem::swap(&mut self.h_in, &mut self.h_out);
                &self.h_in[..steps * bh]
            };
            let gates = &mut self.gates[..steps * bg];
            let (b_ih, b_hh) = (&p[lay.b_ih(l)], &p[lay.b_hh(l)]);
            for row in gates.chunks_exact_mut(g) {
                for ((r, a), b) in row.iter_mut().zip(b_ih).zip(b_hh) {
                    *r = a + b;
                }
            }
            project_inputs(steps * n, n_in, input, &p[lay.w_ih(l)], gates);
            let w_hh_t = &self.w_hh_t[l];
            for t in 0..steps {
                let gt = &mut gates[t * bg..(t + 1) * bg];
                let (h_done, h_rest) = self.h_out.split_at_mut(t * bh);
                if t > 0 {
                    panel_gemm_acc(n, &h_done[(t - 1) * bh..], hd, w_hh_t, gt, g);
                }
                let c_prev = (t > 0).then(|| &self.c[..bh]);
                cell_forward(
                    hd,
                    gt,
                    c_prev,
                    &mut self.c_next[..bh],
                    &mut self.tanh_c[..bh],
                    &mut h_rest[..bh],
                );
                std::mem::swap(&mut self.c, &mut self.c_next);
            }
        }
        let top = &self.h_out[(steps - 1) * bh..steps * bh];
        let (fc_w, fc_b) = (&p[lay.fc_w()], p[lay.fc_b()][0]);
        for (b, y) in out.iter_mut().enumerate() {
            let hb = &top[b * hd..(b + 1) * hd];
            *y = fc_b + hb.iter().zip(fc_w).map(|(h, w)| h * w).sum::<f32>();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Reference values come from `bench/torch_lstm_fixtures.py` (PyTorch 2.15, evaluated in
    //! float64 on float32 weights), stored in `tests/fixtures/lstm/`.

    use super::*;
    use crate::forecast::lstm::artefact::from_safetensors;
    use safetensors::SafeTensors;

    /// One PyTorch fixture: net shape, f32 weights, a batch, and the f64 references.
    pub(crate) struct Fixture {
        pub layout: Layout,
        pub steps: usize,
        pub params: Vec<f32>,
        pub x: Vec<Vec<f32>>,
        pub target: Vec<f32>,
        pub y: Vec<f64>,
        pub loss: f64,
    }

    fn path(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lstm")
            .join(name)
    }

    pub(crate) fn load_fixture(name: &str) -> Fixture {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path(&format!("{name}.json"))).unwrap())
                .unwrap();
        let layout = Layout {
            hidden: meta["hidden"].as_u64().unwrap() as usize,
            layers: meta["layers"].as_u64().unwrap() as usize,
        };
        let weights = std::fs::read(path(&format!("{name}_weights.safetensors"))).unwrap();
        let f32s = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        Fixture {
            layout,
            steps: meta["steps"].as_u64().unwrap() as usize,
            params: from_safetensors(layout, &weights).unwrap(),
            x: meta["x"].as_array().unwrap().iter().map(f32s).collect(),
            target: f32s(&meta["target"]),
            y: meta["y"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect(),
            loss: meta["loss"].as_f64().unwrap(),
        }
    }

    /// f64 tensors of a fixture file, flattened in the layout's order.
    pub(crate) fn load_f64(layout: Layout, file: &str) -> Vec<f64> {
        let bytes = std::fs::read(path(file)).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut out = vec![0.0; layout.len()];
        for t in layout.tensors() {
            let view = st.tensor(&t.name).unwrap();
            assert_eq!(view.shape(), t.shape.as_slice(), "{}", t.name);
            for (o, c) in out[t.range.clone()]
                .iter_mut()
                .zip(view.data().chunks_exact(8))
            {
                *o = f64::from_le_bytes(c.try_into().unwrap());
            }
        }
        out
    }

    /// Element-wise relative error <= `tol`, with a floor of 1% of the tensor's largest entry so
    /// that entries that are zero up to rounding do not divide by nothing.
    pub(crate) fn assert_close(layout: Layout, ours: &[f64], theirs: &[f64], tol: f64) {
        for t in layout.tensors() {
            let (a, b) = (&ours[t.range.clone()], &theirs[t.range.clone()]);
            let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                let rel = (x - y).abs() / y.abs().max(1e-2 * scale);
                assert!(
                    rel <= tol,
                    "{}[{k}]: ours {x}, PyTorch {y}, rel {rel:e}",
                    t.name
                );
            }
        }
    }

    fn gradients(f: &Fixture) -> (Vec<f32>, Vec<f32>, f64) {
        let mut ws = Workspace::new(f.layout, f.steps, f.x.len());
        let windows: Vec<&[f32]> = f.x.iter().map(|w| w.as_slice()).collect();
        ws.load(&windows, &f.target);
        ws.set_dropout(0.0, None);
        ws.forward(&f.params);
        let mut grad = vec![0.0; f.layout.len()];
        let sse = ws.backward(&f.params, &mut grad, 1.0 / f.x.len() as f32);
        (ws.y.clone(), grad, sse / f.x.len() as f64)
    }

    fn check_against_pytorch(name: &str) {
        let f = load_fixture(name);
        let (y, grad, loss) = gradients(&f);
        for (a, b) in y.iter().zip(&f.y) {
            assert!(
                (f64::from(*a) - b).abs() <= 1e-4 * b.abs().max(1e-2),
                "y {a} vs {b}"
            );
        }
        assert!(
            (loss - f.loss).abs() <= 1e-4 * f.loss,
            "loss {loss} vs {}",
            f.loss
        );
        let theirs = load_f64(f.layout, &format!("{name}_grads.safetensors"));
        let ours: Vec<f64> = grad.iter().map(|&g| f64::from(g)).collect();
        assert_close(f.layout, &ours, &theirs, 1e-4);
        let mut predictor = Predictor::new(f.layout, f.steps, f.x.len());
        let windows: Vec<&[f32]> = f.x.iter().map(|w| w.as_slice()).collect();
        let mut out = vec![0.0; f.x.len()];
        predictor.predict(&f.params, &windows, &mut out);
        assert_eq!(
            out, y,
            "inference and training forward passes agree exactly"
        );
    }

    #[test]
    fn outputs_loss_and_every_gradient_match_pytorch_on_a_small_net() {
        check_against_pytorch("small");
    }

    #[test]
    fn outputs_loss_and_every_gradient_match_pytorch_on_the_spec_size_net() {
        check_against_pytorch("spec");
    }

    /// Mean squared error of a batch, for finite differences.
    fn loss_at(ws: &mut Workspace, p: &[f32]) -> f64 {
        ws.forward(p);
        ws.y.iter()
            .zip(&ws.target)
            .map(|(y, t)| f64::from(y - t).powi(2))
            .sum::<f64>()
            / ws.batch() as f64
    }

    #[test]
    fn finite_differences_agree_with_the_backward_pass_including_dropout() {
        let layout = Layout {
            hidden: 3,
            layers: 2,
        };
        let (steps, batch) = (6, 2);
        let mut rng = SplitMix64(7);
        let params: Vec<f32> = (0..layout.len()).map(|_| rng.next_f32() - 0.5).collect();
        let xs: Vec<Vec<f32>> = (0..batch)
            .map(|_| (0..steps).map(|_| rng.next_f32()).collect())
            .collect();
        let windows: Vec<&[f32]> = xs.iter().map(|w| w.as_slice()).collect();
        let mut ws = Workspace::new(layout, steps, batch);
        ws.load(&windows, &[0.3, 0.8]);
        // Fixed masks: the loss stays a smooth function of the weights.
        ws.set_dropout(0.3, Some(&[11, 12]));
        ws.forward(&params);
        let mut grad = vec![0.0; layout.len()];
        ws.backward(&params, &mut grad, 1.0 / batch as f32);
        let eps = 1e-2f32;
        for k in 0..layout.len() {
            let mut p = params.clone();
            p[k] = params[k] + eps;
            let up = loss_at(&mut ws, &p);
            p[k] = params[k] - eps;
            let down = loss_at(&mut ws, &p);
            let numeric = (up - down) / (2.0 * f64::from(eps));
            let analytic = f64::from(grad[k]);
            // f32 evaluation: O(eps^2) truncation plus ~1e-7/eps rounding.
            assert!(
                (numeric - analytic).abs() <= 2e-3 * numeric.abs().max(1e-2),
                "param {k}: numeric {numeric}, analytic {analytic}"
            );
        }
    }
}
