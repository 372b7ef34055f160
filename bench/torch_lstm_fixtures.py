#!/opt/pyref/bin/python
"""Writes the PyTorch reference fixtures the LSTM engine's tests compare against.

Run from the repository root:  /opt/pyref/bin/python bench/torch_lstm_fixtures.py
(PyTorch 2.15 CPU, numpy, safetensors). CI never runs this; it only reads the output in
tests/fixtures/lstm/.

For two nets (a small one and the SPEC-size one) it draws float32 weights with PyTorch's own
LSTM/Linear initialisation, then evaluates in float64 (so the references are exact up to f64
rounding and our f32 engine is compared with the truth, not with another f32 rounding):
  <name>_weights.safetensors  f32 weights under PyTorch's parameter names
  <name>_grads.safetensors    f64 gradient of the MSE loss for every parameter (dropout off)
  small_adam3.safetensors    f64 weights after 3 Adam steps (lr 1e-3, defaults) on that batch
  <name>.json                 hidden, layers, steps, inputs x [B][T], targets, outputs, loss
"""
import json
import pathlib

import torch
from safetensors.torch import save_file

OUT = pathlib.Path("tests/fixtures/lstm")


class Net(torch.nn.Module):
    def __init__(self, hidden, layers):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, hidden, layers, batch_first=True, dropout=0.0)
        self.fc = torch.nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(x.unsqueeze(-1))
        return self.fc(out[:, -1, :]).squeeze(-1)


def fixture(name, hidden, layers, steps, batch, seed, adam):
    torch.manual_seed(seed)
    net = Net(hidden, layers)
    weights = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    save_file(weights, OUT / f"{name}_weights.safetensors")
    net = net.double()
    x = torch.rand(batch, steps, dtype=torch.float32).double()
    target = torch.rand(batch, dtype=torch.float32).double()
    y = net(x)
    loss = torch.nn.functional.mse_loss(y, target)
    loss.backward()
    grads = {k: p.grad.detach().clone().contiguous() for k, p in net.named_parameters()}
    save_file(grads, OUT / f"{name}_grads.safetensors")
    if adam:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), target).backward()
            opt.step()
        after = {k: p.detach().clone().contiguous() for k, p in net.named_parameters()}
        save_file(after, OUT / f"{name}_adam3.safetensors")
    meta = {
        "hidden": hidden,
        "layers": layers,
        "steps": steps,
        "x": x.tolist(),
        "target": target.tolist(),
        "y": y.detach().tolist(),
        "loss": loss.item(),
        "torch": torch.__version__,
    }
    (OUT / f"{name}.json").write_text(json.dumps(meta))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    fixture("small", hidden=5, layers=2, steps=7, batch=3, seed=1, adam=True)
    fixture("spec", hidden=64, layers=2, steps=60, batch=4, seed=2, adam=False)
    print("fixtures written to", OUT)
