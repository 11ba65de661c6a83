"""A fully connected network on flattened images.

Defaults: two hidden layers of 1024 units with ReLU and biases, the default
widths of the DIA code's MLP (dAI-SY-Group/DropoutInversionAttack,
`src/models/mlp.py`); for a CIFAR image that is ≈4.2M parameters, almost all
in the first layer. DIA's experiments use ``hidden_sizes=(512, 512, 512),
act='gelu', use_bias=False, dropout_rate=0.25``
(`example_configs/models/MLP.yaml`). `dropout_rate` > 0 puts a
`MaskedDropout` after every hidden activation (dense – act – dropout, as
there).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from dlg_jax.models import layers


class MLP(nn.Module):
  """Flatten – [Dense – act – dropout] × len(hidden_sizes) – Dense.

  Attributes:
    num_classes: logits.
    hidden_sizes: units of each hidden layer.
    act: activation name (see `layers.activation`).
    use_bias: biases in every dense layer, the classifier's included.
    dropout_rate: > 0 adds sites 'dropout1', 'dropout2', ... after each hidden
      layer.
  """
  num_classes: int = 10
  hidden_sizes: tuple[int, ...] = (1024, 1024)
  act: str = 'relu'
  use_bias: bool = True
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no batch statistics in this model
    act = layers.activation(self.act)
    x = x.reshape(x.shape[0], -1)
    for i, units in enumerate(self.hidden_sizes):
      x = act(layers.dense(units, use_bias=self.use_bias, name=f'dense{i + 1}')(x))
      if self.dropout_rate > 0:
        x = layers.MaskedDropout(self.dropout_rate, name=f'dropout{i + 1}')(x)
    return layers.classifier(x, self.num_classes, use_bias=self.use_bias, name='head')
