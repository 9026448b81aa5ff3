"""Offline training: matrix factorisation with BPR / Softmax / SoftmaxLoss@K and the Health reproduction."""
