"""MODEL_FILE for scorch, written by `scorch-init --template lm`: a small transformer language model
over characters (causal self-attention: each position sees only the characters before it).

    scorch-check --model model.py --dataset dataset.py
    scorch-train --model model.py --dataset dataset.py --epochs 5
    scorch-train ... --set model.layers=4 --set model.width=128          # bigger

The contract: ``Network`` (a torch.nn.Module) and ``Socket`` (how to train it).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

ALPHABET = " .abcdefghijklmnopqrstuvwxyz"  # the same as dataset.py's: character i is token i
VOCAB = len(ALPHABET)


class Network(nn.Module):
    def __init__(self, vocab=VOCAB, context=32, width=64, heads=4, layers=2, dropout=0.0):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)  # context: the longest window it reads
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, inputs):
        (x,) = inputs  # (N, T) token ids
        t = x.shape[1]
        h = self.tokens(x) + self.positions(torch.arange(t, device=x.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=x.device)
        h = self.blocks(h, mask=causal, is_causal=True)
        return [self.head(self.norm(h))]  # (N, T, vocab) logits of the next character


class Socket:
    def __init__(self, model):
        self.model = model
        self.trainable_modules = nn.ModuleList([model])

    def criterion(self, preds, targets):
        # Cross-entropy of every next character; an untrained model gives about ln(vocab) = 3.3.
        logits = preds[0]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[0].reshape(-1))

    def metrics(self, preds, targets):
        loss = F.cross_entropy(preds[0].reshape(-1, preds[0].shape[-1]), targets[0].reshape(-1))
        return {
            "accuracy": (preds[0].argmax(dim=-1) == targets[0]).float().mean(),
            "bits_per_char": loss / math.log(2),
        }

    def visualize(self, inputs, preds, targets):
        # A validation window and the model's guess of each next character, every epoch (TensorBoard,
        # and RUN_DIR/visuals/epoch-NNN/window.txt).
        decode = lambda ids: "".join(ALPHABET[i] for i in ids.tolist())  # noqa: E731
        # Each guess stands under the character it guesses (one column to the right of what it read).
        return {"texts": {"window": f"text:  {decode(inputs[0][0])}\nguess:  {decode(preds[0][0].argmax(dim=-1))}"}}

    def optimizer(self, params):
        return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)
